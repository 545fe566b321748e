"""How the AC client's requests travel: to the address that was checked, and never past the call's deadline.

`PinnedAdapter` (a requests adapter): the connection goes to the address `base_url.public_address` checked,
never to what a second lookup says (docs/assurance.md: a hostile "AC" host cannot make us connect to a
non-public address).

`deadline_watch(seconds)`: a socket timeout bounds one read, not a call. A host that sends its headers and
then one byte every 1.5 s never trips a 10 s read timeout, and held a 3 s validation for 18 s (a POST /auth
answered 500 after the gateway's 29 s). Every attempt of the client therefore runs inside a watch: at the
deadline, the watchdog (one thread per process, keeping every watch's time) shuts the socket of the
connection the attempt uses (urllib3 hands the pool's connection to `_WatchedPool._get_conn`, which tells
the watch), so a blocked read returns at once, whether it was reading the status line, the headers or the
body; the watch then says `expired` and the client answers UpstreamTimeout (504, "did not answer in
time"). urllib3's own `HTTPResponse.shutdown()` does the same for a body only, once the headers are in; the
watch covers the headers too. A shut connection is never reused: urllib3 finds it dropped when the pool
hands it out again. Cost: a heap push per attempt (~5 us here), against ~0.7 ms for a timer thread each.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from acexport.ac import base_url

RECHECK_SECONDS = 0.05   # an expired watch whose connection has no socket yet (still connecting) looks again


class _Watchdog:
    """One daemon thread per process that expires watches at their time (a thread per attempt cost ~0.7 ms
    to start here; this costs a heap push). Started by the first watch, so never part of a SnapStart snapshot."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, watch: Watch) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, seconds), next(self._seq), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ac-deadline-watch", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _next(self) -> Watch:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._heap)[2]
                self._cond.wait(wait)

    def _run(self) -> None:
        while True:
            self._next().expire()


class Watch:
    """One attempt's deadline: `expire()` (the watchdog) shuts the attempt's connection; `expired` says it did."""

    def __init__(self) -> None:
        self.expired = False
        self.finished = False
        self._connection = None
        self._lock = threading.Lock()

    def using(self, connection) -> None:
        with self._lock:
            self._connection = connection

    def arm(self, seconds: float) -> None:
        _watchdog.add(seconds, self)

    def expire(self) -> None:
        with self._lock:          # never after done(): the connection may be back in the pool, another's
            if self.finished:
                return
            self.expired = True
            sock = getattr(self._connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)   # the plain socket's: under TLS too
                return
        self.arm(RECHECK_SECONDS)  # not connected yet (the connect timeout is bounded too): look again

    def done(self) -> None:
        """The attempt has its answer (or gave up): call before its connection goes back to the pool."""
        with self._lock:
            self.finished = True
            self._connection = None


_watchdog = _Watchdog()
_current: contextvars.ContextVar[Watch | None] = contextvars.ContextVar("ac_deadline_watch", default=None)


@contextlib.contextmanager
def deadline_watch(seconds: float) -> Iterator[Watch]:
    """Watch the requests this thread sends in the block: their connection is shut `seconds` from now."""
    watch = Watch()
    token = _current.set(watch)
    watch.arm(seconds)
    try:
        yield watch
    finally:
        watch.done()
        _current.reset(token)


class _WatchedPool:
    """A urllib3 pool that tells the current watch which connection a request goes out on."""

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)   # type: ignore[misc]
        watch = _current.get()
        if watch is not None:
            watch.using(connection)
        return connection


class WatchedHTTPPool(_WatchedPool, HTTPConnectionPool):
    pass


class WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    pass


class PinnedAdapter(HTTPAdapter):
    """Connects to the address `base_url.public_address` checked, never to what a second lookup says.

    The pool is chosen by that address, with SNI and certificate checks for the host name, and the Host
    header names the host: TLS and AC's virtual hosting work as if requests had resolved the name. Its
    pools are watched (`deadline_watch`)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host, scheme = host_params["host"], host_params["scheme"]
        port = host_params["port"] or (443 if scheme == "https" else 80)
        host_params["host"] = base_url.public_address(host, port, scheme=scheme)
        if scheme == "https":
            pool_kwargs["server_hostname"] = host
            pool_kwargs["assert_hostname"] = host
        return host_params, pool_kwargs

    def send(self, request, *args, **kwargs):
        request.headers["Host"] = urlsplit(request.url).netloc
        return super().send(request, *args, **kwargs)
