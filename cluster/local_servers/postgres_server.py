"""A real PostgreSQL server for tests and benchmarks (Debian's `postgresql` package), on
127.0.0.1 only.

The server runs from a temporary directory that is removed after, on a free port, with a
password (so the stores' password handling is what runs), its sockets in that directory.
`initdb` and `postgres` refuse to run as root: as root, both run as the unprivileged user
`nobody`, and the directory is theirs. The server dies with the process that started it (a
parent-death signal), so a killed test or benchmark run leaves no server behind.

    with PostgresTestServer() as server:
        server.dsn        # postgresql://engram@127.0.0.1:<port>/engram (no password)
        server.password   # what ENGRAM_POSTGRES_PASSWORD holds for the stores
"""
from __future__ import annotations

import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from cluster.local_servers import log_tail, stop_process

USER = "engram"
DATABASE = "engram"
PR_SET_PDEATHSIG = 1


def bin_dir() -> Path | None:
    """Where initdb and postgres are: Debian keeps them off PATH, per major version."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


class PostgresTestServer:
    def __init__(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="engram-pg-"))
        self.password = secrets.token_hex(16)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.dsn = f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in_s = 0.0

    @staticmethod
    def unavailable() -> str | None:
        """Why no server can be started here, or None."""
        if bin_dir() is None:
            return ("the PostgreSQL tests need Debian's `postgresql` package (initdb, postgres): "
                    "apt-get install postgresql (.ci/run installs it where it is missing)")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("nobody")
            except KeyError:
                return "as root, the PostgreSQL test server runs as user `nobody`, and there is none"
        return None

    def _as_server_user(self) -> Callable[[], None]:
        """What runs in the child before exec: drop to `nobody` when root, then ask for
        SIGINT (PostgreSQL's fast shutdown) when the test process dies."""
        account = pwd.getpwnam("nobody") if os.geteuid() == 0 else None

        def preexec() -> None:
            if account is not None:
                os.setgroups([])
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
        return preexec

    def start(self) -> str:
        began = time.monotonic()
        binaries = bin_dir()
        assert binaries is not None, self.unavailable()
        data = self.base_dir / "data"
        if os.geteuid() == 0:
            account = pwd.getpwnam("nobody")
            os.chown(self.base_dir, account.pw_uid, account.pw_gid)
        self.base_dir.chmod(0o700)
        pwfile = self.base_dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
               "HOME": str(self.base_dir)}
        subprocess.run([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                        "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, env=env, cwd=self.base_dir,
                       preexec_fn=self._as_server_user(), timeout=120)
        pwfile.unlink()
        self._launch(binaries, data, env)
        self._create_database()
        self.started_in_s = time.monotonic() - began
        return self.dsn

    def _launch(self, binaries: Path, data: Path, env: dict[str, str]) -> None:
        log = open(self.base_dir / "server.log", "ab")
        self._proc = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.base_dir}",
             # A test server: its data is thrown away, so nothing waits for the disk.
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.base_dir,
            preexec_fn=self._as_server_user())
        log.close()
        self._wait_ready()

    def restart(self) -> float:
        """Stop the server (fast shutdown: every connection is cut) and start it again on
        the same port and data, as an operator's restart does; answers the seconds it was down."""
        began = time.monotonic()
        stop_process(self._proc, lambda proc: proc.send_signal(signal.SIGINT), timeout=30)
        binaries = bin_dir()
        assert binaries is not None
        self._launch(binaries, self.base_dir / "data",
                     {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
                      "LANG": "C.UTF-8", "HOME": str(self.base_dir)})
        return time.monotonic() - began

    def connect(self, dbname: str = DATABASE) -> object:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname=dbname,
                               password=self.password, autocommit=True, connect_timeout=10)

    def _wait_ready(self, timeout: float = 60) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited ({self._proc.returncode}): {self.log_tail()}")
            try:
                self.connect("postgres").close()  # type: ignore[attr-defined]
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start in {timeout:.0f} s: {self.log_tail()}")
                time.sleep(0.1)

    def _create_database(self) -> None:
        with self.connect("postgres") as conn:  # type: ignore[attr-defined]
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def log_tail(self) -> str:
        return log_tail(self.base_dir / "server.log")

    def stop(self) -> None:
        # SIGINT: PostgreSQL's fast shutdown (disconnect clients, stop).
        stop_process(self._proc, lambda proc: proc.send_signal(signal.SIGINT), timeout=30)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresTestServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
