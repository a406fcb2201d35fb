"""Serve an ASGI app on a socket: the one way the simulator, the relay and ``midstream serve`` listen.

:func:`listen` binds (IPv4 or IPv6, port 0 for any free one) and turns every way that can fail into one
:class:`~midstream.errors.LocalError` line; :func:`in_thread` runs a uvicorn server on such a socket
from a daemon thread for the length of a ``with`` block::

    >>> import uvicorn
    >>> from starlette.applications import Starlette
    >>> sock = listen("127.0.0.1", 0)
    >>> with in_thread(uvicorn.Config(Starlette(), log_config=None), sock, name="an app"):
    ...     base_url("127.0.0.1", sock)  # doctest: +ELLIPSIS
    'http://127.0.0.1:...'
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from midstream.errors import LocalError

__all__ = ["base_url", "in_thread", "listen"]


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (IPv4 or IPv6); a :class:`LocalError` that says why not."""
    if not 0 <= port <= 65535:
        raise LocalError(f"cannot listen on port {port}: a port is 0 (any free one) to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise LocalError(f"cannot listen on {host!r}: not an address or a known host name") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise LocalError(f"cannot listen on {shown}: {exc.strerror or exc}") from exc
    return sock


def base_url(host: str, sock: socket.socket) -> str:
    """``http://host:port`` for ``host`` as given and the port ``sock`` is bound to (an IPv6 host in
    brackets)."""
    port = sock.getsockname()[1]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@contextmanager
def in_thread(
    config: uvicorn.Config, sock: socket.socket, *, name: str, startup_timeout: float = 10.0
) -> Iterator[uvicorn.Server]:
    """Serve ``config``'s app on ``sock`` from a daemon thread until the block exits.

    Returns once the server accepts connections; a server that does not start within
    ``startup_timeout`` seconds is a :class:`LocalError` naming ``name`` and the address. On exit the
    server is asked to stop, given ``config.timeout_graceful_shutdown`` (or 5 s) to do so, and the
    socket is closed.
    """
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            host, port = sock.getsockname()[:2]
            raise LocalError(f"{name} did not start on {host}:{port}")
        time.sleep(0.005)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=(config.timeout_graceful_shutdown or 0) + 5.0)
        sock.close()
