"""What the console's live figures cost (serve/traffic.py, serve/traffic_board.py):

    python -m cluster.traffic_bench [--replicas 2 8 32]

In process, no service: a Router's per-request count (`TrafficWindow.record`), a replica's
once-a-second hand-over (`finished`), and the board's merge of every replica's last
300 seconds into the series GET /v1/ops/traffic answers. Prints a table.
"""
from __future__ import annotations

import argparse
import random
import time
import timeit

from serve.traffic import SECONDS_KEPT, TrafficWindow
from serve.traffic_board import TrafficBoard


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def per_call_us(fn: object, number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6  # type: ignore[arg-type]


def board_of(replicas: int, per_second: int) -> TrafficBoard:
    """A board holding SECONDS_KEPT full seconds from each replica."""
    now = 1_000_000.0
    board = TrafficBoard(Clock(now))
    rng = random.Random(7)
    for r in range(replicas):
        clock = Clock(now - SECONDS_KEPT)
        window = TrafficWindow(clock)
        for second in range(SECONDS_KEPT):
            clock.t = now - SECONDS_KEPT + second
            for _ in range(per_second):
                window.record(rng.choice((200, 200, 200, 404, 503)), rng.expovariate(1 / 0.03))
        clock.t = now
        board.add(f"replica-{r}", window.finished())
    return board


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--per-second", type=int, default=20, help="requests per replica-second held")
    args = parser.parse_args(argv)

    window = TrafficWindow()
    rows = [("record one request (Router, per request)", per_call_us(lambda: window.record(200, 0.012), 200_000))]
    clock = Clock(0.0)
    handover = TrafficWindow(clock)

    def second_then_finish() -> None:
        clock.t += 1
        handover.record(200, 0.01)
        handover.finished()

    rows.append(("hand over one second (Router, once a second)", per_call_us(second_then_finish, 50_000)))
    for replicas in args.replicas:
        board = board_of(replicas, args.per_second)
        start = time.perf_counter()
        runs = 20
        for _ in range(runs):
            board.series(SECONDS_KEPT)
        rows.append((f"merge {SECONDS_KEPT} s of {replicas} replicas (board, per GET)",
                     (time.perf_counter() - start) / runs * 1e6))
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  {'µs':>10}")
    for name, us in rows:
        print(f"{name:<{width}}  {us:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
