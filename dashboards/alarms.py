"""Alarms on the dashboard: the alarm engine's (``alerts/``) state, read from the store, shaped for
the banner and the alarm list; plus the display thresholds the pages colour values with.

The dashboard computes no alarm any more: what is raised, acknowledged, shelved or cleared is
what the engine wrote to the ``alarm`` measurement. The functions that read and change that state
are handed in by the command line (``dcim/cli/cmd_dashboard.py`` wires ``alerts``), as an
:class:`AlarmBackend`; the dashboard itself imports nothing from ``alerts``.

An alarm is a plain dict as the engine's ``AlarmState.as_dict()`` gives it: ``id``, ``rule``,
``entity``, ``severity``, ``state``, ``raised_ns``, ``time_ns``, ``value``, ``threshold``,
``unit``, ``summary``, ``parts`` (the device's phases, outlets, sensors in alarm), ``by``,
``note``, ``shelved_until_ns``. One alarm per device: a PDU with three phases over its limit is
one alarm listing the phases.

Display thresholds (colours on the map and tables, not alarms):
- Rack inlet vs the rack's ASHRAE class (TC9.9): outside recommended (18–27 °C, H1 18–22) warns,
  outside allowable (A1 15–32, A2 10–35, A3 5–40, A4 5–45, H1 15–25 °C) is critical.
- PDU phase current vs the breaker derated to ``breaker_derate``: ≥ 90 % warns, above critical.
- UPS load ≥ 80 % warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

CRITICAL = "critical"
WARNING = "warning"
SEVERITY_ORDER = {CRITICAL: 0, WARNING: 1}
ACTIVE_STATES = ("raised", "acked", "shelved")

# ASHRAE TC9.9 (5th ed.) air-cooled classes: (recommended lo, hi), (allowable lo, hi), °C.
ASHRAE_CLASSES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "A1": ((18.0, 27.0), (15.0, 32.0)),
    "A2": ((18.0, 27.0), (10.0, 35.0)),
    "A3": ((18.0, 27.0), (5.0, 40.0)),
    "A4": ((18.0, 27.0), (5.0, 45.0)),
    "H1": ((18.0, 22.0), (15.0, 25.0)),
}

PDU_WARN_FRACTION = 0.9  # of the derated limit
UPS_WARN_PCT = 80.0
UPS_CRIT_PCT = 90.0

# NVML clock-event reasons that mean trouble (bit → short name).
THROTTLE_BITS = {
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}
THROTTLE_CRITICAL = 0x40 | 0x80
THROTTLE_MASK = 0x8 | 0x20 | 0x40 | 0x80


class AlarmBackend(Protocol):
    """What the command line hands the dashboard (built on ``alerts``). Every alarm is a dict as
    described above; ``acknowledge`` and ``shelve`` raise ``ValueError`` naming what is wrong (an
    unknown or cleared alarm, an empty operator name)."""

    def active(self) -> list[dict]: ...

    def history(self, start_ns: int, end_ns: int) -> list[dict]: ...

    def acknowledge(self, alarm_id: str, by: str, note: str) -> dict: ...

    def shelve(self, alarm_id: str, by: str, until_ns: int, note: str) -> dict: ...


class NoAlarms:
    """The backend when none is wired (a library user, or no alarm engine configured): an empty
    list, and changes refused with a clear reason."""

    def active(self) -> list[dict]:
        return []

    def history(self, start_ns: int, end_ns: int) -> list[dict]:
        return []

    def acknowledge(self, alarm_id: str, by: str, note: str) -> dict:
        raise ValueError("no alarm engine is wired to this dashboard")

    def shelve(self, alarm_id: str, by: str, until_ns: int, note: str) -> dict:
        raise ValueError("no alarm engine is wired to this dashboard")


def sort_alarms(alarms: list[dict]) -> list[dict]:
    """Most severe first, then the oldest raise, then by id (a stable order for the wall)."""
    return sorted(alarms, key=lambda a: (SEVERITY_ORDER.get(a.get("severity") or "", 9), a.get("raised_ns") or 0,
                                         a.get("id") or ""))


def active_only(alarms: list[dict], now_ns: int) -> list[dict]:
    """Alarms still active; a shelve that has run out counts as raised again."""
    out = []
    for a in alarms:
        if a.get("state") not in ACTIVE_STATES:
            continue
        if a.get("state") == "shelved" and (a.get("shelved_until_ns") or 0) <= now_ns:
            a = {**a, "state": "raised"}
        out.append(a)
    return sort_alarms(out)


def annunciated(alarms: list[dict]) -> list[dict]:
    """What the banner shows: active alarms not shelved (acknowledged ones stay, marked)."""
    return [a for a in alarms if a.get("state") != "shelved"]


def counts(alarms: list[dict]) -> dict[str, int]:
    out = {CRITICAL: 0, WARNING: 0}
    for a in alarms:
        out[a.get("severity", WARNING)] = out.get(a.get("severity", WARNING), 0) + 1
    return out


def by_rule(alarms: list[dict]) -> list[tuple[str, int]]:
    """(rule, number of devices) most numerous first: the banner's summary of what it cannot list."""
    n: dict[str, int] = {}
    for a in alarms:
        n[a.get("rule", "?")] = n.get(a.get("rule", "?"), 0) + 1
    return sorted(n.items(), key=lambda x: (-x[1], x[0]))


def inlet_limits(ashrae_class: str) -> tuple[tuple[float, float], tuple[float, float]]:
    return ASHRAE_CLASSES.get(ashrae_class, ASHRAE_CLASSES["A1"])


def inlet_state(temp_c: float | None, ashrae_class: str) -> str | None:
    """None when inside the recommended envelope (or no reading), else the severity."""
    if temp_c is None:
        return None
    (rlo, rhi), (alo, ahi) = inlet_limits(ashrae_class)
    if temp_c < alo or temp_c > ahi:
        return CRITICAL
    if temp_c < rlo or temp_c > rhi:
        return WARNING
    return None


def derated_limit_a(breaker_a: float, derate: float) -> float:
    return breaker_a * derate


def pdu_phase_currents(pdu: dict) -> dict[str, tuple[float, int]]:
    """Per-phase currents of a PDU {phase: (amps, time)}; from the whole-PDU current when no phase
    readings exist (split evenly over its phases, the whole-PDU figure being their sum)."""
    phases = {k: v for k, v in (pdu.get("phase_current") or {}).items() if v[0] is not None}
    if phases:
        return phases
    if pdu.get("current_a") is None:
        return {}
    n = max(1, int(pdu.get("phases") or 1))
    return {"L": (pdu["current_a"] / n, pdu.get("t") or 0)}


def rack_feeds(pdus: list[dict]) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = {}
    for p in pdus:
        out.setdefault(p["rack"], {}).setdefault(p.get("feed") or "?", []).append(p)
    return out


def failover_load(rack_pdus: dict[str, list[dict]], derate: float) -> tuple[float, float, int] | None:
    """(worst per-phase A+B current, derated limit of one breaker, time) for a rack fed from both
    A and B, or None when it has not both feeds with readings."""
    if "A" not in rack_pdus or "B" not in rack_pdus:
        return None
    sums: dict[str, float] = {}
    limit = None
    t_max = 0
    for feed in ("A", "B"):
        for p in rack_pdus[feed]:
            currents = pdu_phase_currents(p)
            if not currents or not p.get("breaker_a"):
                return None
            lim = derated_limit_a(p["breaker_a"], derate)
            limit = lim if limit is None else min(limit, lim)
            for phase, (amps, t) in currents.items():
                sums[phase] = sums.get(phase, 0.0) + amps
                t_max = max(t_max, t or 0)
    if not sums or limit is None:
        return None
    return max(sums.values()), limit, t_max


def throttle_names(mask: int | None) -> list[str]:
    if not mask:
        return []
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


# -- kept only for tests/faults/test_device_faults.py, which checks what a failing collector
# writes; the dashboard itself shows the engine's alarms (alerts/rules: collector_failed, gpu_lost).

@dataclass(frozen=True)
class Alarm:
    key: str  # stable identity: kind + subject
    severity: str
    kind: str  # inlet, breaker, failover, ups_battery, ups_load, gpu_throttle, gpu_lost, collector
    subject: str  # rack / pdu / ups / gpu / collector target
    message: str  # i18n key
    params: dict = field(default_factory=dict)  # formatting parameters of the message
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    time_ns: int = 0  # time of the reading that raised it
    first_seen_ns: int = 0

    def as_dict(self) -> dict:
        return {"key": self.key, "severity": self.severity, "kind": self.kind, "subject": self.subject,
                "message": self.message, "params": dict(self.params), "value": self.value,
                "threshold": self.threshold, "unit": self.unit, "time_ns": self.time_ns,
                "first_seen_ns": self.first_seen_ns}


def _is_lost(error: str | None) -> bool:
    e = (error or "").lower()
    return "lost" in e or "gpu_is_lost" in e or "fell off the bus" in e


def check_collectors(collectors: list[dict]) -> list[Alarm]:
    out = []
    for c in collectors:
        if c.get("ok") is not False:
            continue
        error = (c.get("error") or "").strip()[:160] or "?"
        subject = f"{c.get('collector', '?')}:{c.get('target', '?')}"
        lost = _is_lost(error)
        out.append(Alarm(
            key=f"{'gpu_lost' if lost else 'collector'}:{subject}", severity=CRITICAL if lost else WARNING,
            kind="gpu_lost" if lost else "collector", subject=subject,
            message="alarm.gpu_lost" if lost else "alarm.collector", params={"error": error},
            time_ns=c.get("t") or 0))
    return out
