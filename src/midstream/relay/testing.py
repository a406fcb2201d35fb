"""Helpers for testing code that uses the relay: a throwaway ``redis-server`` and a relay server
running in a background thread.

``redis_server()`` starts Debian's ``redis-server`` (no persistence, loopback, a free port) and yields
its URL; it raises :class:`RedisUnavailable` when the binary is not installed, so a test suite can
skip with a clear reason::

    with redis_server() as url:
        log = RedisLog(url)
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from midstream.errors import LocalError

__all__ = ["RedisUnavailable", "free_port", "redis_server"]


class RedisUnavailable(LocalError):
    """``redis-server`` is not installed (Debian: ``apt-get install redis-server``)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(*, startup_timeout: float = 10.0) -> Iterator[str]:
    """Run a private ``redis-server`` on a free loopback port; yield ``redis://127.0.0.1:<port>/0``.

    Nothing is saved to disk; the server is stopped (and waited for) when the block exits.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="midstream-redis-") as workdir:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", workdir, "--protected-mode", "yes", "--loglevel", "warning"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for_port(port, proc, startup_timeout)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise LocalError(f"redis-server exited with {proc.returncode}: {err.strip()[:500]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise LocalError(f"redis-server did not answer on port {port} within {timeout} s")
        time.sleep(0.02)
