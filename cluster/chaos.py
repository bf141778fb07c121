"""Faults under load (`make chaos`): Engram keeps answering, and loses nothing, while its
processes are killed one at a time and then together.

    python -m cluster.chaos [--form embedded|production] [--gap 20] [--users 6] [--out DIR]

Starts Engram on 127.0.0.1 (the form's storage; the production form's PostgreSQL, Milvus
and Elasticsearch-API emulator on loopback too) behind Serve's HAProxy ingress, as
`make serve` deploys it. Then, for a bounded time:
- Locust (its own process) runs the load test's mix (loadtests/locustfile.py);
- ledger clients, a namespace each on every shard, store (one Idempotency-Key per memory,
  kept across retries), forget some of what they stored, and keep the books;
- every `--gap` seconds one fault, with SIGKILL: a Shard replica, the Embedder, a Router
  replica, HAProxy; on the production form a restart of the PostgreSQL server; then all
  of them at once.
After the last fault and one more gap, everything is read back. Writes into
bench-results/chaos/<time>/: timeline.png (requests/s, answers by status, replicas
running, each fault marked), events.json and summary.txt. Its last line is

    chaos: acknowledged N, lost 0, duplicated 0, resurrected 0, non-429/503 errors 0, slowest recovery S s

(lost: acknowledged and not forgotten, but not stored; duplicated: stored more than once;
resurrected: forgotten, acknowledged, and back; errors: any HTTP answer but 2xx, the
expected 4xx and 429/503, from the ledger clients and Locust; recovery: from a fault until
every ledger client's next store succeeded.) Exit status 1 unless all four are 0.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cluster.bench_forms import form_storage, unavailable
from cluster.chaos_ledger import OK_4XX, REQUEST_TIMEOUT_S, ROOT_KEY, Ledger, ledger_client
from cluster.ingress import free_ports, ingress_env
from cluster.local import deployment_options, wait_ready
from cluster.loopback import ONE_MACHINE_RAY, loopback_env_beside
from cluster.node_loss_drill import read_back
from shards.routing import shard_for

ROOT = Path(__file__).resolve().parent.parent
RECOVERY_TIMEOUT_S = 180.0


# -- the faults ---------------------------------------------------------------------------

def replica_pids(deployment: str, dashboard: str) -> list[int]:
    from ray.util.state import list_actors

    # The dashboard named: another Ray cluster on the machine (a test session's) is not this one.
    actors = list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], limit=1000)
    return [int(a.pid) for a in actors if a.class_name == f"ServeReplica:engram:{deployment}" and a.pid]


def haproxy_pids() -> list[int]:
    """This run's HAProxy processes (their config lies in this run's HAProxy folder)."""
    folder = str(Path(os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent)
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"haproxy") and any(folder.encode() in a for a in cmdline):
            pids.append(int(proc.name))
    return pids


def kill(pids: list[int]) -> list[int]:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def faults(form: Any, dashboard: str) -> list[tuple[str, Callable[[], str]]]:
    def replica(deployment: str) -> Callable[[], str]:
        def fault() -> str:
            pids = replica_pids(deployment, dashboard)
            return f"SIGKILL {deployment} replica pid {kill(pids[:1])}"
        return fault

    def haproxy() -> str:
        return f"SIGKILL HAProxy pids {kill(haproxy_pids())}"

    def together() -> str:
        pids = [pid for name in ("Shard0", "Embedder", "Router") for pid in replica_pids(name, dashboard)[:1]]
        return f"SIGKILL Shard0, Embedder, Router replicas and HAProxy at once: {kill(pids + haproxy_pids())}"

    out = [("Shard0 replica", replica("Shard0")), ("Embedder", replica("Embedder")),
           ("Router replica", replica("Router")), ("HAProxy", haproxy)]
    postgres = form.servers.get("postgres")
    if postgres is not None:
        def restart_postgres() -> str:
            took = postgres.restart()
            return f"PostgreSQL restarted (down {took:.1f} s)"
        out.append(("PostgreSQL restart", restart_postgres))
    out.append(("all at once", together))
    return out


def recovery(ledgers: list[Ledger], at: float, until: float) -> float:
    """Seconds from `at` until every ledger client had a store answered 200 that it sent
    after `at` (inf if one never did before `until`)."""
    slowest = 0.0
    for ledger in ledgers:
        ok = [t for t, op, status in ledger.events if op == "store" and status == "200" and at < t <= until]
        if not ok:
            return float("inf")
        slowest = max(slowest, min(ok) - at)
    return slowest


class ReplicaPoller(threading.Thread):
    def __init__(self, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.stop = stop
        self.samples: list[tuple[float, dict[str, int]]] = []

    def run(self) -> None:
        from ray import serve

        while not self.stop.is_set():
            try:
                app = serve.status().applications["engram"]
                self.samples.append((time.time(), {name: sum(n for s, n in d.replica_states.items() if s == "RUNNING")
                                                   for name, d in app.deployments.items()}))
            except Exception:  # the controller is busy restarting something: next second
                pass
            self.stop.wait(1.0)


# -- the run ------------------------------------------------------------------------------

def locust(url: str, out: Path, seconds: int, users: int) -> subprocess.Popen[bytes]:
    """Locust, its own process, running the load test's mix as 2 small tenants."""
    from loadtests import tenants

    tenants_file = out / "tenants.json"
    tenants.save(tenants.prepare(url, ROOT_KEY, tenants=2, namespaces=5, per_namespace=10), tenants_file)
    exe = Path(sys.executable).parent / "locust"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "locust"]
    env = {**os.environ, "ENGRAM_ROOT_API_KEY": ROOT_KEY, "ENGRAM_LOAD_TENANTS": str(tenants_file),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(cmd + [
        "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{seconds}s", "--csv", str(out / "locust"), "--csv-full-history", "--host", url,
        "--only-summary", "--loglevel", "WARNING"], env=env, stdout=open(out / "locust.log", "wb"),
        stderr=subprocess.STDOUT)


def locust_errors(out: Path) -> tuple[int, Counter[str]]:
    """(answers that are errors, answers by status) from the locustfile's status CSV."""
    by_status: Counter[str] = Counter()
    path = out / "locust_status.csv"
    if not path.exists():
        return 0, by_status
    with path.open() as rows:
        for row in csv.DictReader(rows):
            by_status[row["status"]] += int(row["count"])
    bad = sum(n for s, n in by_status.items()
              if s not in ("0", "429", "503") and int(s) >= 400 and int(s) not in OK_4XX)
    return bad, by_status


def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import ray
    from ray import serve

    from serve.app import build_app_with

    why = unavailable(args.form) if args.form == "production" else None
    if why:
        raise SystemExit(f"chaos: cannot start the production form's servers here: {why}")
    report: dict[str, Any] = {"form": args.form}
    with tempfile.TemporaryDirectory(prefix="engram-chaos-") as tmp, \
            form_storage(args.form, Path(tmp) / "data") as form:
        port, dashboard_port = free_ports(2)
        env = {"ENGRAM_ROOT_API_KEY": ROOT_KEY, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", **form.env}
        os.environ.update(env)
        os.environ.update(ingress_env("haproxy", private_ports=True))
        os.environ.update(loopback_env_beside("haproxy"))
        config = {"shard_count": 2, "storage": {**form.storage, "checkpoint_seconds": 2}}
        yaml = ROOT / "cluster" / ("serve.production.yaml" if args.form == "production" else "serve.yaml")
        deployments = {name: {**opts, "ray_actor_options": {"num_cpus": 0}}
                       for name, opts in deployment_options(yaml).items() if name in
                       ("Router", "Embedder", "Shard0", "Shard1")}
        ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                 dashboard_port=dashboard_port, log_to_driver=False, runtime_env={"env_vars": env})
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            serve.run(build_app_with(config, deployments), name="engram", route_prefix="/")
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, ROOT_KEY, 300)
            plan = faults(form, f"http://127.0.0.1:{dashboard_port}")
            seconds = int(args.gap * (len(plan) + 2))
            names = [n for n in (f"chaos-ledger-{i}" for i in range(64))]
            # Two on each shard: every fault reaches some ledger client.
            spread = [n for n in names if shard_for(n, 2) == 0][:2] + [n for n in names if shard_for(n, 2) == 1][:2]
            ledgers = [Ledger(namespace=n) for n in spread]
            stop = threading.Event()
            poller = ReplicaPoller(stop)
            poller.start()
            load = locust(url, out, seconds, args.users)
            threads = [threading.Thread(target=ledger_client, args=(url, i, led, stop), daemon=True)
                       for i, led in enumerate(ledgers)]
            for t in threads:
                t.start()
            began = time.time()
            fired: list[dict[str, Any]] = []
            for name, fault in plan:
                time.sleep(max(0.0, began + args.gap * (len(fired) + 1) - time.time()))
                at = time.time()
                fired.append({"fault": name, "at": at, "what": fault()})
                print(f"  t={at - began:5.1f}s  {fired[-1]['what']}", flush=True)
            time.sleep(max(0.0, began + seconds - time.time()))
            stop.set()
            for t in threads:
                t.join(REQUEST_TIMEOUT_S * 3)
            try:
                load.wait(timeout=60)
            except subprocess.TimeoutExpired:
                load.kill()
            ended = time.time()
            for i, f in enumerate(fired):
                until = fired[i + 1]["at"] if i + 1 < len(fired) else ended
                f["recovery_s"] = round(recovery(ledgers, f["at"], until), 2)
            wait_ready(url, ROOT_KEY, RECOVERY_TIMEOUT_S)
            acknowledged = lost = duplicated = resurrected = 0
            for led in ledgers:
                stored = read_back(url, led.namespace, ROOT_KEY)
                by_content = Counter(m["content"] for m in stored)
                ids = {m["id"] for m in stored}
                acknowledged += len(led.acked)
                lost += sum(1 for mid, c in led.acked.items() if mid not in led.forgotten and by_content[c] == 0)
                duplicated += sum(n - 1 for n in by_content.values() if n > 1)
                resurrected += len(led.forgotten & ids)
                for m in stored:
                    if m["id"] in led.forgotten:
                        report.setdefault("resurrected_samples", []).append(
                            {**{k: m[k] for k in ("id", "created_at", "updated_at")},
                             "forget": led.forget_answers.get(m["id"])})
            locust_bad, locust_statuses = locust_errors(out)
            ledger_statuses = Counter(status for led in ledgers for _, _, status in led.events)
            report.update({
                "seconds": round(ended - began, 1), "faults": fired, "acknowledged": acknowledged,
                "forgotten": sum(len(led.forgotten) for led in ledgers), "lost": lost,
                "duplicated": duplicated, "resurrected": resurrected,
                "errors": sum(len(led.errors) for led in ledgers) + locust_bad,
                "error_samples": [e for led in ledgers for e in led.errors][:20],
                "ledger_statuses": dict(ledger_statuses), "locust_statuses": dict(locust_statuses),
                "slowest_recovery_s": max(f["recovery_s"] for f in fired),
            })
            (out / "events.json").write_text(json.dumps({
                "report": report, "ledger": [(t, op, s) for led in ledgers for t, op, s in led.events],
                "replicas": poller.samples}, indent=1))
            plot(out, began, ledgers, poller.samples, fired)
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
            shutil.rmtree(Path(os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent, ignore_errors=True)
    return report


def plot(out: Path, began: float, ledgers: list[Ledger], replicas: list[tuple[float, dict[str, int]]],
         fired: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_second: dict[str, Counter[int]] = defaultdict(Counter)
    for led in ledgers:
        for t, _, status in led.events:
            per_second[status][int(t - began)] += 1
    history = out / "locust_stats_history.csv"
    locust_rps: list[tuple[float, float]] = []
    if history.exists():
        with history.open() as rows:
            locust_rps = [(float(r["Timestamp"]) - began, float(r["Requests/s"])) for r in csv.DictReader(rows)
                          if r["Name"] == "Aggregated"]
    fig, (rps, errors, reps) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    if locust_rps:
        rps.plot(*zip(*locust_rps), label="Locust mix")
    seconds = list(range(max((max(c) for c in per_second.values() if c), default=0) + 1))
    ok = per_second.get("200", Counter())
    rps.plot(seconds, [ok[x] for x in seconds], label="ledger clients, 200")
    rps.set_ylabel("requests/s")
    rps.legend(loc="upper right")
    for status, counts in sorted(per_second.items()):
        if status != "200":  # every second, 0 included: a gap is no answers, not a line
            errors.step(seconds, [counts[x] for x in seconds], where="post", label=status)
    errors.set_ylabel("ledger answers/s")
    errors.legend(loc="upper right", title="not 200")
    names = sorted({n for _, counts in replicas for n in counts})
    for name in names:
        reps.step([t - began for t, _ in replicas], [c.get(name, 0) for _, c in replicas], where="post", label=name)
    reps.set_ylabel("replicas running")
    reps.set_xlabel("seconds")
    reps.legend(loc="upper right")
    for fault in fired:
        for ax in (rps, errors, reps):
            ax.axvline(fault["at"] - began, color="red", linestyle="--", linewidth=0.8)
        rps.annotate(fault["fault"], (fault["at"] - began, rps.get_ylim()[1]), rotation=90, va="top", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=100)


def forget_inherited_cluster_env() -> None:
    """This run's cluster is its own: drop the ingress and port settings of a cluster it was
    started from (a test session's HAProxy folder and ports would collide with its own)."""
    from cluster.haproxy_loopback import HAPROXY_ENV_VARS
    from cluster.ingress import DIRECT_INGRESS_VARS

    inherited = {*ingress_env("haproxy", environ={}, private_ports=True), *HAPROXY_ENV_VARS,
                 *DIRECT_INGRESS_VARS, "DASHBOARD_METRIC_PORT", "AUTOSCALER_METRIC_PORT"}
    for var in inherited:
        os.environ.pop(var, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--form", choices=("embedded", "production"), default="embedded")
    parser.add_argument("--gap", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--users", type=int, default=6, help="Locust users running the mix")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "chaos")
    args = parser.parse_args(argv)
    forget_inherited_cluster_env()
    for var, value in ONE_MACHINE_RAY.items():
        os.environ.setdefault(var, value)
    out = args.out / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report = run(args, out)
    lines = [f"form: {report['form']}, {report['seconds']} s"]
    lines += [f"  {f['fault']}: {f['what']}; recovered in {f['recovery_s']} s" for f in report["faults"]]
    lines += [f"ledger answers: {report['ledger_statuses']}", f"Locust answers: {report['locust_statuses']}",
              f"forgotten: {report['forgotten']}", *report["error_samples"], f"written to {out}",
              f"chaos: acknowledged {report['acknowledged']}, lost {report['lost']}, duplicated "
              f"{report['duplicated']}, resurrected {report['resurrected']}, non-429/503 errors "
              f"{report['errors']}, slowest recovery {report['slowest_recovery_s']} s"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    bad = report["lost"] or report["duplicated"] or report["resurrected"] or report["errors"]
    return 1 if bad or report["slowest_recovery_s"] == float("inf") else 0


if __name__ == "__main__":
    raise SystemExit(main())
