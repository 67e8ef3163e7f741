"""Bounds on one HTTP exchange made through ``requests``: a total deadline, a reply size cap, and origins.

Deadline. ``requests``' timeouts bound each wait for a byte, not the exchange: a server that sends one byte
every two seconds never trips a ten-second read timeout and can hold a lookup as long as it likes. Here every
connection of a watched session records its socket once it has sent a request; :func:`deadline` arms a timer
that shuts that socket down when the time is up, which wakes the blocked read at once (in any phase: status
line, headers, or body). The caller then learns from :attr:`Deadline.expired` why the read failed.

Size. :func:`read_capped` reads a streamed reply in chunks and gives up as soon as it passes its bound, so a
reply of any size costs at most that much memory.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["Deadline", "ReplyTooLarge", "deadline", "origin", "read_capped", "watch_session"]


class Deadline:
    """One armed deadline: the connection in use (set by the watched connection), and whether it fired."""

    def __init__(self) -> None:
        self.expired = False
        self._sock: Any = None
        self._lock = threading.Lock()

    def attach(self, sock: Any) -> None:
        """The socket the request now runs on (a redirect moves to another one)."""
        with self._lock:
            self._sock = sock
            if self.expired:  # time ran out before this request was sent: cut it at once
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)


def _shutdown(sock: Any) -> None:
    # shutdown, not close: it wakes a read blocked in another thread at once
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


_CURRENT = threading.local()  # the Deadline of the request this thread is making, if any


class _Watched:
    """Mixin for urllib3 connections: tell the current thread's Deadline which socket its request runs on.

    The socket itself is kept, not the connection: http.client lets go of a connection's socket (``sock = None``)
    once a reply that ends by closing has its headers, while the reply goes on reading from it.
    """

    sock: Any

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]  # connects if needed, sends the request
        armed: Deadline | None = getattr(_CURRENT, "deadline", None)
        if armed is not None and self.sock is not None:
            armed.attach(self.sock)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections (direct or through a proxy) report to the thread's Deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def watch_session(session: requests.Session) -> requests.Session:
    """Mount watched adapters on ``session`` (for http and https) so :func:`deadline` can cut its requests."""
    for prefix in ("http://", "https://"):
        if not isinstance(session.get_adapter(prefix), _WatchedAdapter):
            session.mount(prefix, _WatchedAdapter())
    return session


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Cut whatever request this thread makes on a watched session once ``seconds`` have passed."""
    armed = Deadline()
    timer = threading.Timer(max(0.0, seconds), armed.fire)
    timer.daemon = True
    previous = getattr(_CURRENT, "deadline", None)
    _CURRENT.deadline = armed
    timer.start()
    try:
        yield armed
    finally:
        timer.cancel()
        _CURRENT.deadline = previous


class ReplyTooLarge(Exception):
    """Raised by :func:`read_capped`; the caller turns it into its own message."""


def read_capped(response: requests.Response, most: int) -> bytes:
    """The body of a streamed response, abandoned as soon as it passes ``most`` bytes (never read whole)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > most:
        raise ReplyTooLarge
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=1 << 16):
        size += len(chunk)
        if size > most:
            raise ReplyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``: what a credential given for one address may be sent to."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port
