"""A real Milvus 2.3.5 server for tests and benchmarks (the PyPI package `milvus`), reachable
on loopback only.

Milvus 2.3.5 cannot be told to listen on loopback: its gRPC servers (the proxy and one per
coordinator and node) and its metrics/health server bind ":port" on every interface, and the
`<component>.ip` settings only change the address it advertises. So the server runs in a
network namespace of its own (`unshare --user --net`, no root needed) whose only interface
is a loopback of its own; there a relay accepts on a socket that the test process opened on
127.0.0.1 and passes each connection on to the proxy. Nothing of Milvus listens on the
host's interfaces: `ss -ltnp` there shows that one 127.0.0.1 socket and nothing else.

    with MilvusTestServer() as uri:   # http://127.0.0.1:<free port>
        ...

Run as a script, this file is that relay (it starts the server inside the namespace); so no
module beside it may be named `milvus`, which the script imports.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


class MilvusTestServer:
    """Starts the server in a temporary base directory and stops it (and removes it) after."""

    def __init__(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="engram-milvus-"))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.uri = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in_s = 0.0

    @staticmethod
    def unavailable() -> str | None:
        """Why no server can be started here, or None."""
        if importlib.util.find_spec("milvus") is None:
            return "the Milvus test server needs the PyPI package `milvus` (2.3.5)"
        if shutil.which("unshare") is None or subprocess.run(
                ["unshare", "--user", "--map-root-user", "--net", "true"],
                capture_output=True).returncode != 0:
            return ("the Milvus test server needs user and network namespaces (`unshare`) to "
                    "keep it off the network; or point ENGRAM_MILVUS_URI at a server")
        return None

    def start(self, timeout: float = 300) -> str:
        began = time.monotonic()
        fd = self._listener.fileno()
        self._proc = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--net",
             sys.executable, __file__, str(self.base_dir), str(fd)],
            pass_fds=(fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self._listener.close()  # the relay holds it now
        self._wait_ready(timeout)
        self.started_in_s = time.monotonic() - began
        return self.uri

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        # The relay says "ready" once Milvus is healthy. Read the pipe's descriptor itself:
        # a buffered reader could hold that line where select() no longer sees it.
        fd = self._proc.stdout.fileno()
        said = b""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:  # the relay exited
                break
            said += chunk
            if b"ready" in (line.strip() for line in said.splitlines()):
                return
        logs = sorted((self.base_dir / "logs").glob("milvus-*.log"))
        tails = [p.read_text(errors="replace")[-2000:] for p in logs]
        self.stop()
        raise RuntimeError(f"the Milvus test server did not start in {timeout:.0f} s:\n" + "\n".join(tails))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()  # the relay stops Milvus when its stdin closes
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# -- inside the namespace ---------------------------------------------------------------
def _loopback_up() -> None:
    """`ip link set lo up` without needing iproute2: a new namespace's loopback starts down."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, siocgifflags, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifreq)[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, port: int) -> None:
    """Copy both ways between a client and the proxy until both sides are done."""
    try:
        upstream = socket.create_connection(("127.0.0.1", port))
    except OSError:
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept_forever(listener: socket.socket, port: int) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, port), daemon=True).start()


def main(base_dir: str, listen_fd: int) -> None:
    from milvus import MilvusServer, MilvusServerConfig

    _loopback_up()
    config = MilvusServerConfig(data_dir=base_dir)
    for component in COMPONENTS:  # the namespace has no other address to advertise
        config.set(f"{component}.ip", "127.0.0.1")
    server = MilvusServer(config)
    try:
        server.start()  # waits until /healthz answers OK
        listener = socket.socket(fileno=listen_fd)
        threading.Thread(target=_accept_forever, args=(listener, server.listen_port),
                         daemon=True).start()
        print("ready", flush=True)
        sys.stdin.buffer.read()  # until the test process closes it, or dies
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)  # also when the test process died


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
