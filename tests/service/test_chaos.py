"""Faults under load (`make chaos`, cluster/chaos.py), shortened: the embedded form loses a
Shard replica, the Embedder, a Router replica and HAProxy, one at a time and then together,
under the load test's mix; nothing acknowledged is lost or duplicated, nothing forgotten comes
back, and every answer is a success or a 429/503 with Retry-After. It runs as a process of its
own: its Ray cluster is not this session's."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_faults_under_load_lose_nothing_and_answer_only_retryable_errors(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cluster.chaos", "--gap", "20", "--users", "4",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(done.stdout[-3000:])  # the faults and each recovery time (pytest -s shows them)
    # Ray's own processes print to the same stdout: the run's last line of its own.
    last = next((line for line in reversed(done.stdout.splitlines()) if line.startswith("chaos: ")),
                done.stderr[-3000:])
    found = re.fullmatch(r"chaos: acknowledged (\d+), lost 0, duplicated 0, resurrected 0, "
                         r"non-429/503 errors 0, slowest recovery ([0-9.]+) s", last)
    assert found, last
    assert int(found.group(1)) > 100 and float(found.group(2)) < 60
    assert len(list(tmp_path.glob("*/timeline.png"))) == 1
    assert done.returncode == 0, done.stderr[-3000:]
