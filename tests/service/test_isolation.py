"""Tenants never see each other: a key granted acme-* reaches nothing in bolt-*."""
from __future__ import annotations

import uuid

import pytest

from tests.builders import Engram


@pytest.fixture
def tenants(engram: Engram) -> dict[str, str]:
    u = uuid.uuid4().hex[:8]
    bolt, acme = f"bolt-{u}", f"acme-{u}"
    with engram.http() as root:
        memory = root.post("/v1/memory/store", json={
            "agent_id": bolt, "content": f"bolt private roadmap {u}", "tags": ["secret"]}).json()["memory"]
        session = root.post("/v1/sessions/start", json={"agent_id": bolt}).json()["session"]
        root.post("/v1/memory/store", json={"agent_id": acme, "content": f"acme note {u}"}).raise_for_status()
    return {
        "bolt": bolt, "acme": acme, "memory_id": memory["id"], "session_id": session["id"], "u": u,
        "acme_write": engram.create_key("write", ["acme-*"]),
        "acme_read": engram.create_key("read", ["acme-*"]),
        "acme_admin": engram.create_key("admin", ["_dakera_agent_acme-*"]),
    }


def test_acme_key_reaches_nothing_of_bolt(engram: Engram, tenants: dict[str, str]) -> None:
    bolt, acme, mid, sid = tenants["bolt"], tenants["acme"], tenants["memory_id"], tenants["session_id"]
    with engram.http(tenants["acme_write"]) as c:
        listed = c.get("/v1/agents").json()
        assert acme in {a["agent_id"] for a in listed} and bolt not in {a["agent_id"] for a in listed}
        assert bolt not in c.get("/v1/namespaces").json()["namespaces"]
        assert all(s["agent_id"] != bolt for s in c.get("/v1/sessions").json())
        # Named directly: 403.
        denied = [
            c.get(f"/v1/memory/get/{mid}", params={"agent_id": bolt}),
            c.post("/v1/memory/recall", json={"agent_id": bolt, "query": "roadmap"}),
            c.post("/v1/memory/search", json={"agent_id": bolt, "query": "roadmap"}),
            c.put(f"/v1/memory/update/{mid}", params={"agent_id": bolt}, json={"content": "pwned"}),
            c.post("/v1/memory/forget", json={"agent_id": bolt, "memory_ids": [mid]}),
            c.patch(f"/v1/memories/{mid}/importance", json={"agent_id": bolt, "importance": 1.0}),
            c.post("/v1/memories/recall/batch", json={"agent_id": bolt, "filter": {}}),
            c.request("DELETE", "/v1/memories/forget/batch", json={"agent_id": bolt, "filter": {"tags": ["secret"]}}),
            c.post("/v1/memories/store/batch", json={"agent_id": bolt, "memories": [{"content": "x"}]}),
            c.post("/v1/sessions/start", json={"agent_id": bolt}),
            c.get(f"/v1/agents/{bolt}/memories"),
            c.get(f"/v1/agents/{bolt}/sessions"),
            c.get(f"/v1/agents/{bolt}/stats"),
            c.get("/v1/sessions", params={"agent_id": bolt}),
            c.delete(f"/v1/namespaces/{bolt}"),
        ]
        assert [r.status_code for r in denied] == [403] * len(denied), [r.text for r in denied]
        # Guessed ids, without naming bolt's namespace: nothing is there.
        guessed = [
            c.get(f"/v1/memory/get/{mid}"),
            c.put(f"/v1/memory/update/{mid}", params={"agent_id": acme}, json={"content": "pwned"}),
            c.patch(f"/v1/memories/{mid}/importance", json={"agent_id": acme, "importance": 1.0}),
            c.get(f"/v1/sessions/{sid}"),
            c.post(f"/v1/sessions/{sid}/end", json={}),
            c.post(f"/v1/sessions/{sid}/touch"),
            c.get(f"/v1/sessions/{sid}/memories"),
        ]
        assert [r.status_code for r in guessed] == [404] * len(guessed), [r.text for r in guessed]
        forgot = c.post("/v1/memory/forget", json={"agent_id": acme, "memory_ids": [mid]})
        assert forgot.status_code == 200 and forgot.json()["deleted_count"] == 0
        recalled = c.post("/v1/memory/recall", json={"agent_id": acme, "query": f"bolt private roadmap {tenants['u']}"})
        assert all(m["agent_id"] == acme for m in recalled.json()["memories"])
    with engram.http() as root:  # bolt's data is untouched
        m = root.get(f"/v1/memory/get/{mid}", params={"agent_id": bolt}).json()
        assert m["content"].startswith("bolt private roadmap") and m["importance"] == 0.5
        s = root.get(f"/v1/sessions/{sid}").json()
        assert s["active"] is True and s["ended_at"] is None


def test_read_key_cannot_write(engram: Engram, tenants: dict[str, str]) -> None:
    acme = tenants["acme"]
    with engram.http(tenants["acme_read"]) as c:
        assert c.post("/v1/memory/recall", json={"agent_id": acme, "query": "note"}).status_code == 200
        writes = [
            c.post("/v1/memory/store", json={"agent_id": acme, "content": "x"}),
            c.post("/v1/memories/store/batch", json={"agent_id": acme, "memories": [{"content": "x"}]}),
            c.post("/v1/memory/forget", json={"agent_id": acme, "memory_ids": ["x"]}),
            c.post("/v1/sessions/start", json={"agent_id": acme}),
            c.post("/v1/agents", json={"agent_id": acme + "-new"}),
            c.post("/admin/keys", json={"name": "n", "scope": "read", "namespaces": ["acme-*"]}),
        ]
        assert [r.status_code for r in writes] == [403] * len(writes)
        assert all(r.json()["code"] == "INSUFFICIENT_SCOPE" for r in writes)


def test_tenant_admin_manages_only_its_own_keys(engram: Engram, tenants: dict[str, str]) -> None:
    with engram.http(tenants["acme_admin"]) as c:
        assert c.post("/admin/keys", json={"name": "b", "scope": "write", "namespaces": ["bolt-*"]}).status_code == 403
        assert c.post("/admin/keys", json={"name": "all", "scope": "read"}).status_code == 403
        assert c.post("/admin/keys", json={"name": "su", "scope": "super_admin", "namespaces": ["acme-x"]}).status_code == 403
        made = c.post("/admin/keys", json={"name": "eu", "scope": "read", "namespaces": ["acme-eu-*"]})
        assert made.status_code == 201
        listed = {k["key_id"] for k in c.get("/admin/keys").json()["keys"]}
        assert made.json()["key_id"] in listed and "root" not in listed
        assert c.delete("/admin/keys/root").status_code == 404
        assert c.delete(f"/admin/keys/{made.json()['key_id']}").status_code == 200
    with engram.http(made.json()["key"]) as gone:
        assert gone.get("/v1/auth/whoami").status_code == 401


def test_keys_are_stored_hashed(engram: Engram, tenants: dict[str, str]) -> None:
    raw = (engram.data_dir / "control.db").read_bytes()
    for secret in (tenants["acme_write"], tenants["acme_read"], engram.root_key):
        assert secret.encode() not in raw


def test_key_managers_reach_only_keys_within_their_scope_and_grants(engram: Engram,
                                                                    tenants: dict[str, str]) -> None:
    u = tenants["u"]
    bolt_key = engram.create_key("write", [f"bolt-{u}*"], name="bolt-writer")
    acme_su = engram.create_key("super_admin", [f"acme-{u}*"], name="acme-su")
    nothing = engram.create_key("read", [], name="grants-nothing")
    with engram.http() as root:
        ids = {k["name"]: k["key_id"] for k in root.get("/admin/keys").json()["keys"]}
    with engram.http(acme_su) as c:  # a super_admin of one tenant is no one's admin elsewhere
        listed = {k["key_id"] for k in c.get("/admin/keys").json()["keys"]}
        assert ids["bolt-writer"] not in listed and ids["grants-nothing"] not in listed
        assert c.delete(f"/admin/keys/{ids['bolt-writer']}").status_code == 404
    with engram.http(tenants["acme_admin"]) as c:  # an admin cannot remove a super_admin
        assert ids["acme-su"] not in {k["key_id"] for k in c.get("/admin/keys").json()["keys"]}
        assert c.delete(f"/admin/keys/{ids['acme-su']}").status_code == 404
    for key in (bolt_key, acme_su, nothing):
        with engram.http(key) as still:
            assert still.get("/v1/auth/whoami").status_code == 200


def test_a_key_expires_no_later_than_the_key_that_made_it(engram: Engram, tenants: dict[str, str]) -> None:
    u = tenants["u"]
    with engram.http() as root:
        made = root.post("/admin/keys", json={"name": "short", "scope": "admin",
                                              "namespaces": [f"acme-{u}*"], "expires_in_days": 1})
        short, short_expiry = made.json()["key"], made.json()["expires_at"]
    with engram.http(short) as c:
        child = c.post("/admin/keys", json={"name": "child", "scope": "read",
                                            "namespaces": [f"acme-{u}*"]}).json()
        assert child["expires_at"] is not None and child["expires_at"] <= short_expiry


def test_a_batch_names_one_agent(engram: Engram, tenants: dict[str, str]) -> None:
    acme, bolt = tenants["acme"], tenants["bolt"]
    with engram.http(tenants["acme_write"]) as c:
        r = c.post("/v1/memories/store/batch", json={"agent_id": acme, "memories": [
            {"content": "fine", "agent_id": acme}, {"content": "misfiled", "agent_id": bolt}]})
        assert r.status_code == 400 and r.json()["field"] == "memories[1].agent_id", r.text
