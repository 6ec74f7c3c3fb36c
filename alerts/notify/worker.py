"""A notifier's sending thread: a bounded queue in front, retries with exponential backoff
(tenacity) behind. The engine's cycle only enqueues (never waits on a receiver); a full queue
drops the message, counted and logged. Nothing here logs a secret: messages name the receiver
by ``name`` (host and path, no query, no credentials)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

log = logging.getLogger("alerts.notify")
_STOP = object()
Message = TypeVar("Message")


class TransientError(Exception):
    """Worth retrying: connection refused, timeout, 429, 5xx, SMTP 4xx."""


class PermanentError(Exception):
    """Retrying will not help: 4xx, a refused login, a bad address."""


class SendWorker(Generic[Message]):
    """Sends each queued message with *send(message)* on its own thread."""

    def __init__(self, name: str, send: Callable[[Message], None], *, queue_size: int = 1000,
                 retry_for_s: float = 120.0, max_wait_s: float = 30.0, latest_only: bool = False):
        self.name = name
        # latest_only: each message supersedes the one still waiting (a full state, like
        # Alertmanager's alert list): replaced, not dropped.
        self.latest_only = latest_only
        self._send = send
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.retry_for_s = retry_for_s
        self.max_wait_s = max_wait_s
        self.sent = self.failed = self.dropped = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify-{name}", daemon=True)
        self._thread.start()

    def submit(self, message: Message) -> bool:
        """Enqueue without waiting; False (and counted) when the queue is full."""
        if self.latest_only:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        try:
            self._queue.put_nowait(message)
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("%s: queue full (%d), notification dropped (%d dropped so far)", self.name,
                        self._queue.maxsize, self.dropped)
            return False

    def pending(self) -> int:
        return self._queue.qsize()

    def _retrying(self) -> Retrying:
        return Retrying(stop=stop_after_delay(self.retry_for_s), reraise=False,
                        wait=wait_exponential(multiplier=0.5, max=self.max_wait_s),
                        retry=retry_if_exception_type(TransientError),
                        before_sleep=lambda rs: log.info("%s: %s; retry %d", self.name,
                                                         rs.outcome.exception() if rs.outcome else None,
                                                         rs.attempt_number))

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is _STOP:
                return
            try:
                for attempt in self._retrying():
                    with attempt:
                        if self._stopping.is_set() and attempt.retry_state.attempt_number > 1:
                            raise PermanentError("stopping")
                        self._send(message)
                self.sent += 1
            except RetryError as exc:
                self.failed += 1
                log.error("%s: gave up after %.0f s: %s", self.name, self.retry_for_s,
                          exc.last_attempt.exception())
            except PermanentError as exc:
                self.failed += 1
                log.error("%s: not sent: %s", self.name, exc)
            except Exception as exc:  # a bug in one message must not kill the sender
                self.failed += 1
                log.error("%s: not sent (%s: %s)", self.name, type(exc).__name__, exc)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is queued for up to *timeout_s*, then stop (retries cut short)."""
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)
        self._stopping.set()
        self._thread.join(1.0)
        left = self._queue.qsize()
        if left:
            log.warning("%s: %d notification(s) not sent at shutdown", self.name, left)
