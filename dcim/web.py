"""The one way dcim serves HTTP: waitress with bounded connections, timeouts and body limits.

Every service (the optimizer API, the collectors' ``/metrics``, the dashboard) runs on
:class:`WsgiServer`, so that idle or slow clients cannot take it down:

- **Bounded connections.** At most ``connection_limit`` sockets, kept well under the process's
  file limit (``RLIMIT_NOFILE``, whose soft value is first raised to the hard one, as systemd
  asks services that need more than 1,024 files to do). At the limit waitress itself would stop
  accepting, so that 100 idle sockets lock out every real client until they time out; here the
  connections idle longest are closed instead, to make room for the new one.
- **Timeouts.** A connection with nothing in flight is closed after ``channel_timeout_s``;
  waitress checks every ``cleanup_interval_s``.
- **Bounded requests.** Headers and bodies have size limits; a request body is read only after
  its headers are admitted (``admit_body``: the dashboard refuses unauthenticated bodies with
  401 before reading a byte of them, instead of spooling up to 1 GiB to ``/tmp``).
- **One slow client never blocks others.** waitress reads whole requests and writes responses
  from one ``poll()`` loop; worker threads only ever see complete requests.
- **Quiet disconnects.** A client that hangs up early is routine, not a traceback in the log.
- **Anti-framing headers** on every response (:func:`with_security_headers`).
"""

from __future__ import annotations

import functools
import logging
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.utilities import Error

log = logging.getLogger(__name__)

# Files the process keeps for itself beside its sockets: the store, the model, logs, the
# spool, pipes, imported extension modules.
FD_RESERVE = 256
MIN_CONNECTIONS = 16

SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
)


@dataclass(frozen=True)
class Limits:
    connection_limit: int = 1000
    channel_timeout_s: float = 30.0
    cleanup_interval_s: float = 2.0
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 1024 * 1024
    threads: int = 4


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container may forbid it: keep the lower limit
            log.info("could not raise the file limit from %d to %d: %s", soft, hard, exc)
    return soft


def connection_limit(wanted: int, fd_limit: int) -> int:
    """*wanted* connections, or fewer where the file limit leaves no room for them."""
    return max(MIN_CONNECTIONS, min(wanted, fd_limit - FD_RESERVE))


def with_security_headers(app):
    """WSGI middleware: anti-framing and no-sniffing headers on every response."""

    @functools.wraps(app)
    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            extra = [(name, value) for name, value in SECURITY_HEADERS if name.lower() not in present]
            return start_response(status, list(headers) + extra, exc_info)

        return app(environ, start)

    return wrapped


class Unauthorized(Error):
    code = 401
    reason = "Unauthorized"

    def __init__(self, body: str, challenge: str):
        super().__init__(body)
        self.challenge = challenge

    def to_response(self, ident=None):
        status, headers, body = super().to_response(ident)
        return status, headers + [("WWW-Authenticate", self.challenge), *SECURITY_HEADERS], body


# admit_body(path, authorization_header) -> None to read the body, or the WWW-Authenticate
# challenge to answer 401 with, before any of the body is read.
AdmitBody = Callable[[str, str], "str | None"]


class _GatedParser(HTTPRequestParser):
    """waitress's parser, asking *admit_body* once the headers are in and before the body."""

    def __init__(self, adj, admit_body: AdmitBody | None = None):
        super().__init__(adj)
        self._admit_body = admit_body

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        if self.body_rcv is None or self._admit_body is None:
            return
        challenge = self._admit_body(self.path, self.headers.get("AUTHORIZATION", ""))
        if challenge is not None:
            self.error = Unauthorized("authentication required before a request body", challenge)
            # no body to read: the request completes now, and the connection closes after the 401
            self.body_rcv = None
            self.content_length = 0
            self.expect_continue = False


class _Channel(HTTPChannel):
    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)
        self.parser_class = functools.partial(_GatedParser, admit_body=server.admit_body)


class _BoundedServer(TcpWSGIServer):
    """waitress's TCP server that, at its connection limit, closes the longest-idle connections."""

    channel_class = _Channel

    def __init__(self, application, *, admit_body: AdmitBody | None = None, **kw):
        self.admit_body = admit_body
        self._last_eviction_log = 0.0
        super().__init__(application, **kw)

    def readable(self):
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._evict_idle()
        return super().readable()

    def _evict_idle(self) -> None:
        """Mark the longest-idle connections (nothing in flight, nothing to send) for closing.

        Evicts a batch (1/16 of the limit) so that a flood of new connections does not rescan
        every socket on each accept. Runs in the server's loop thread, like waitress's own
        ``maintenance``, which closes timed-out connections the same way."""
        closing = sum(1 for ch in self.active_channels.values() if ch.will_close)
        want = len(self._map) - self.adj.connection_limit + max(1, self.adj.connection_limit // 16) - closing
        if want <= 0:
            return
        idle = [ch for ch in self.active_channels.values()
                if not ch.will_close and not ch.requests and not ch.total_outbufs_len]
        idle.sort(key=lambda ch: ch.last_activity)
        for ch in idle[:want]:
            ch.will_close = True
        now = time.monotonic()
        if now - self._last_eviction_log > 60:
            self._last_eviction_log = now
            log.warning("%s: %d connections open (limit %d): closing the %d idle longest",
                        self.adj.ident, len(self.active_channels), self.adj.connection_limit, min(want, len(idle)))


class WsgiServer:
    """A WSGI app served by waitress on *host*:*port* with :class:`Limits`; ``start()`` runs it in
    a daemon thread, ``run()`` in the calling one."""

    def __init__(self, app, host: str, port: int, *, name: str, limits: Limits = Limits(),
                 admit_body: AdmitBody | None = None):
        self.name = name
        fd_limit = raise_fd_limit()
        self.connection_limit = connection_limit(limits.connection_limit, fd_limit)
        self.server = _BoundedServer(
            with_security_headers(app), admit_body=admit_body, host=host, port=port, ident=name,
            threads=limits.threads,
            connection_limit=self.connection_limit,
            channel_timeout=limits.channel_timeout_s,
            cleanup_interval=limits.cleanup_interval_s,
            max_request_header_size=limits.max_header_bytes,
            max_request_body_size=limits.max_body_bytes,
            # bodies under the limit stay in memory (no temp file) when the limit is small
            inbuf_overflow=max(512 * 1024, min(limits.max_body_bytes, 4 * 1024 * 1024)),
            asyncore_use_poll=True,   # select() cannot watch a file descriptor above 1023
            log_socket_errors=False,  # a client resetting its connection is not a server error
            expose_tracebacks=False,
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self.server.effective_host

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        self.server.run()

    def start(self) -> WsgiServer:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let requests in flight finish, then close every socket from the server's own loop
        (closing them from here while it sits in poll() races it into EBADF)."""
        server = self.server
        server.task_dispatcher.shutdown(timeout=timeout_s)

        def close_in_loop() -> None:
            for channel in list(server._map.values()):
                channel.close()

        if self._thread is not None and self._thread.is_alive():
            server.trigger.pull_trigger(close_in_loop)
            self._thread.join(timeout_s)
        else:
            close_in_loop()
