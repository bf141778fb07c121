"""Load-test a running Engram (`make serve`) and watch it autoscale: `make load`.

    python -m loadtests.run [--users 160] [--spawn-rate 8] [--duration 180] [--tenants 4]

Prepares the tenants (one key each, seed memories), runs Locust headless as its own
process for a bounded time with a rise-and-fall load (loadtests/shape.py), polls the
running replicas per Serve deployment meanwhile, then deletes the tenants' keys and data
and writes into bench-results/load/<timestamp>/: Locust's CSVs, locust_status.csv,
replicas.csv, load.png and summary.md; the summary is printed too. Exit status 1 when any
request got a 5xx other than 503-with-Retry-After (overload must never look like a bug).
Requests go to 127.0.0.1 only. Ctrl-C or SIGTERM stops Locust and still deletes the keys;
`python -m loadtests.report <run folder>` then renders what was measured.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx

from loadtests import report, tenants
from loadtests.replicas import ReplicaPoller, dashboard_client, fetch
from loadtests.shape import Shape

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = ("127.0.0.1", "localhost")
PROGRESS_EVERY_S = 15


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="http://127.0.0.1:3300", help="the running Engram")
    p.add_argument("--dashboard", default="http://127.0.0.1:8265", help="Ray dashboard (Serve REST API)")
    p.add_argument("--app", default="engram", help="Serve application name")
    p.add_argument("--users", type=int, default=160, help="peak concurrent users")
    p.add_argument("--spawn-rate", type=float, default=8.0, help="users started per second")
    p.add_argument("--duration", type=int, default=180, help="seconds, ramp up, hold and down included")
    p.add_argument("--tenants", type=int, default=4)
    p.add_argument("--namespaces", type=int, default=25, help="per tenant")
    p.add_argument("--seed-memories", type=int, default=12, help="per namespace, before the load")
    p.add_argument("--poll-interval", type=float, default=2.0, help="seconds between replica polls")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ENGRAM_DATA_DIR", "data")),
                   help="where `make serve` keeps .root_key")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "load")
    p.add_argument("--keep-data", action="store_true", help="keep the tenants' namespaces afterwards")
    args = p.parse_args(argv)
    for url in (args.host, args.dashboard):
        if urlparse(url).hostname not in LOCAL_HOSTS:
            p.error(f"{url}: the load test only talks to this machine (127.0.0.1)")
    return args


def _check_service(host: str, key: str) -> None:
    try:
        r = httpx.get(f"{host}/health/ready", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    except httpx.HTTPError as exc:
        raise SystemExit(f"Engram is not answering at {host} ({exc}); start it with `make serve`") from None
    if r.status_code != 200:
        raise SystemExit(f"Engram at {host} is not ready ({r.status_code}); wait for `make serve`")


def _locust(args: argparse.Namespace, run_dir: Path, tenants_file: Path) -> list[str]:
    exe = Path(sys.executable).parent / "locust"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "locust"]
    return cmd + ["-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
                  "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
                  "--csv", str(run_dir / report.PREFIX), "--csv-full-history",
                  "--host", args.host, "--only-summary", "--loglevel", "WARNING"]


def _progress(start: float, poller: ReplicaPoller, shape: Shape) -> str:
    t = time.time() - start
    wanted = shape.target(t)
    reps = ", ".join(f"{n} {poller.latest[n][0]}/{poller.latest[n][1]}"
                     for n in report.AUTOSCALED if n in poller.latest)
    return f"  t={t:4.0f}s  users→{wanted[0] if wanted else 0:<3}  replicas running/target: {reps or '?'}"


def _run_locust(cmd: list[str], env: dict[str, str], log: Path, duration: int,
                poller: ReplicaPoller, shape: Shape) -> tuple[int, float]:
    """Locust in its own process group, bounded: SIGINT past its time, SIGKILL after that."""
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline, next_print = start + duration + 60, start + PROGRESS_EVERY_S
        try:
            while proc.poll() is None and time.time() < deadline:
                if time.time() >= next_print:
                    print(_progress(start, poller, shape), flush=True)
                    next_print += PROGRESS_EVERY_S
                time.sleep(0.5)
        finally:  # overran, or Ctrl-C here (which its own session does not receive)
            if proc.poll() is None:
                print("  stopping locust", flush=True)
                _stop(proc)
        return proc.wait(), start


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT first (Locust then stops the shape and still writes its CSVs; a shape run
    installs no SIGTERM handler, so SIGTERM would lose them); SIGKILL if it hangs."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _exit_on_sigterm(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: locust stopped, keys deleted


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Started from a background shell, SIGINT arrives ignored, and an ignored signal stays
    # ignored across exec: Locust could then never be stopped gracefully. A handler (not
    # SIG_IGN) is reset to the default on exec, so Locust gets SIGINT back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    data_dir = args.data_dir if args.data_dir.is_absolute() else ROOT / args.data_dir
    root_key = tenants.root_key(data_dir)
    _check_service(args.host, root_key)
    with dashboard_client(args.dashboard) as dash:
        try:
            fetch(dash, args.app)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise SystemExit(f"cannot read replicas from the Serve REST API at {args.dashboard} "
                             f"({type(exc).__name__}: {exc}); is RAY_AUTH_TOKEN or "
                             "~/.ray/auth_token set?") from None

    run_dir = args.out / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    shape = Shape(args.users, args.spawn_rate, args.duration)
    print(f"load test → {run_dir}\n  shape: {shape.phases()}", flush=True)
    print(f"  preparing {args.tenants} tenants × {args.namespaces} namespaces "
          f"({args.seed_memories} seed memories each) ...", flush=True)
    made = tenants.prepare(args.host, root_key, args.tenants, args.namespaces, args.seed_memories)
    secrets_dir = Path(tempfile.mkdtemp(prefix="engram-load-"))  # 0700: it holds live keys
    tenants_file = secrets_dir / "tenants.json"
    tenants.save(made, tenants_file)
    env = {**os.environ, "ENGRAM_LOAD_TENANTS": str(tenants_file),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    poller = ReplicaPoller(args.dashboard, args.app, run_dir / "replicas.csv", args.poll_interval)
    poller.start()
    try:
        rc, start = _run_locust(_locust(args, run_dir, tenants_file), env, run_dir / "locust.log",
                                args.duration, poller, shape)
    finally:
        poller.stop()
        shutil.rmtree(secrets_dir, ignore_errors=True)
        print("  cleaning up the tenants' keys" + ("" if args.keep_data else " and namespaces"), flush=True)
        tenants.cleanup(args.host, root_key, made, drop_data=not args.keep_data)
    if poller.errors:
        print(f"  {poller.errors} replica polls failed (last: {poller.last_error})")
    if not (run_dir / f"{report.PREFIX}_stats.csv").exists():
        print(f"locust wrote no statistics (exit {rc}); see {run_dir / 'locust.log'}")
        return 2
    text, rows = report.report(run_dir, t0=start)
    print(f"\n{text}")
    bad = sum(r.bad_5xx for r in rows if r.name != "Aggregated")
    print(f"5xx other than 503 with Retry-After: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
