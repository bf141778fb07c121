"""Bulk backfill: a real `ray job` against the running service, then recall through the API."""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.builders import TERMINAL, Engram, job_client, submit_job, wait


def submit(engram: Engram, tmp: Path, data: Path, *extra: str,
           config_args: dict[str, Any] | None = None) -> tuple[str, Path]:
    config = tmp / f"serve-{uuid.uuid4().hex[:6]}.yaml"
    args = config_args or engram.config
    config.write_text(yaml.safe_dump({"applications": [{"name": "engram", "args": args}]}))
    report = tmp / f"report-{uuid.uuid4().hex[:6]}.json"
    entrypoint = " ".join([
        sys.executable, "-m", "cluster.backfill", "--input", str(data), "--config", str(config),
        "--map", "namespace=customer", "--map", "content=text", "--map", "event_time=when",
        "--map", "tags=labels", "--report", str(report), *extra])
    return submit_job(engram, entrypoint), report


def rows(prefix: str, n: int) -> list[dict[str, Any]]:
    import pandas as pd

    out = []
    for i in range(n):
        out.append({"customer": f"{prefix}-{i % 3}",
                    "text": f"Customer {i % 3} asked about order #{5000 + i} and its delivery window",
                    "when": pd.Timestamp("2024-03-01T12:00:00Z") + pd.Timedelta(days=i),
                    "labels": ["support", f"batch:{i % 2}"], "importance": 0.4})
    return out


def stats(engram: Engram, namespace: str) -> int:
    with engram.http() as c:
        return int(c.get(f"/v1/agents/{namespace}/stats").json()["total_memories"])


def test_backfill_job_stores_once_and_recall_finds_it(engram: Engram, tmp_path: Path) -> None:
    import pandas as pd

    prefix = f"bf-{uuid.uuid4().hex[:8]}"
    data = rows(prefix, 30)
    data.append({**data[0], "text": "   "})  # no content: rejected
    data.append({**data[1], "text": "a refund over the limit", "importance": 7.0})  # rejected
    data.append(dict(data[2]))  # the same row twice: stored once
    path = tmp_path / "history.parquet"
    pd.DataFrame(data).to_parquet(path)

    job_id, report = submit(engram, tmp_path, path, "--batch-size", "8")
    assert wait(engram, job_id) == "SUCCEEDED", job_client(engram).get_job_logs(job_id)[-3000:]
    summary = yaml.safe_load(report.read_text())
    assert summary["complete"] is True
    assert summary["rows_read"] == 33 and summary["stored"] == 30 and summary["skipped"] == 1
    assert summary["rejected"] == 2, summary["rejected_reasons"]
    assert any("content" in r for r in summary["rejected_reasons"])
    assert any("importance" in r for r in summary["rejected_reasons"])
    assert "backfill summary" in job_client(engram).get_job_logs(job_id)
    assert sum(stats(engram, f"{prefix}-{k}") for k in range(3)) == 30

    with engram.http() as c:
        r = c.post("/v1/memory/recall", json={"agent_id": f"{prefix}-1", "query": "order #5004 delivery",
                                              "top_k": 3, "neighborhood_mode": "off"})
        top = r.json()["memories"][0]
    assert "#5004" in top["content"] and "support" in top["tags"]
    assert top["event_time"] == int(pd.Timestamp("2024-03-05T12:00:00Z").timestamp())

    # The same input again stores nothing: every row is recognised before it is embedded.
    job_id, report = submit(engram, tmp_path, path, "--batch-size", "8")
    assert wait(engram, job_id) == "SUCCEEDED"
    again = yaml.safe_load(report.read_text())
    assert again["stored"] == 0 and again["skipped"] == 31 and again["rejected"] == 2
    assert sum(stats(engram, f"{prefix}-{k}") for k in range(3)) == 30


def test_a_killed_backfill_resumes_without_duplicates(engram: Engram, tmp_path: Path) -> None:
    import pandas as pd

    prefix = f"bf-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "history.csv"
    frame = pd.DataFrame(rows(prefix, 600))
    frame["labels"] = frame["labels"].map(",".join)  # CSV has no lists: tags comma-separated
    frame.to_csv(path, index=False)

    client = job_client(engram)
    # Paced to 100 rows/s, so the job is still running (6 s or more) when it is stopped.
    job_id, _ = submit(engram, tmp_path, path, "--batch-size", "4", "--progress-seconds", "0.2",
                       "--max-rows-per-second", "100")
    deadline = time.time() + 300
    while "progress:" not in client.get_job_logs(job_id) or \
            sum(stats_or_zero(engram, f"{prefix}-{k}") for k in range(3)) == 0:
        assert time.time() < deadline and str(client.get_job_status(job_id).value) not in TERMINAL
        time.sleep(0.2)
    client.stop_job(job_id)
    assert wait(engram, job_id) == "STOPPED"
    partial = sum(stats(engram, f"{prefix}-{k}") for k in range(3))
    assert 0 < partial < 600

    job_id, report = submit(engram, tmp_path, path, "--batch-size", "64")
    assert wait(engram, job_id) == "SUCCEEDED", client.get_job_logs(job_id)[-3000:]
    summary = yaml.safe_load(report.read_text())
    assert summary["skipped"] >= partial and summary["stored"] + summary["skipped"] == 600
    assert sum(stats(engram, f"{prefix}-{k}") for k in range(3)) == 600


def stats_or_zero(engram: Engram, namespace: str) -> int:
    with engram.http() as c:
        r = c.get(f"/v1/agents/{namespace}/stats")
        return int(r.json()["total_memories"]) if r.status_code == 200 else 0


def test_a_job_configured_for_another_layout_writes_nothing(engram: Engram, tmp_path: Path) -> None:
    import pandas as pd

    prefix = f"bf-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "history.parquet"
    pd.DataFrame(rows(prefix, 6)).to_parquet(path)
    wrong = {**engram.config, "shard_count": engram.config["shard_count"] + 1}
    job_id, report = submit(engram, tmp_path, path, config_args=wrong)
    assert wait(engram, job_id) == "FAILED"
    logs = job_client(engram).get_job_logs(job_id)
    assert "pass the config the app was deployed with" in logs
    assert yaml.safe_load(report.read_text())["stored"] == 0
    assert sum(stats_or_zero(engram, f"{prefix}-{k}") for k in range(3)) == 0
