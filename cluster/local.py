"""Run Engram on this machine: a local Ray head (with dashboard), the Serve app, Ctrl-C stops.

    python -m cluster.local [--config cluster/serve.yaml] [--data-dir data] [--ingress haproxy]
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from cluster.ingress import INGRESS_KINDS, busy_ports, ingress_env

ROOT = Path(__file__).resolve().parent.parent


def root_key(data_dir: Path) -> str:
    """ENGRAM_ROOT_API_KEY, or a key generated once and kept (0600) beside the data."""
    env = os.environ.get("ENGRAM_ROOT_API_KEY")
    if env:
        return env
    path = data_dir / ".root_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "ek_root_" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def render_config(config: Path, data_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The Serve config with an absolute data_dir (Ray workers do not run in our cwd)."""
    doc = yaml.safe_load(config.read_text())
    app = doc["applications"][0]
    app.setdefault("args", {}).setdefault("storage", {})["data_dir"] = str(data_dir)
    out = data_dir / ".serve.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)  # a --data-dir that does not exist yet
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out, doc


def deployment_options(config: Path) -> dict[str, dict[str, Any]]:
    """The `deployments:` of a Serve config by name (replicas, autoscaling, queues), so that
    the benchmarks, which start Serve from Python, run what `make serve` deploys."""
    doc = yaml.safe_load(config.read_text())
    return {d["name"]: {k: v for k, v in d.items() if k != "name"}
            for d in doc["applications"][0].get("deployments", [])}


def wait_ready(url: str, key: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r = httpx.get(f"{url}/health/ready", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Engram did not become ready at {url} within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "cluster" / "serve.yaml")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ENGRAM_DATA_DIR", "data")))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--ingress", choices=INGRESS_KINDS, default=os.environ.get("ENGRAM_INGRESS", "haproxy"),
                        help="HTTP ingress: Serve's HAProxy (default) or its Python proxy (cluster/ingress.py)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir if args.data_dir.is_absolute() else (Path.cwd() / args.data_dir)
    data_dir = data_dir.resolve()
    key = root_key(data_dir)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "ENGRAM_ROOT_API_KEY": key,
           # `ray job submit -- python …` runs under this PATH: make it the project's venv.
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "ENGRAM_HOME": str(ROOT),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "RAY_SERVE_HTTP_HOST": "127.0.0.1",
           # Ray 2.5x enables token auth on `ray start`; the CLIs find ~/.ray/auth_token in token mode.
           "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
           **ingress_env(args.ingress)}
    config_path, doc = render_config(args.config, data_dir)
    http = doc.get("http_options", {})
    url = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 3300)}"
    ray, serve = str(bin_dir / "ray"), str(bin_dir / "serve")

    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
    busy = busy_ports(args.ingress, env)
    if busy:
        print("cannot start the HAProxy ingress: " + "; ".join(busy) + ", or pass --ingress proxy",
              file=sys.stderr)
        return 2
    subprocess.run([ray, "start", "--head", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                    "--dashboard-port=8265", "--disable-usage-stats"], env=env, check=True)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping Engram ...", flush=True)
        subprocess.run([serve, "shutdown", "-y", "--address", "http://127.0.0.1:8265"], env=env,
                       capture_output=True)
        subprocess.run([ray, "stop"], env=env, capture_output=True)
        print("stopped.", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        subprocess.run([serve, "deploy", str(config_path), "--address", "http://127.0.0.1:8265"],
                       env=env, check=True)
        wait_ready(url, key, args.timeout)
        print(f"\nEngram is ready at {url}  (data: {data_dir})", flush=True)
        print(f"root API key: {key}", flush=True)
        print("Ray dashboard and job API: http://127.0.0.1:8265   (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
