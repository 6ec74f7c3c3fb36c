"""A generic webhook: each alarm event as JSON, signed with HMAC-SHA256.

Body: ``{"version": 1, "site", "event", "alarm": {...AlarmState.as_dict()}, "sent_at"}``.
Headers: ``X-Dcim-Event``, ``X-Dcim-Timestamp`` (Unix seconds) and, with a secret,
``X-Dcim-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` - the receiver
recomputes it, compares in constant time and refuses old timestamps (replays)."""

from __future__ import annotations

import hashlib
import hmac
import time

from alerts.evaluate import RANK
from alerts.notify.http import dumps, post_json, safe_name
from alerts.notify.worker import SendWorker
from alerts.transitions import Event

EVENTS = ("raised", "escalated", "deescalated", "cleared", "unshelved", "acked", "shelved", "flood")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(self, url: str, *, secret: str | None = None, min_severity: str = "warning",
                 timeout_s: float = 5.0, queue_size: int = 1000, retry_for_s: float = 120.0):
        self.url = url
        self._secret = secret
        self.min_rank = RANK[min_severity]
        self.timeout_s = timeout_s
        self.worker = SendWorker(f"webhook {safe_name(url)}", self._send, queue_size=queue_size,
                                 retry_for_s=retry_for_s)

    def notify(self, events: list[Event]) -> None:
        for e in events:
            if e.kind in EVENTS and RANK.get(e.alarm.severity, 0) >= self.min_rank:
                self.worker.submit({"version": 1, "site": e.alarm.site, "event": e.kind, "alarm": e.alarm.as_dict()})

    def _send(self, payload: dict) -> None:
        now = time.time()
        body = dumps({**payload, "sent_at": now})
        ts = str(int(now))
        headers = {"X-Dcim-Event": payload["event"], "X-Dcim-Timestamp": ts}
        if self._secret:
            headers["X-Dcim-Signature"] = signature(self._secret, ts, body)
        post_json(self.url, body, headers, self.timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.worker.stop(timeout_s)

    @property
    def dropped(self) -> int:
        return self.worker.dropped
