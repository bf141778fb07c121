"""Several Ray nodes on this machine, on loopback, and the loss of one of them.

ray.cluster_utils.Cluster starts each node's processes (a raylet, its agents, its workers)
as a real node would, joined to one GCS, every one on 127.0.0.1: with
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (cluster/loopback.py) a node's address is loopback, and
`ray start` would refuse a second node, but Cluster starts nodes directly. Custom resources
say which node may hold what: `engram_head` (the Router, the Embedder, Serve's own actors)
on the head only, `shard_slot` one per node, so that a shard's replicas land on different
nodes.

Losing a node is a SIGKILL of every process it runs, at once: its raylet and agents, and
every worker it started (the Serve replicas on it). Nothing gets to say goodbye.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

HEAD_RESOURCE = "engram_head"
SHARD_SLOT = "shard_slot"


@dataclass(frozen=True)
class LoopbackCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    workers: tuple[Any, ...]  # ray._private.node.Node of each worker node

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def node_ids(self) -> dict[str, str]:
        """node id (hex) → "head" or "worker-<n>"."""
        names = {self.cluster.head_node.node_id: "head"}
        names.update({node.node_id: f"worker-{n}" for n, node in enumerate(self.workers, start=1)})
        return names

    def worker_named(self, node_id: str) -> Any:
        return next(node for node in self.workers if node.node_id == node_id)


@contextmanager
def loopback_cluster(workers: int, gcs_port: int, dashboard_port: int, head_cpus: int = 2,
                     worker_cpus: int = 1) -> Iterator[LoopbackCluster]:
    """A head and `workers` worker nodes, each with one shard slot; stopped after the block.
    The dashboard (127.0.0.1) serves the state API that finds where replicas run."""
    from ray.cluster_utils import Cluster

    memory = 200 * 1024 * 1024  # object store per node: the service passes small objects only
    cluster = Cluster(initialize_head=True, head_node_args={
        "gcs_server_port": gcs_port, "num_cpus": head_cpus, "object_store_memory": memory, "include_dashboard": True,
        "dashboard_host": "127.0.0.1", "dashboard_port": dashboard_port,
        "resources": {HEAD_RESOURCE: 100, SHARD_SLOT: 1}})
    try:
        nodes = tuple(cluster.add_node(num_cpus=worker_cpus, object_store_memory=memory,
                                       resources={SHARD_SLOT: 1}) for _ in range(workers))
        cluster.wait_for_nodes(timeout=120)
        yield LoopbackCluster(cluster, nodes)
    finally:
        cluster.shutdown()  # type: ignore[no-untyped-call]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux: /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces: the fields after its ")" are fixed.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def node_pids(node: Any) -> list[int]:
    """Every process of a node: its own (raylet, agents) and the workers they started."""
    own = {info.process.pid for infos in node.all_processes.values() for info in infos
           if info.process is not None}
    below = set().union(*(descendants(pid) for pid in own)) if own else set()
    return sorted((own | below) - {os.getpid()})


def kill_node(lc: LoopbackCluster, node: Any) -> list[int]:
    """SIGKILL every process of a worker node at once; answers their pids."""
    pids = node_pids(node)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Cluster's own bookkeeping (its processes are dead already: nothing is left to stop).
    lc.cluster.remove_node(node, allow_graceful=False)
    return pids


def replica_nodes(address: str, app: str, deployment: str) -> dict[str, str]:
    """actor id → node id of the live replicas of a Serve deployment of the cluster at
    `address` (named: with another cluster on the machine, a test session's, Ray's own
    lookup warns "found multiple active Ray instances" and picks the latest)."""
    from ray.util.state import list_actors

    actors = list_actors(address=address, filters=[("class_name", "=", f"ServeReplica:{app}:{deployment}"),
                                  ("state", "=", "ALIVE")], detail=True, limit=10_000,
                         raise_on_missing_output=False)
    return {str(a["actor_id"]): str(a["node_id"]) for a in actors}
