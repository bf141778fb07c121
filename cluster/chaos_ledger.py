"""The chaos run's ledger clients (cluster/chaos.py): each stores into a namespace of its own
(one Idempotency-Key per memory, kept across retries), forgets one in four of what it stored,
and keeps the books that the read-back checks: what was acknowledged, what was forgotten,
every answer with its time (for recovery times and the timeline)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

ROOT_KEY = "ek_chaos_root"
REQUEST_TIMEOUT_S = 30.0
OK_4XX = {404, 409}  # a forget of a memory gone already; a retried id after its key was used


@dataclass
class Ledger:
    """What one ledger client sent and was told."""

    namespace: str
    acked: dict[str, str] = field(default_factory=dict)  # memory id -> content
    forgotten: set[str] = field(default_factory=set)  # ids whose forget was acknowledged
    forget_answers: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (time, status)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, op, status)
    errors: list[str] = field(default_factory=list)


def _engram_error(r: httpx.Response) -> bool:
    try:
        return "code" in r.json()
    except ValueError:
        return False


def _send(http: httpx.Client, ledger: Ledger, op: str, call: Callable[[], httpx.Response],
          stop: threading.Event) -> httpx.Response | None:
    """Send until answered for good: 429/503 wait Retry-After, a lost connection (HAProxy
    gone) retries after a second; both are safe to repeat (the store's Idempotency-Key)."""
    while not stop.is_set():
        try:
            r = call()
        except httpx.HTTPError as exc:
            ledger.events.append((time.time(), op, "no answer"))
            if not isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                                    httpx.TimeoutException)):
                ledger.errors.append(f"{op}: {type(exc).__name__}: {exc}")
                return None
            time.sleep(1.0)
            continue
        ledger.events.append((time.time(), op, str(r.status_code)))
        if r.status_code in (429, 503):
            time.sleep(min(float(r.headers.get("retry-after", "1")), 2.0))
            continue
        if r.status_code >= 400 and (r.status_code not in OK_4XX or not _engram_error(r)):
            # An expected 4xx counts only in Engram's own error body: a 404 from the ingress
            # (no route loaded yet) says nothing about the memory.
            ledger.errors.append(f"{op}: {r.status_code} {r.text[:300]}")
            return None
        return r
    return None


def ledger_client(url: str, number: int, ledger: Ledger, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ROOT_KEY}"},
                      timeout=REQUEST_TIMEOUT_S) as http:
        i = 0
        while not stop.is_set():
            content = f"ledger {number} fact {i}: parcel {i * 7919 % 10007} went to dock {i % 13}"
            key = f"chaos-{number}-{i}"
            r = _send(http, ledger, "store", lambda: http.post(
                "/v1/memory/store", json={"agent_id": ledger.namespace, "content": content},
                headers={"Idempotency-Key": key}), stop)
            if r is not None and r.status_code == 200:
                ledger.acked[str(r.json()["memory"]["id"])] = content
            if i % 4 == 3 and ledger.acked:  # forget one in four, the oldest not yet forgotten
                victim = next(m for m in ledger.acked if m not in ledger.forgotten)
                r = _send(http, ledger, "forget", lambda: http.post(
                    "/v1/memory/forget", json={"agent_id": ledger.namespace, "memory_ids": [victim]}), stop)
                if r is not None and r.status_code in (200, 404):
                    ledger.forgotten.add(victim)
                    ledger.forget_answers[victim] = (time.time(), f"{r.status_code} {r.text[:120]}")
            i += 1
            time.sleep(0.05)
