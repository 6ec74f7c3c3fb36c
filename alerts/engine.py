"""The alarm engine: every ``[alerts] interval_s`` it reads the latest readings and the alarms'
stored states, evaluates the rules, writes the transitions to the store, then notifies.

Order matters for "no duplicates across restarts": a transition is written before it is
notified, and a restarted engine resumes from the written states, so it never raises (or
notifies) an alarm the store already holds as raised. Alertmanager gets the full firing set
each cycle with the stored labels and startsAt, which it deduplicates. A store that cannot be
written fails the cycle loudly and nothing is notified; the next cycle tries again.

Scheduling as the optimizer's daemon: APScheduler 3.x ``BackgroundScheduler``, ``coalesce``
(a backlog of missed cycles is one cycle), ``max_instances=1`` (cycles never overlap), misfire
grace of half an interval.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.evaluate import Context, Finding, evaluate
from alerts.rules import Rule, load_rules
from alerts.state import ACKED, SHELVED, AlarmState, read_states
from alerts.transitions import Event, Limits, step
from dcim.metrics import FieldValue, Point
from dcim.store import Store, StoreError

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("alerts.engine")
# Series silent for longer than this drop out of the readings; an alarm already raised about
# one stays raised (no reading is no recovery).
LOOKBACK_S = 86400.0
SNMP_MEASUREMENTS = ("pdu", "pdu_phase", "pdu_breaker", "pdu_outlet", "cooling", "ups", "meter", "env", "facility")


@dataclass
class CycleReport:
    time_ns: int
    findings: int = 0  # devices in alarm per the rules (firing findings)
    writes: list[AlarmState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    deferred: int = 0
    cpu_s: float = 0.0
    error: str = ""
    started_s: float = field(default_factory=time.monotonic)


def intervals_s(cfg) -> dict[str, float]:
    """Each collector's expected interval: what 'silent' is measured in."""
    c = cfg.collectors
    snmp = max([c.snmp_interval_s] + [d.snmp.interval_s for d in (*cfg.pdus, *cfg.cooling, *cfg.ups, *cfg.meters)
                                      if d.snmp is not None and d.snmp.interval_s is not None])
    workload = cfg.workload.interval_s if cfg.workload.source != "none" else c.gpu_interval_s
    return {"gpu": c.gpu_interval_s, "snmp": snmp, "collector": max(snmp, c.gpu_interval_s), "workload": workload}


def interval_of(measurement: str) -> str:
    if measurement in ("gpu",):
        return "gpu"
    if measurement == "collector":
        return "collector"
    if measurement == "workload":
        return "workload"
    return "snmp"


class AlarmEngine:
    def __init__(self, cfg, store: Store, *, alertmanager=None, notifiers=(), rules: list[Rule] | None = None,
                 clock=time.time_ns):
        self.cfg = cfg
        self.settings = cfg.alerts
        self.store = store
        self.site = cfg.site.name
        self.rules = load_rules(self.settings) if rules is None else rules
        self.alertmanager = alertmanager
        self.notifiers = list(notifiers)
        self.clock = clock
        self.limits = Limits(self.settings.flood_threshold, self.settings.max_raises_per_cycle,
                             int(self.settings.restate_s * 1e9))
        self.for_ns = {r.name: int(r.for_s * 1e9) for r in self.rules}
        self.pending: dict[tuple[str, str], int] = {}
        self._seen: dict[tuple[str, str], tuple[str, int]] | None = None  # states after the last cycle
        self._intervals = intervals_s(cfg)
        every = self.settings.silent_after_intervals
        self._silent_ns = {k: int(every * v * 1e9) for k, v in self._intervals.items()}
        self._measurements = sorted({r.measurement for r in self.rules})
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self.last_report: CycleReport | None = None

    # -- one cycle ------------------------------------------------------------------------------

    def context(self, now_ns: int, states: dict) -> Context:
        inv_racks = {rack.name: rack.ashrae_class for room in self.cfg.rooms for row in room.rows for rack in row.racks}
        return Context(now_ns=now_ns, derate=float(self.cfg.optimizer.breaker_derate),
                       breaker_a={p.name: p.breaker_a for p in self.cfg.pdus}, ashrae_class=inv_racks,
                       max_age_ns={m: self._silent_ns[interval_of(m)] for m in self._measurements},
                       silent_after_ns=self._silent_ns,
                       active={k: s.severity for k, s in states.items() if s.active})

    def read_readings(self, now_ns: int) -> dict[str, list[Point]]:
        since = now_ns - int(LOOKBACK_S * 1e9)
        return {m: self.store.latest(m, since_ns=since) for m in self._measurements}

    def run_once(self, now_ns: int | None = None) -> CycleReport:
        with self._lock:
            return self._cycle(self.clock() if now_ns is None else now_ns)

    def _cycle(self, now_ns: int) -> CycleReport:
        report = CycleReport(now_ns)
        cpu0 = time.process_time()
        try:
            states = read_states(self.store, self.site)
            events = self._observed(states)
            readings = self.read_readings(now_ns)
            findings = self.evaluate(readings, states, now_ns)
            decided = step(self.site, findings, states, self.pending, self.for_ns, now_ns, self.limits)
            report.findings = sum(1 for f in findings.values() if f.severity)
            report.deferred = decided.deferred
            report.writes = decided.writes
            points = [s.to_point() for s in decided.writes]
            points.append(self._health(now_ns, report, ok=True))
            self.store.write(points)
        except (StoreError, OSError) as exc:
            report.error, report.writes = str(exc), []
            log.error("alarm cycle failed, nothing notified (next cycle retries): %s", exc)
            self._write_quietly([self._health(now_ns, report, ok=False)])
            self.last_report = report
            return report
        for s in decided.writes:
            states[s.key] = s
        self._seen = {k: (s.state, s.time_ns) for k, s in states.items()}
        report.events = events + decided.events
        if decided.deferred:
            log.warning("flood control: %d raise(s) deferred to the next cycle", decided.deferred)
        self._notify(report.events, list(states.values()), now_ns, changed=bool(decided.writes or events))
        report.cpu_s = time.process_time() - cpu0
        self.last_report = report
        return report

    def evaluate(self, readings: dict[str, list[Point]], states: dict, now_ns: int) -> dict[tuple, Finding]:
        return evaluate(self.rules, readings, self.context(now_ns, states))

    def _observed(self, states: dict) -> list[Event]:
        """Acknowledgements and shelves written by operators (the dashboard) since the last
        cycle, as events for the notifiers. None on the first cycle: a restart re-announces
        nothing."""
        if self._seen is None:
            return []
        out = []
        for key, s in states.items():
            if s.state in (ACKED, SHELVED) and self._seen.get(key) != (s.state, s.time_ns):
                out.append(Event(s.state, s))
        return out

    def _notify(self, events: list[Event], states: list[AlarmState], now_ns: int, changed: bool) -> None:
        for n in self.notifiers:
            n.notify(events)
        if self.alertmanager is not None:
            self.alertmanager.sync(states, now_ns, changed=changed)

    def dropped(self) -> int:
        return sum(n.dropped for n in self.notifiers) + (self.alertmanager.dropped if self.alertmanager else 0)

    def _health(self, now_ns: int, report: CycleReport, ok: bool) -> Point:
        fields: dict[str, FieldValue] = {"ok": ok, "points": len(report.writes), "dropped": self.dropped(),
                  "duration_s": time.monotonic() - report.started_s}
        if not ok:
            fields["error"] = report.error[:500]
        return Point("collector", {"collector": "alerts", "target": self.site}, fields, now_ns)

    def _write_quietly(self, points: list[Point]) -> None:
        try:
            self.store.write(points)
        except (StoreError, OSError):
            pass

    # -- scheduling -----------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            self.run_once()
        except Exception:  # a bug in one cycle is logged; the schedule goes on
            log.exception("alarm cycle crashed")

    def start(self) -> AlarmEngine:
        from datetime import UTC, datetime

        from apscheduler.schedulers.background import BackgroundScheduler

        interval = float(self.settings.interval_s)
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(self._tick, "interval", seconds=interval, id="alarm-cycle", coalesce=True,
                          max_instances=1, misfire_grace_time=max(1, int(interval / 2)),
                          next_run_time=datetime.now(UTC))
        scheduler.start()
        self._scheduler = scheduler
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        for n in self.notifiers:
            n.stop(timeout_s)
        if self.alertmanager is not None:
            self.alertmanager.stop(timeout_s)
