"""Prometheus Alertmanager: ``POST /api/v2/alerts`` with the firing alarms, as Prometheus does.

Each alarm is one alert labelled ``alertname`` (the rule), ``site``, ``entity`` and
``severity`` - labels the store holds, so a restarted engine posts the same alert (same
labels, same startsAt) and Alertmanager deduplicates it: no second notification. Firing
alerts are re-posted at least every ``resend_s`` with ``endsAt`` = send time + 4 x resend_s
(Alertmanager resolves an alert whose endsAt passed); an alarm that clears, is shelved or
changes severity is posted once more with ``endsAt`` = now (resolved), and kept in every post
for ``RESOLVED_KEEP_S`` so that a post lost to a dead Alertmanager does not lose it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import quote

from alerts.notify.http import dumps, post_json, safe_name
from alerts.notify.worker import SendWorker
from alerts.state import AlarmState

RESOLVED_KEEP_S = 900.0


def iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def labels_of(a: AlarmState) -> dict[str, str]:
    return {"alertname": a.rule, "site": a.site, "entity": a.entity, "severity": a.severity}


def annotations_of(a: AlarmState) -> dict[str, str]:
    out = {"summary": a.summary or f"{a.rule} on {a.entity}", "alarm_id": a.id, "state": a.state}
    if a.value is not None:
        out["value"] = f"{a.value:g}{(' ' + a.unit) if a.unit else ''}"
    if a.threshold is not None:
        out["threshold"] = f"{a.threshold:g}{(' ' + a.unit) if a.unit else ''}"
    if a.parts:
        out["parts"] = ", ".join(a.parts)
    if a.state == "acked":
        out["acknowledged_by"] = a.by
        if a.note:
            out["note"] = a.note
    return out


class AlertmanagerNotifier:
    def __init__(self, urls: list[str], *, resend_s: float = 60.0, timeout_s: float = 5.0,
                 bearer_token: str | None = None, dashboard_url: str | None = None,
                 queue_size: int = 1000, retry_for_s: float = 120.0, clock=time.time_ns):
        self.resend_ns = int(resend_s * 1e9)
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self.dashboard_url = (dashboard_url or "").rstrip("/")
        self.clock = clock
        self._sent_firing: dict[tuple, dict] = {}  # labels -> alert, as last posted
        self._resolved: dict[tuple, tuple[int, dict]] = {}  # labels -> (resolved at, alert)
        self._last_post_ns = 0
        # One sender per Alertmanager (each of an HA cluster gets every alert); each keeps only
        # the newest state waiting.
        self.workers = [SendWorker(f"alertmanager {safe_name(u)}", self._sender(u), queue_size=1,
                                   retry_for_s=min(retry_for_s, resend_s), latest_only=True) for u in urls]

    def _alert(self, a: AlarmState) -> dict:
        alert = {"labels": labels_of(a), "annotations": annotations_of(a), "startsAt": iso(a.raised_ns)}
        if self.dashboard_url:
            alert["generatorURL"] = f"{self.dashboard_url}/alarms?alarm={quote(a.id, safe='')}"
        return alert

    def sync(self, states: list[AlarmState], now_ns: int, changed: bool = True) -> bool:
        """Post the firing set (and recent resolutions) when it changed or resend_s passed.
        Returns whether a post was queued."""
        firing = {tuple(sorted(labels_of(a).items())): self._alert(a) for a in states if a.annunciated(now_ns)}
        for key, alert in self._sent_firing.items():
            if key not in firing:
                self._resolved[key] = (now_ns, alert)
        for key in firing:
            self._resolved.pop(key, None)
        for key in [k for k, (t, _) in self._resolved.items() if now_ns - t > RESOLVED_KEEP_S * 1e9]:
            del self._resolved[key]
        due = now_ns - self._last_post_ns >= self.resend_ns
        if not (changed or due or firing.keys() != self._sent_firing.keys()):
            return False
        if not firing and not self._resolved and not self._sent_firing and not due:
            return False
        self._sent_firing = firing
        message = ([dict(a) for a in firing.values()],
                   [{**a, "endsAt": iso(t)} for t, a in self._resolved.values()])
        for w in self.workers:
            w.submit(message)
        self._last_post_ns = now_ns
        return True

    def _sender(self, url: str):
        endpoint = url.rstrip("/") + "/api/v2/alerts"

        def send(message) -> None:
            firing, resolved = message
            ends = iso(self.clock() + 4 * self.resend_ns)  # from the moment it is sent
            body = dumps([{**a, "endsAt": ends} for a in firing] + resolved)
            post_json(endpoint, body, self._headers, self.timeout_s)
        return send

    def stop(self, timeout_s: float = 5.0) -> None:
        for w in self.workers:
            w.stop(timeout_s)

    @property
    def dropped(self) -> int:
        return sum(w.dropped for w in self.workers)
