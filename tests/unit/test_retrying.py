"""The one retry loop (serve/retrying.py): what it tries again, for how long, and how it pauses."""
from __future__ import annotations

import asyncio
import time

import pytest

from serve.retrying import retrying


class Flaky:
    """Fails with `error` the first `failures` times it is called, then answers "ok"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def run(flaky: Flaky, **options: object) -> str:
    settings = {"retriable": lambda exc: isinstance(exc, TimeoutError), "deadline_s": 5.0,
                "first_pause_s": 0.01, "max_pause_s": 0.04, **options}
    return asyncio.run(retrying(flaky, **settings))  # type: ignore[arg-type]


def test_a_retriable_failure_is_tried_again_with_doubling_pauses_up_to_the_cap() -> None:
    pauses: list[float] = []
    flaky = Flaky(4, TimeoutError())
    assert run(flaky, on_retry=lambda exc, pause: pauses.append(pause)) == "ok"
    assert flaky.calls == 5
    assert pauses == pytest.approx([0.01, 0.02, 0.04, 0.04])


def test_any_other_failure_is_raised_at_once() -> None:
    flaky = Flaky(1, ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        run(flaky)
    assert flaky.calls == 1


def test_the_last_try_falls_on_the_deadline_and_its_failure_is_raised() -> None:
    flaky = Flaky(10**6, TimeoutError("still moving"))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still moving"):
        run(flaky, deadline_s=0.3, first_pause_s=0.05, max_pause_s=10.0)
    took = time.monotonic() - started
    # 0.05, 0.1, then cut to what is left of 0.3 s: a try at the deadline, not 0.4 s on
    # (asyncio may wake a clock tick early, leaving one more try with no pause).
    assert 0.3 <= took < 1.5 and flaky.calls in (4, 5)


def test_recover_that_finds_a_change_tries_again_without_pausing() -> None:
    pauses: list[float] = []
    recovered: list[BaseException] = []

    async def recover(exc: BaseException) -> bool:
        recovered.append(exc)
        return len(recovered) == 1  # the first failure finds a new map; the second does not

    flaky = Flaky(2, TimeoutError())
    assert run(flaky, recover=recover, on_retry=lambda exc, pause: pauses.append(pause)) == "ok"
    assert flaky.calls == 3 and len(recovered) == 2 and pauses == pytest.approx([0.01])
