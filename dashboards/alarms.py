"""Alarms as plain functions over the latest values (plain dicts from ``dashboards.data``) and
the inventory. No Dash here: every rule is unit-tested on its own.

Rules
- Rack inlet temperature vs the rack's ASHRAE class (TC9.9): outside the recommended envelope
  (18–27 °C for A1–A4, 18–22 °C for H1) is a warning; outside the class's allowable range
  (A1 15–32, A2 10–35, A3 5–40, A4 5–45, H1 15–25 °C) is critical.
- PDU phase (or whole-PDU) current vs the breaker derated to ``breaker_derate`` (80 % by default):
  ≥ 90 % of the derated limit warns, above it is critical.
- A/B failover: when both feeds of a rack are present, the sum of their per-phase currents must fit
  one derated breaker, or losing a feed trips the other one (warning).
- UPS on battery (critical); UPS load ≥ 80 % warns, ≥ 90 % critical.
- GPU throttling for thermal, hardware slowdown or power-brake reasons (a software power cap is the
  optimizer doing its job and is not an alarm).
- Lost GPUs and failing collectors: ``collector`` points with ``ok = false``; an error naming a
  lost GPU (NVML GPU_IS_LOST) is critical, any other failure is a warning.

First-seen times are kept in-process by :class:`AlarmTracker` (an alarm that clears and comes back
starts again).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

CRITICAL = "critical"
WARNING = "warning"
SEVERITY_ORDER = {CRITICAL: 0, WARNING: 1}

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


def check_inlet(racks: list[dict]) -> list[Alarm]:
    out = []
    for r in racks:
        temp = r.get("inlet_c")
        cls = r.get("ashrae_class", "A1")
        sev = inlet_state(temp, cls)
        if sev is None:
            continue
        (rlo, rhi), (alo, ahi) = inlet_limits(cls)
        lo, hi = ((alo, ahi) if sev == CRITICAL else (rlo, rhi))
        threshold = hi if temp > hi else lo
        out.append(Alarm(
            key=f"inlet:{r['rack']}", severity=sev, kind="inlet", subject=r["rack"],
            message="alarm.inlet_allowable" if sev == CRITICAL else "alarm.inlet_recommended",
            params={"value": f"{temp:.1f} °C", "cls": cls, "lo": f"{lo:g}", "hi": f"{hi:g}"},
            value=temp, threshold=threshold, unit="°C", time_ns=r.get("inlet_t") or 0))
    return out


def derated_limit_a(breaker_a: float, derate: float) -> float:
    return breaker_a * derate


def _current_severity(current_a: float, limit_a: float) -> str | None:
    if current_a > limit_a:
        return CRITICAL
    if current_a >= PDU_WARN_FRACTION * limit_a:
        return WARNING
    return None


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


def check_breakers(pdus: list[dict], derate: float) -> list[Alarm]:
    out = []
    for p in pdus:
        breaker = p.get("breaker_a")
        if not breaker:
            continue
        limit = derated_limit_a(breaker, derate)
        for phase, (amps, t) in sorted(pdu_phase_currents(p).items()):
            sev = _current_severity(amps, limit)
            if sev is None:
                continue
            what = f"{p['pdu']} {phase}" if phase != "L" else p["pdu"]
            out.append(Alarm(
                key=f"breaker:{p['pdu']}:{phase}", severity=sev, kind="breaker", subject=p["rack"],
                message="alarm.breaker",
                params={"what": what, "value": f"{amps:.1f} A", "limit": f"{limit:.1f} A"},
                value=amps, threshold=limit, unit="A", time_ns=t))
    return out


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


def check_failover(pdus: list[dict], derate: float) -> list[Alarm]:
    out = []
    for rack, feeds in sorted(rack_feeds(pdus).items()):
        res = failover_load(feeds, derate)
        if res is None:
            continue
        amps, limit, t = res
        if amps > limit:
            out.append(Alarm(
                key=f"failover:{rack}", severity=WARNING, kind="failover", subject=rack,
                message="alarm.failover", params={"value": f"{amps:.1f} A", "limit": f"{limit:.1f} A"},
                value=amps, threshold=limit, unit="A", time_ns=t))
    return out


def check_ups(ups: list[dict]) -> list[Alarm]:
    out = []
    for u in ups:
        if u.get("on_battery"):
            out.append(Alarm(key=f"ups_battery:{u['ups']}", severity=CRITICAL, kind="ups_battery",
                             subject=u["ups"], message="alarm.ups_battery", value=1.0, threshold=0.0,
                             time_ns=u.get("t") or 0))
        load = u.get("load_pct")
        if load is not None and load >= UPS_WARN_PCT:
            sev = CRITICAL if load >= UPS_CRIT_PCT else WARNING
            limit = UPS_CRIT_PCT if sev == CRITICAL else UPS_WARN_PCT
            out.append(Alarm(key=f"ups_load:{u['ups']}", severity=sev, kind="ups_load", subject=u["ups"],
                             message="alarm.ups_load",
                             params={"value": f"{load:.0f} %", "limit": f"{limit:.0f} %"},
                             value=load, threshold=limit, unit="%", time_ns=u.get("t") or 0))
    return out


def throttle_names(mask: int | None) -> list[str]:
    if not mask:
        return []
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


def check_gpus(gpus: list[dict]) -> list[Alarm]:
    out = []
    for g in gpus:
        mask = g.get("throttle_reasons")
        names = throttle_names(int(mask)) if mask is not None else []
        if not names:
            continue
        sev = CRITICAL if int(mask) & THROTTLE_CRITICAL else WARNING
        subject = f"{g.get('host', '?')}/gpu{g.get('gpu', '?')}"
        out.append(Alarm(key=f"gpu_throttle:{g.get('uuid') or subject}", severity=sev, kind="gpu_throttle",
                         subject=subject, message="alarm.gpu_throttle", params={"reasons": ", ".join(names)},
                         value=float(int(mask)), threshold=0.0, time_ns=g.get("t") or 0))
    return out


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


def evaluate(snapshot: dict, derate: float = 0.8) -> list[Alarm]:
    """Every active alarm for a snapshot (``data.Snapshot``-shaped dict), most severe first."""
    alarms = (check_inlet(snapshot.get("racks", [])) + check_breakers(snapshot.get("pdus", []), derate)
              + check_failover(snapshot.get("pdus", []), derate) + check_ups(snapshot.get("ups", []))
              + check_gpus(snapshot.get("gpus", [])) + check_collectors(snapshot.get("collectors", [])))
    return sort_alarms(alarms)


def sort_alarms(alarms: list[Alarm]) -> list[Alarm]:
    return sorted(alarms, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.first_seen_ns or a.time_ns, a.key))


def counts(alarms: list[Alarm]) -> dict[str, int]:
    out = {CRITICAL: 0, WARNING: 0}
    for a in alarms:
        out[a.severity] = out.get(a.severity, 0) + 1
    return out


class AlarmTracker:
    """In-process first-seen map: an alarm keeps the time it was first raised while it stays active."""

    def __init__(self):
        self._first: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, alarms: list[Alarm], now_ns: int) -> list[Alarm]:
        with self._lock:
            active = {a.key for a in alarms}
            for key in list(self._first):
                if key not in active:
                    del self._first[key]
            out = []
            for a in alarms:
                first = self._first.setdefault(a.key, min(now_ns, a.time_ns) if a.time_ns else now_ns)
                out.append(replace(a, first_seen_ns=first))
        return sort_alarms(out)
