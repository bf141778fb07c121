"""Undoing a reshard halfway (`cluster.reshard --abort`): moves a killed run left halfway
are rolled back, moved namespaces come home with what they took since, new namespaces stay
where the old count puts them, and the shard map ends as if the reshard never began. The
job code, real shards and a real control store run in this process; only Serve's handles
are stood in for, as in test_reshard_lease."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cluster.reshard_job import Reshard
from cluster.reshard_tally import Tally
from shards.control.sqlite import SQLiteControlStore
from shards.errors import Conflict
from shards.routing import shard_for
from shards.types import RecallFilter, Scope
from tests.builders import mem, two_shards

GOING = [n for n in (f"agent-{i}" for i in range(200)) if shard_for(n, 2) == 1][:3]
NEW = next(n for n in (f"new-{i}" for i in range(200)) if shard_for(n, 2) == 1)
GHOST = next(n for n in (f"ghost-{i}" for i in range(200)) if shard_for(n, 2) == 1)


def test_an_abort_rolls_back_every_kind_of_half_move(tmp_path: Path) -> None:
    shards, control, clients, router = two_shards(tmp_path, GOING)
    handles = list(clients)

    # A run that moves one namespace and stops (--max-namespaces 1).
    first = sorted(GOING)[0]
    part = asyncio.run(Reshard(router, handles, 2, Tally(), job="part", max_namespaces=1).run(2, 60))
    assert part.target == 2 and part.moved == {first}
    shards[1].write([mem(f"{first}-new", first, "written at its new home", seed=50)])
    # A namespace new during the reshard, at its new home, and one recorded there whose
    # first write never came.
    control.place(NEW)
    control.place(GHOST)
    shards[1].write([mem(f"{NEW}-m0", NEW, "a namespace born during the reshard", seed=60)])
    # A killed run's half moves: one copy half filled (its source copying live), one copy
    # activated whose move the map never recorded (its source handed off).
    half, unrecorded = sorted(GOING)[1:]
    shards[0].begin_copy(half)
    shards[1].import_head(shards[0].export_head(half), True)
    shards[1].import_memories(half, shards[0].export_memories(half, 0, 2)[0])
    shards[0].write([mem(f"{half}-live", half, "written while it was being copied", seed=70)])
    shards[0].begin_copy(unrecorded)
    shards[1].import_head(shards[0].export_head(unrecorded), True)
    shards[1].import_memories(unrecorded, shards[0].export_memories(unrecorded, 0, 100)[0])
    expected = shards[0].freeze(unrecorded)
    shards[1].refresh_head(shards[0].export_head(unrecorded))
    shards[0].handoff(unrecorded)
    shards[1].activate(unrecorded, expected or 0)

    tally = Tally()
    done = asyncio.run(Reshard(router, handles, 2, tally, job="undo").abort(60))
    assert (done.count, done.target, done.moved, done.aborting) == (1, None, frozenset(), False)
    assert tally.namespaces == 2  # the moved one and the one born at its new home

    assert shards[1].namespace_table() == []
    table = dict(shards[0].namespace_table())
    assert table == {ns: None for ns in [*GOING, NEW]}
    def ids(ns: str) -> list[str]:
        return sorted(m.id for m in shards[0].listing(ns, RecallFilter(), 100, 0)[0])
    assert ids(first) == sorted([f"{first}-m{i}" for i in range(5)] + [f"{first}-new"])
    assert ids(half) == sorted([f"{half}-m{i}" for i in range(5)] + [f"{half}-live"])
    assert ids(unrecorded) == [f"{unrecorded}-m{i}" for i in range(5)]
    assert ids(NEW) == [f"{NEW}-m0"]
    # Both take writes at home again, and recall finds what came back.
    shards[0].write([mem(f"{ns}-after", ns, "after the abort", seed=80) for ns in [*GOING, NEW]])
    assert f"{first}-new" in {c.memory.id for c in shards[0].recall_candidates(
        first, None, "written at its new home", RecallFilter(), 10)}
    assert shards[0].lookup(f"{half}-live", Scope.of(half))
    for s in shards:
        s.close()


def test_a_released_lease_refuses_the_renewal_still_in_flight(tmp_path: Path) -> None:
    control = SQLiteControlStore(tmp_path / "control.db")
    control.check_deployed_shards(2)
    control.begin_reshard(3, "job-a", 30)
    control.release_reshard_lease("job-a")  # --max-namespaces reached, or the job failed
    with pytest.raises(Conflict, match="lost its lease"):
        control.renew_reshard_lease("job-a", 30)  # sent before the release, landing after
    assert control.begin_abort("job-b", 30).aborting  # the next run need not wait
