"""The production form on a Ray cluster of several nodes (on loopback) loses a worker node,
every process of it SIGKILLed at once, while four clients store and recall: nothing
acknowledged is lost or duplicated, every request is answered 200 or 503 with Retry-After,
and recall answers again within a time this test measures and prints. The drill runs as a
process of its own (cluster/node_loss_drill.py): its Ray cluster is not this session's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSION_VARIABLES = ("RAY_", "ENGRAM_", "DASHBOARD_METRIC_PORT", "AUTOSCALER_METRIC_PORT")


@pytest.mark.multinode
@pytest.mark.postgres
@pytest.mark.emulator
def test_losing_a_worker_node_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    # The drill keeps its own deadline: past it, it prints every thread's stack and shuts its
    # cluster and servers down (a timeout here would SIGKILL it and leave them running).
    # Its environment is a user's, not this session's: the variables the session's own
    # cluster was started with (Serve's port ranges, HAProxy's ports, Ray's metrics ports)
    # would put the drill's servers on the session's ports, where SO_REUSEPORT lets the
    # kernel split connections between the two clusters.
    env = {k: v for k, v in os.environ.items() if not k.startswith(SESSION_VARIABLES)}
    done = subprocess.run(
        [sys.executable, "-m", "cluster.node_loss_drill", "--clients", "4", "--before", "20",
         "--after", "45", "--deadline", "600", "--json", str(report_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    print(done.stdout[-4000:])  # the drill's figures, recovery time included (pytest -s shows them)
    assert report_file.exists(), done.stderr[-8000:]
    report = json.loads(report_file.read_text())
    assert len(set(report["shard_replicas_on"])) == 2  # the shard's replicas on two nodes
    assert report["killed_node"].startswith("worker-") and report["killed_pids"] > 1
    assert report["acknowledged"] > 0
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["non_503_errors"] == 0, report["errors"]
    assert report["read_your_writes_misses"] == 0
    assert report["recall_recovery_s"] < 120
    assert len(report["shard_replicas_after"]) == 2  # Serve placed a replacement
    assert done.returncode == 0, done.stderr[-4000:]
