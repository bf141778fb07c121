"""Knowledge graph: entity links find what similarity misses; graph routes; associations."""
from __future__ import annotations

import random
import time

from tests.builders import Engram

DAY = 86_400
CUSTOMERS = ["Omar Haddad", "Li Wei", "Ana Souza", "Tom Becker", "Priya Nair", "Kofi Mensah",
             "Sara Lind", "Marco Rossi", "Yuki Tanaka", "Ines Duarte"]
TOPICS = ["asked for a faster shipping option", "updated the billing address",
          "wants a copy of the invoice", "reported a login problem on the mobile app",
          "asked whether the store ships to Canada", "subscribed to the newsletter",
          "praised the support team", "asked about gift wrapping", "changed the delivery slot",
          "requested a product manual", "asked for a bulk discount", "left a product review"]


def distractors(n: int) -> list[str]:
    rng = random.Random(4521)
    out = []
    for i in range(n):
        who = rng.choice(CUSTOMERS)
        out.append(f"{who} {rng.choice(TOPICS)} (ticket {10000 + i}).")
    return out


def test_support_bot_finds_the_refund_through_the_graph(engram: Engram, ns: str) -> None:
    now = int(time.time())
    with engram.http() as c:
        items = [{"content": t, "event_time": now - 30 * DAY} for t in distractors(200)]
        for start in range(0, len(items), 100):
            c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": items[start:start + 100]}).raise_for_status()
        report = c.post("/v1/memory/store", json={
            "agent_id": ns, "content": "Customer jane-doe reported that order #4521 arrived with a cracked screen",
            "event_time": now - 8 * DAY}).json()["memory"]
        refund = c.post("/v1/memory/store", json={
            "agent_id": ns, "content": "Refund approved for #4521 after photos were reviewed",
            "event_time": now - 1 * DAY}).json()["memory"]
        r = c.post("/v1/memory/recall", json={
            "agent_id": ns, "query": "what happened with Jane's return request", "top_k": 5})
        results = [m for m in r.json()["memories"] if m["retrieval"] is None]
        top = {m["id"]: m for m in results}
        assert report["id"] in top and refund["id"] in top, [m["content"] for m in results]
        assert "graph" in top[refund["id"]]["channels"]

        # The graph routes see the same link.
        g = c.get(f"/v1/memories/{report['id']}/graph", params={"depth": 1}).json()
        assert g["root_id"] == report["id"]
        assert refund["id"] in {n["memory_id"] for n in g["nodes"]}
        [edge] = [e for e in g["edges"] if e["to_id"] == refund["id"]]
        assert edge["edge_type"] == "shares_entity" and "order:4521" in edge["shared_entities"]
        kg = c.post("/v1/knowledge/graph", json={"agent_id": ns, "memory_id": refund["id"], "depth": 2}).json()
        assert report["id"] in {n["id"] for n in kg["nodes"]}
        ents = c.get(f"/v1/memory/entities/{report['id']}").json()
        assert {"order:4521", "person:jane doe"} <= {e["key"] for e in ents["entities"]}

        assoc = c.post("/v1/memory/recall", json={
            "agent_id": ns, "query": "cracked screen", "top_k": 1, "include_associated": True,
            "associated_memories_depth": 2}).json()
        assert assoc["memories"][0]["id"] == report["id"]
        assert {m["id"]: m["depth"] for m in assoc["associated_memories"]}.get(refund["id"]) == 1


def test_forgotten_memories_leave_the_graph(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        a = c.post("/v1/memory/store", json={"agent_id": ns, "content": "Order #777 was delayed"}).json()["memory"]
        b = c.post("/v1/memory/store", json={"agent_id": ns, "content": "Order #777 shipped today"}).json()["memory"]
        c.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": [b["id"]]}).raise_for_status()
        g = c.get(f"/v1/memories/{a['id']}/graph").json()
        assert [n["memory_id"] for n in g["nodes"]] == [a["id"]]


def test_extract_route(engram: Engram) -> None:
    with engram.http() as c:
        out = c.post("/v1/extract", json={"text": "Email jane@example.com about order #4521 by 8 May 2023"}).json()
        keys = {e["key"] for e in out["entities"]}
        assert {"email:jane@example.com", "order:4521", "date:2023-05-08"} <= keys
        assert all({"entity_type", "value", "score"} <= set(e) for e in out["entities"])


def test_an_update_keeps_the_entities_of_what_it_does_not_change(engram: Engram, ns: str) -> None:
    """Entities come from the text and the `key:value` tags: a new text keeps the tags'
    entities, new tags keep the text's."""
    def keys(mid: str) -> set[str]:
        return {e["key"] for e in c.get(f"/v1/memory/entities/{mid}").json()["entities"]}
    with engram.http() as c:
        m = c.post("/v1/memory/store", json={"agent_id": ns, "content": "Order #4521 shipped",
                                             "tags": ["plan:gold"]}).json()["memory"]
        assert {"order:4521", "tag:plan gold"} <= keys(m["id"])
        c.put(f"/v1/memory/update/{m['id']}", params={"agent_id": ns},
              json={"content": "Order #9876 shipped"}).raise_for_status()
        after_text = keys(m["id"])
        assert "tag:plan gold" in after_text and "order:9876" in after_text
        assert "order:4521" not in after_text
        c.put(f"/v1/memory/update/{m['id']}", params={"agent_id": ns},
              json={"tags": ["plan:silver"]}).raise_for_status()
        after_tags = keys(m["id"])
        assert {"order:9876", "tag:plan silver"} <= after_tags and "tag:plan gold" not in after_tags
