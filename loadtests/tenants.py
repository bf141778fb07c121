"""Load-test tenants: one API key each, granted only its own namespaces, with seed memories.

The root key creates the keys through the admin routes (POST /admin/keys), exactly as an
operator would onboard a tenant; every request of the load itself then uses the tenant's
key, so auth and grant checks are part of what is measured. `cleanup` deletes the keys
and (unless kept) the namespaces again.
"""
from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from loadtests import texts

KEY_NAME_PREFIX = "loadtest-"
NAMESPACE_PREFIX = "load-"
TIMEOUT_S = 120.0


@dataclass
class Tenant:
    name: str
    theme: str
    key: str
    key_id: str
    namespaces: list[str]
    seeded: dict[str, list[str]] = field(default_factory=dict)  # namespace → memory ids

    @property
    def grant(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.name}-*"


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S)


def _delete_stale_keys(root: httpx.Client) -> None:
    """Keys left by a run that was killed before its cleanup: never leave live keys behind."""
    r = root.get("/admin/keys")
    r.raise_for_status()
    for k in r.json()["keys"]:
        if str(k["name"]).startswith(KEY_NAME_PREFIX):
            root.delete(f"/admin/keys/{k['key_id']}").raise_for_status()


def _create(root: httpx.Client, index: int, namespaces: int) -> Tenant:
    name = f"t{index}"
    theme = texts.THEMES[index % len(texts.THEMES)]
    grant = f"{NAMESPACE_PREFIX}{name}-*"
    r = root.post("/admin/keys", json={"name": f"{KEY_NAME_PREFIX}{name}", "scope": "write",
                                        "namespaces": [grant], "expires_in_days": 1})
    r.raise_for_status()
    body = r.json()
    names = [f"{NAMESPACE_PREFIX}{name}-{theme}-{j:02d}" for j in range(namespaces)]
    return Tenant(name, theme, body["key"], body["key_id"], names)


def _seed(url: str, tenant: Tenant, per_namespace: int, rng_seed: int) -> None:
    """Batch-store a few memories per namespace with the tenant's own key."""
    rng = random.Random(rng_seed)
    with _client(url, tenant.key) as c:
        for ns in tenant.namespaces:
            items = [texts.memory_item(rng, tenant.theme) for _ in range(per_namespace)]
            r = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": items})
            r.raise_for_status()
            tenant.seeded[ns] = [m["id"] for m in r.json()["stored"]]


def prepare(url: str, root_key: str, tenants: int, namespaces: int, per_namespace: int) -> list[Tenant]:
    with _client(url, root_key) as root:
        _delete_stale_keys(root)
        made = [_create(root, i, namespaces) for i in range(tenants)]
    if per_namespace > 0:
        # Two at a time: the service has two shards, and this machine two cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda it: _seed(url, it[1], per_namespace, it[0]), enumerate(made)))
    return made


def cleanup(url: str, root_key: str, tenants: list[Tenant], drop_data: bool) -> None:
    with _client(url, root_key) as root:
        for t in tenants:
            root.delete(f"/admin/keys/{t.key_id}").raise_for_status()
            if drop_data:
                for ns in t.namespaces:
                    r = root.delete(f"/v1/namespaces/{ns}")
                    if r.status_code != 404:
                        r.raise_for_status()


def save(tenants: list[Tenant], path: Path) -> None:
    """Written 0600 from the start: the file holds live API keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([asdict(t) for t in tenants], f)


def load(path: Path) -> list[Tenant]:
    return [Tenant(**t) for t in json.loads(path.read_text())]


def root_key(data_dir: Path) -> str:
    """ENGRAM_ROOT_API_KEY, else the key `make serve` wrote to <data>/.root_key."""
    env = os.environ.get("ENGRAM_ROOT_API_KEY")
    if env:
        return env
    path = data_dir / ".root_key"
    if not path.exists():
        raise SystemExit(f"no root key: set ENGRAM_ROOT_API_KEY or start `make serve` (it writes {path})")
    return path.read_text().strip()
