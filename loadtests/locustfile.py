"""Locust users: AI agents of several tenants using one Engram, with a rise-and-fall load.

    locust -f loadtests/locustfile.py --headless -u 40 -r 2 -t 180s --host http://127.0.0.1:3300

Normally started by `python -m loadtests.run` (`make load`), which prepares the tenants and
passes them in $ENGRAM_LOAD_TENANTS. Started alone, this file prepares them itself with the
root key ($ENGRAM_ROOT_API_KEY, else data/.root_key) and deletes their keys at the end.

Each user is one agent of one tenant, working mostly in a few of its tenant's namespaces.
Task weights give the mix: recall 60 %, store 25 % (single 20, batch 5), session start/end
10 %, get/forget 5 %. A 429/503 is a failure for the statistics, and the agent then waits
what Retry-After says, as a well-behaved client does. Status codes per request type go to
<csv prefix>_status.csv, with whether each 429/503 carried Retry-After.
"""
# Locust's event decorators carry no types.
# mypy: disable-error-code="untyped-decorator"
from __future__ import annotations

import csv
import itertools
import os
import random
from collections import Counter, deque
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import texts
from loadtests.shape import Shape
from loadtests.tenants import Tenant, cleanup, load, prepare, root_key

TENANTS_ENV = "ENGRAM_LOAD_TENANTS"
MAX_BACKOFF_S = 5.0
HOME_NAMESPACES = 3    # namespaces one agent mostly works in (its end users)
HOME_SHARE = 0.8       # the rest of the time, any namespace of its tenant

_tenants: list[Tenant] = []
_own_tenants = False   # prepared here (standalone), so cleaned up here
_user_ids = itertools.count()
# (request name, HTTP status, Retry-After present) → count; status 0: no HTTP answer.
_status: Counter[tuple[str, int, bool]] = Counter()


@events.init.add_listener
def _load_tenants(environment: Environment, **_: Any) -> None:
    global _own_tenants
    if isinstance(environment.runner, WorkerRunner):
        raise SystemExit("distributed runs are not supported: the tenants live in this process")
    path = os.environ.get(TENANTS_ENV)
    if path:
        _tenants.extend(load(Path(path)))
        return
    host = environment.host or "http://127.0.0.1:3300"
    data = Path(os.environ.get("ENGRAM_DATA_DIR", "data"))
    _tenants.extend(prepare(host, root_key(data), tenants=4, namespaces=25, per_namespace=12))
    _own_tenants = True


@events.request.add_listener
def _count_status(name: str, response: Any = None, **_: Any) -> None:
    code = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None)
    retry_after = bool(code in (429, 503) and headers and headers.get("Retry-After"))
    _status[(name, code, retry_after)] += 1


def _write_status(environment: Environment) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    with open(f"{prefix}_status.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "status", "retry_after", "count"])
        for (name, code, ra), n in sorted(_status.items()):
            w.writerow([name, code, int(ra), n])


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    _write_status(environment)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    _write_status(environment)  # again: requests that finished while stopping count too
    if _own_tenants and not isinstance(environment.runner, MasterRunner):
        cleanup(environment.host or "http://127.0.0.1:3300",
                root_key(Path(os.environ.get("ENGRAM_DATA_DIR", "data"))), _tenants, drop_data=True)


class TenantAgent(FastHttpUser):
    wait_time = between(0.5, 2.0)  # an agent's think time between memory calls

    def on_start(self) -> None:
        n = next(_user_ids)
        self.tenant = _tenants[n % len(_tenants)]
        self.rng = random.Random()
        self.auth = {"Authorization": f"Bearer {self.tenant.key}"}
        self.home = self.rng.sample(self.tenant.namespaces, min(HOME_NAMESPACES, len(self.tenant.namespaces)))
        self.conversation: tuple[str, str] | None = None  # (namespace, session id)
        self.mine: deque[tuple[str, str]] = deque(maxlen=200)  # (namespace, id) it stored

    def on_stop(self) -> None:
        if self.conversation is not None:
            self._end_session()

    # -- plumbing ---------------------------------------------------------------------
    def _namespace(self) -> str:
        if self.conversation is not None:
            return self.conversation[0]  # a conversation stays with its end user
        if self.rng.random() < HOME_SHARE:
            return self.rng.choice(self.home)
        return self.rng.choice(self.tenant.namespaces)

    def _call(self, method: str, path: str, name: str, body: dict[str, Any] | None = None,
              ok: tuple[int, ...] = (200,)) -> Any:
        """One request; the parsed JSON on success, else None (after any Retry-After wait)."""
        wait = 0.0
        with self.client.request(method, path, name=name, json=body, headers=self.auth,
                                 catch_response=True) as r:
            try:
                payload = r.json()
            except Exception:
                payload = None
            if r.status_code in ok:
                r.success()
                return payload
            code = payload.get("code", "") if isinstance(payload, dict) else ""
            if r.status_code in (429, 503):
                retry_after = r.headers.get("Retry-After") if r.headers else None
                wait = min(float(retry_after), MAX_BACKOFF_S) if retry_after else 1.0
                r.failure(f"{r.status_code} {code} retry-after={retry_after}")
            else:
                r.failure(f"{r.status_code} {code or r.error or ''}".strip())
        if wait:
            gevent.sleep(wait)
        return None

    def _remember(self, namespace: str, ids: list[str]) -> None:
        self.mine.extend((namespace, i) for i in ids)

    # -- tasks ------------------------------------------------------------------------
    @task(60)
    def recall(self) -> None:
        ns = self._namespace()
        body = texts.recall_body(self.rng, self.tenant.theme, ns)
        if self.conversation is not None and self.rng.random() < 0.3:
            body["session_id"] = self.conversation[1]
        self._call("POST", "/v1/memory/recall", "recall", body)

    @task(20)
    def store(self) -> None:
        ns = self._namespace()
        sid = self.conversation[1] if self.conversation is not None else None
        out = self._call("POST", "/v1/memory/store", "store",
                         {"agent_id": ns, **texts.memory_item(self.rng, self.tenant.theme, sid)})
        if out:
            self._remember(ns, [out["memory"]["id"]])

    @task(5)
    def store_batch(self) -> None:
        ns = self._namespace()
        items = [texts.memory_item(self.rng, self.tenant.theme) for _ in range(self.rng.randint(5, 20))]
        out = self._call("POST", "/v1/memories/store/batch", "store_batch",
                         {"agent_id": ns, "memories": items})
        if out:
            self._remember(ns, [m["id"] for m in out["stored"]])

    @task(10)
    def session_start_or_end(self) -> None:
        """Start a conversation, or end the open one: the two alternate per agent."""
        if self.conversation is not None:
            self._end_session()
            return
        ns = self._namespace()
        out = self._call("POST", "/v1/sessions/start", "session_start",
                         {"agent_id": ns,
                          "metadata": {"channel": self.rng.choice(["chat", "voice", "email"])}},
                         ok=(200, 201))
        if out:
            self.conversation = (ns, out["session"]["id"])

    def _end_session(self) -> None:
        assert self.conversation is not None
        _, sid = self.conversation
        self.conversation = None
        self._call("POST", f"/v1/sessions/{sid}/end", "session_end",
                   {"summary": texts.summary_text(self.rng, self.tenant.theme)})

    @task(3)
    def get(self) -> None:
        ns = self.rng.choice(self.tenant.namespaces)
        seeded = self.tenant.seeded.get(ns)
        if self.mine and (not seeded or self.rng.random() < 0.5):
            ns, mid = self.rng.choice(self.mine)
        elif seeded:  # seed memories are never forgotten, so a get of one is never a 404
            mid = self.rng.choice(seeded)
        else:
            return
        self._call("GET", f"/v1/memory/get/{mid}?agent_id={ns}", "get")

    @task(2)
    def forget(self) -> None:
        """Forget one of its own memories (never a seed one, which other agents may get)."""
        if not self.mine:
            self.store()
            if not self.mine:
                return
        ns, mid = self.mine.pop()
        self._call("POST", "/v1/memory/forget", "forget", {"agent_id": ns, "memory_ids": [mid]})


class RiseAndFall(LoadTestShape):
    """-u is the peak, -r the ramp rate, -t the whole run (see loadtests/shape.py)."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        opts = self.runner.environment.parsed_options
        shape = Shape(peak_users=int(getattr(opts, "num_users", None) or 160),
                      spawn_rate=float(getattr(opts, "spawn_rate", None) or 8),
                      duration_s=float(getattr(opts, "run_time", None) or 180))
        return shape.target(self.get_run_time())  # type: ignore[no-untyped-call]
