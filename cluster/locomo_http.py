"""The benchmark's calls to the HTTP API (cluster/locomo.py): ingest a conversation, ask a question."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from cluster.locomo_data import parse_date, photo_note, sessions_of
from cluster.locomo_scores import TOP_K

BATCH = 100


class Unavailable(Exception):
    """The server refused a channel's routing (400)."""


# -- HTTP ------------------------------------------------------------------------------------
async def call(c: httpx.AsyncClient, method: str, path: str, *, attempts: int = 8,
               **kwargs: Any) -> httpx.Response:
    """One request, retried on 429/503 (after Retry-After) and on connection errors."""
    delay = 0.5
    for attempt in range(attempts):
        try:
            r = await c.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
            continue
        if r.status_code in (429, 503) and attempt < attempts - 1:
            try:
                wait = float(r.headers.get("retry-after", delay))
            except ValueError:
                wait = delay
            await asyncio.sleep(min(max(wait, 0.1), 30))
            delay = min(delay * 2, 10)
            continue
        return r
    raise AssertionError("unreachable")


def check(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {r.status_code}: {r.text[:500]}")
    body: dict[str, Any] = r.json()
    return body


async def ingest(c: httpx.AsyncClient, conv: dict[str, Any], run_id: str, reset: bool) -> dict[str, Any]:
    sample = conv["sample_id"]
    ns = f"locomo-{sample}"
    if reset:
        r = await call(c, "DELETE", f"/v1/namespaces/{ns}")
        if r.status_code not in (200, 404):
            check(r, f"drop {ns}")
    speakers = conv["conversation"]
    stored = 0
    for n, date_text, turns in sessions_of(speakers):
        when = parse_date(date_text)
        started = check(await call(c, "POST", "/v1/sessions/start", json={
            "agent_id": ns, "metadata": {"locomo_session": n, "date": date_text}}), f"{ns} session {n} start")
        session_id = started["session"]["id"]
        items = []
        for turn in turns:
            items.append({
                "content": f"{turn['speaker']}: {turn['text']}{photo_note(turn)}",
                "session_id": session_id,
                "metadata": {"dia_id": turn["dia_id"], "speaker": turn["speaker"]},
                "event_time": when.isoformat().replace("+00:00", "Z"),
            })
        for i in range(0, len(items), BATCH):
            chunk = items[i:i + BATCH]
            body = check(await call(c, "POST", "/v1/memories/store/batch",
                                    json={"agent_id": ns, "memories": chunk},
                                    headers={"Idempotency-Key": f"locomo-{run_id}-{sample}-{n}-{i}"}),
                         f"{ns} session {n} store")
            if body.get("stored_count") != len(chunk):
                raise RuntimeError(f"{ns} session {n}: stored {body.get('stored_count')} of {len(chunk)}")
            stored += len(chunk)
        check(await call(c, "POST", f"/v1/sessions/{session_id}/end", json={}), f"{ns} session {n} end")
    return {"namespace": ns, "memories": stored}


async def recall(c: httpx.AsyncClient, ns: str, question: str, routing: str | None,
                 endpoint: str = "recall") -> tuple[list[str], list[str], float]:
    """The ranked results' dia_ids, best first, and those of the context the answer adds
    after them (session neighbours inlined with `retrieval: "neighborhood"`), and the time."""
    body: dict[str, Any] = {"agent_id": ns, "query": question, "top_k": TOP_K}
    if routing is not None:
        body["routing"] = routing
    t = time.perf_counter()
    r = await call(c, "POST", f"/v1/memory/{endpoint}", json=body)
    elapsed = time.perf_counter() - t
    if r.status_code == 400 and routing is not None:
        raise Unavailable(r.text[:300])
    data = check(r, f"recall in {ns}")
    rows = data.get("memories", data.get("results", []))
    ranked: list[str] = []
    context: list[str] = []
    for m in rows:
        d = (m.get("metadata") or {}).get("dia_id") if isinstance(m, dict) else None
        extra = isinstance(m, dict) and m.get("retrieval") in ("neighborhood", "associated")
        (context if extra else ranked).append(d if isinstance(d, str) else "?")
    return ranked[:TOP_K], context, elapsed
