"""The progress intake's own listener: ``POST /v1/progress`` on uvicorn, beside the optimizer API.

Why not the optimizer API's waitress: jobs post progress often (a Reporter per job, every few
seconds, and gateways for thousands of jobs), and the target is 5,000 posts per second on one
core. Measured with ``bench/progress_api.py`` (one report per request, kept-alive connections, the
real ``dcim optimize`` process): the waitress route reached 2,171-2,404 posts per server
CPU-second (0.43-0.48 of the target), and a bare waitress app that only reads the body 3,226:
waitress itself is the ceiling. A bare ASGI app on uvicorn + httptools + uvloop reached 8,093
requests per CPU-second (5,544 on the asyncio loop), so the intake runs there, in a thread of the
``dcim optimize`` process on ``[optimizer] progress_port`` (default 8088). The waitress route on
the main API port stays, for clients that only know that port.

Routes (the same checks, status codes and JSON as :mod:`optimizer.api`, through its
:func:`~optimizer.api.handle_progress`): ``POST /v1/progress``, ``GET /v1/progress/stats``
(bearer token), ``GET /health`` (no auth).

What idle or hostile clients meet here (issue 20's guarantees, as :mod:`dcim.web` gives waitress):

- **Token before body**: a POST without the token is answered 401 before a byte of its body
  is read, and the connection closed (a 100 MiB unauthenticated upload costs nothing).
- **Body limit** 64 KiB: 413 from Content-Length before reading, or while reading a chunked body.
  Bad JSON, too deep nesting, a lying Content-Length: 4xx, never a 500.
- **Bounded connections**: at most ``connection_limit`` (kept under the process's file limit,
  whose soft value is first raised to the hard one). At the limit the connections idle longest
  are closed to make room; when every one is busy the new one is closed. uvicorn's own
  ``limit_concurrency`` stays as a backstop (503).
- **Timeouts uvicorn lacks**: uvicorn arms its keep-alive timer only after a response, so a
  connection that never sends a request stays open for ever, and httptools has no header size
  limit. :class:`GuardedProtocol` (uvicorn's httptools protocol, subclassed) closes a connection
  idle for ``idle_timeout_s`` (new or between requests), one whose request has not fully arrived
  ``request_timeout_s`` after its first byte (slowloris, headers or body a byte at a time), and
  answers 431 to headers over ``max_header_bytes``.
- **Quiet disconnects**, and the anti-framing headers of :data:`dcim.web.SECURITY_HEADERS` on
  every answer, uvicorn's own 400/503 included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dcim.metrics import Point
from dcim.web import FD_RESERVE, MIN_CONNECTIONS, SECURITY_HEADERS, raise_fd_limit
from optimizer.api import MAX_BODY_BYTES, bearer_ok, handle_progress
from optimizer.progress import ProgressBook

log = logging.getLogger(__name__)

try:
    import uvloop  # noqa: F401 — only whether it is there
    LOOP = "uvloop"
except ImportError:  # uvloop is not on every platform: asyncio is slower (5,544/CPU-s), not wrong
    LOOP = "asyncio"


@dataclass(frozen=True)
class ServerLimits:
    connection_limit: int = 1000
    idle_timeout_s: float = 30.0     # a Reporter posts every 10 s over one kept-alive connection
    request_timeout_s: float = 10.0  # first byte to last byte of one request
    max_header_bytes: int = 16 * 1024
    # Connections accepted per wake-up (asyncio) and the kernel's queue: each one holds a file
    # before the eviction below runs, so it is reserved beside the connection limit.
    backlog: int = 128


# -- the protocol: uvicorn's, with the limits it lacks --------------------------------------------


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a connection cap, idle/request deadlines and a header
    size limit. :func:`protocol_class` binds the limits."""

    limits = ServerLimits()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False    # a byte of a request seen, the request not yet answered
        self._reading_body = False  # headers in, body not yet complete
        self._head_bytes = 0
        self._tail = b""  # the last 3 bytes of the head so far
        self.last_active_s = 0.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.last_active_s = time.monotonic()
        self._arm(self.limits.idle_timeout_s)
        if len(self.connections) > self.limits.connection_limit and not self._make_room():
            transport.close()  # every connection busy with a request: this one waits its turn outside

    def _make_room(self) -> bool:
        """Close the connections idle longest (no request of theirs in the app), a batch of 1/16
        of the limit so that a flood does not rescan every socket on each accept."""
        limit = self.limits.connection_limit
        open_now = [c for c in self.connections if not c.transport.is_closing()]
        want = len(open_now) - limit + max(1, limit // 16)
        if want <= 0:
            return True
        idle = [c for c in open_now if c is not self and isinstance(c, GuardedProtocol) and c._idle()]
        idle.sort(key=lambda c: c.last_active_s)
        for c in idle[:want]:
            c.transport.close()
        _warn_at_limit(len(open_now), limit, min(want, len(idle)))
        return bool(idle)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        self.last_active_s = time.monotonic()
        if not self._in_request:
            self._in_request = True
            self._arm(self.limits.request_timeout_s)
        if not self._reading_body:
            # the head's bytes, up to its blank line (which may straddle two reads); checked before
            # the parser sees them, since httptools gathers a header's value whole, without a limit
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = seen[-3:]
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "request headers too large")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_bytes, self._tail = 0, b""
        self._reading_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()  # the whole request is in: the app answers it, however long that takes
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._in_request = False
        if not self.transport.is_closing():
            self._arm(self.limits.idle_timeout_s)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """Idle too long, or a request still arriving: close (the app, if it waits for a body,
        sees a disconnect)."""
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                    % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()


_last_limit_warning = [0.0]


def _warn_at_limit(open_now: int, limit: int, closing: int) -> None:
    now = time.monotonic()
    if now - _last_limit_warning[0] > 60:
        _last_limit_warning[0] = now
        log.warning("progress listener: %d connections open (limit %d): closing the %d idle longest",
                    open_now, limit, closing)


def protocol_class(limits: ServerLimits) -> type[GuardedProtocol]:
    return type("BoundGuardedProtocol", (GuardedProtocol,), {"limits": limits})


# -- the ASGI app ---------------------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class ProgressApp:
    """ASGI app: the progress routes and ``/health``."""

    def __init__(self, book: ProgressBook, write_points: Callable[[list[Point]], None], *, token: str | None):
        self.book = book
        self.write_points = write_points
        self._token = token.encode("utf-8") if token else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])  # a repeated header: the last one (only ours are read)
        has_body = b"content-length" in headers and headers[b"content-length"] != b"0" \
            or b"transfer-encoding" in headers
        if method == "POST" and path == "/v1/progress":
            answer = await self._post(headers, receive)
            if answer is None:  # the client hung up mid-body: nobody to answer
                return
            status, body, body_read = answer
        elif method in ("GET", "HEAD") and path in ("/health", "/v1/progress/stats"):
            status, body, body_read = (*self._get(path, headers), False)
        else:
            status, body, body_read = (405 if path in ("/v1/progress", "/health") else 404,
                                       {"error": "method not allowed" if path in ("/v1/progress", "/health")
                                        else "not found"}, False)
        # a body left unread would be parsed (read and thrown away) as the connection went on
        await respond(send, status, body, close=has_body and not body_read)

    def _get(self, path: str, headers: dict) -> tuple[int, dict]:
        if path == "/health":
            return 200, {"status": "ok", "progress": self.book.stats()}
        if not bearer_ok(self._token, headers.get(b"authorization", b"").decode("latin-1")):
            return 401, {"error": "unauthorized"}
        return 200, self.book.stats()

    async def _post(self, headers: dict, receive) -> tuple[int, dict, bool] | None:
        book = self.book
        book.count("requests")
        if not bearer_ok(self._token, headers.get(b"authorization", b"").decode("latin-1")):
            book.count("unauthorized")
            return 401, {"error": "unauthorized"}, False
        length = headers.get(b"content-length", b"0")  # httptools has answered 400 to a malformed one
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            book.count("bad_body")
            return 413, {"error": f"body over {MAX_BODY_BYTES} bytes"}, False
        try:
            body = await read_body(receive, MAX_BODY_BYTES)
        except BodyTooLarge:
            book.count("bad_body")
            return 413, {"error": f"body over {MAX_BODY_BYTES} bytes"}, False
        if body is None:
            return None
        if not body:
            book.count("bad_body")
            return 400, {"error": "a JSON body of 1 byte to 64 KiB is needed"}, True
        return (*handle_progress(book, self.write_points, body), True)


async def read_body(receive, limit_bytes: int) -> bytes | None:
    """The request body, at most *limit_bytes* (BodyTooLarge past it); None when the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send, status: int, body: dict, *, close: bool = False) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"%d" % len(data)),
               (b"cache-control", b"no-store")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="dcim-optimizer"'))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


# -- the workload map, read off the event loop ----------------------------------------------------


class PrefetchedWorkload:
    """job → tenant for :class:`ProgressBook`'s *workload*, read from the store by a thread of its
    own every *period_s*. The book calls it from the listener's event loop: there a store read
    (tens of ms for a large site) would stall every connection, so the call only returns the
    last map. It raises when the last read failed, or when no read has succeeded for
    *max_age_s* (a hung store), and the book counts the reports ``workload_unavailable``."""

    def __init__(self, read: Callable[[], dict[str, str]], period_s: float = 5.0, max_age_s: float = 60.0):
        self._read = read
        self.period_s = period_s
        self.max_age_s = max_age_s
        self._map: dict[str, str] | None = None
        self._error: str | None = "not read yet"
        self._read_at = time.monotonic()
        self._stop = threading.Event()
        self._refresh()
        self._thread = threading.Thread(target=self._run, name="dcim-progress-workload", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        try:
            self._map, self._error, self._read_at = self._read(), None, time.monotonic()
        except Exception as exc:  # noqa: BLE001 — the store down: the book refuses with the reason
            self._error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._refresh()

    def __call__(self) -> dict[str, str]:
        if self._error is not None:
            raise OSError(f"the workload map could not be read: {self._error}")
        if time.monotonic() - self._read_at > self.max_age_s:
            raise OSError(f"the workload map is more than {self.max_age_s:g} s old (the store hangs?)")
        assert self._map is not None  # _error is None only once a read has set the map
        return self._map

    def close(self) -> None:
        self._stop.set()


# -- the server in a thread -----------------------------------------------------------------------


class ProgressServer:
    """:class:`ProgressApp` on uvicorn in a daemon thread. *fds_elsewhere*: sockets this process
    may hold for its other servers (the optimizer API's connection limit), left out of the file
    budget here."""

    def __init__(self, book: ProgressBook, write_points: Callable[[list[Point]], None], *, token: str | None,
                 host: str = "127.0.0.1", port: int = 0, limits: ServerLimits = ServerLimits(),
                 fds_elsewhere: int = 0):
        budget = raise_fd_limit() - FD_RESERVE - fds_elsewhere - limits.backlog
        cap = max(MIN_CONNECTIONS, min(limits.connection_limit, budget))
        self.limits = ServerLimits(cap, limits.idle_timeout_s, limits.request_timeout_s, limits.max_header_bytes,
                                   limits.backlog)
        self._sock = _listen(host, port, limits.backlog)
        config = uvicorn.Config(
            ProgressApp(book, write_points, token=token), http=protocol_class(self.limits), loop=LOOP,
            lifespan="off", log_config=None, access_log=False, server_header=False, date_header=True,
            headers=[(name, value) for name, value in SECURITY_HEADERS],
            # a backstop (503): the cap above acts first; connections it closed count here until
            # the loop has run their close, so leave room for one accept burst
            limit_concurrency=cap + limits.backlog, backlog=limits.backlog,
            # uvicorn types this int but only hands it to loop.call_later, which takes float seconds
            timeout_keep_alive=limits.idle_timeout_s,  # type: ignore[arg-type]
            timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = self._sock.getsockname()[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ProgressServer:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="dcim-progress-listener", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the progress listener on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._sock.close()


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket, bound now so that a taken port fails `dcim optimize` at start."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    return sock
