"""Replicas per Serve deployment over time, from the Serve REST API on the Ray dashboard.

GET /api/serve/applications/ answers {"applications": {app: {"deployments": {name:
{"replicas": [{"state": "RUNNING", ...}], "target_num_replicas": n, "status": ...}}}}}.
Ray 2.5x turns token auth on for `ray start`; the dashboard then wants the cluster token as
a Bearer token, found where Ray's CLIs find it ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH,
~/.ray/auth_token).
"""
from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx

FIELDS = ["timestamp", "deployment", "running", "target", "status"]


def ray_token() -> str | None:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.exists() else None


def fetch(client: httpx.Client, app: str) -> dict[str, tuple[int, int, str]]:
    """deployment → (RUNNING replicas, target replicas, deployment status)."""
    r = client.get("/api/serve/applications/")
    r.raise_for_status()
    deployments: dict[str, Any] = r.json()["applications"][app]["deployments"]
    return {name: (sum(1 for rep in d.get("replicas", []) if rep.get("state") == "RUNNING"),
                   int(d.get("target_num_replicas", 0)), str(d.get("status", "")))
            for name, d in deployments.items()}


def dashboard_client(url: str) -> httpx.Client:
    token = ray_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=10)


class ReplicaPoller(threading.Thread):
    """Appends one row per deployment every `interval_s` to a CSV until stopped.

    A failed poll is counted and skipped, not fatal: the load test must finish (and clean
    up its keys) even when the dashboard is slow under the very load being measured."""

    def __init__(self, dashboard: str, app: str, out: Path, interval_s: float) -> None:
        super().__init__(name="replica-poller", daemon=True)
        self.dashboard, self.app, self.out, self.interval_s = dashboard, app, out, interval_s
        self.latest: dict[str, tuple[int, int, str]] = {}
        self.errors = 0
        self.last_error = ""
        self._stop_event = threading.Event()

    def run(self) -> None:
        with dashboard_client(self.dashboard) as client, open(self.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(FIELDS)
            while not self._stop_event.is_set():
                started = time.time()
                try:
                    self.latest = fetch(client, self.app)
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                else:
                    for name, (running, target, status) in sorted(self.latest.items()):
                        w.writerow([f"{started:.3f}", name, running, target, status])
                    f.flush()
                self._stop_event.wait(max(0.0, self.interval_s - (time.time() - started)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)
