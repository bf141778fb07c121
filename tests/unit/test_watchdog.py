"""A drill past its deadline prints where every thread was and still runs its cleanup."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STUCK = """
import sys, time
from cluster.watchdog import Watchdog
with Watchdog(1.0, "stuck drill") as watch:
    try:
        watch.step("waiting for something that never comes")
        time.sleep(60)
    finally:
        open(sys.argv[1], "w").write("cleaned up")
"""


def test_a_drill_past_its_deadline_says_where_and_cleans_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    done = subprocess.run([sys.executable, "-c", STUCK, str(marker)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert marker.read_text() == "cleaned up"
    assert "stuck drill: [0.0 s] waiting for something that never comes" in done.stderr
    assert "past its 1 s deadline at 'waiting for something that never comes'" in done.stderr
    assert "Most recent call first" in done.stderr or "most recent call first" in done.stderr
    assert "TimeoutError: stuck drill: still at 'waiting for something that never comes'" in done.stderr


def test_a_drill_within_its_deadline_is_left_alone(tmp_path: Path) -> None:
    quick = STUCK.replace("time.sleep(60)", "time.sleep(0.1)")
    done = subprocess.run([sys.executable, "-c", quick, str(tmp_path / "cleaned")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "past its" not in done.stderr
