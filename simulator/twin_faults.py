"""Scheduled faults in the twin: a cooling unit that fails for a while, daily or once.

A spec reads ``cooling:<unit>:<start>-<end>``:

- ``cooling:irc-A1:14:00-14:20``: every day from 14:00 to 14:20 in the site's time zone (a
  window may cross midnight: ``23:50-00:10``);
- ``cooling:irc-A1:+2m-+12m``: once, from 2 to 12 minutes of twin time after the twin starts
  serving (units s, m, h).

A failing air unit (CRAH or in-row) keeps ``FAILED_CAPACITY_FRAC`` of its rated capacity, as when
one of its two compressors or fan banks trips: the twin's physics then shows what a real site
sees, through the same interfaces (its supply air warms with the overload, the racks it cools
breathe warmer air, their GPUs run hotter), and the alarm engine raises and clears on those
readings. Nothing else is told about the fault. Chillers do not fail here (the plant model has
no partial state to show it).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

# One of two compressors / fan banks down [assumption]: with the demo's in-row units at ~80 % of
# their rating, their supply air rises ~6 K (physics.OVERLOAD_K_PER_FRAC) and the racks they cool
# leave ASHRAE's recommended range (27 °C) within a minute or two.
FAILED_CAPACITY_FRAC = 0.5
DAY_S = 86400

_CLOCK = r"(?:[01]?\d|2[0-3]):[0-5]\d"
_OFFSET = r"\+\d+(?:\.\d+)?[smh]"
SPEC_RE = re.compile(rf"^cooling:(?P<unit>[^:]+):(?P<start>{_CLOCK}|{_OFFSET})-(?P<end>{_CLOCK}|{_OFFSET})$")
SPEC_HELP = "cooling:UNIT:HH:MM-HH:MM (daily, site time) or cooling:UNIT:+2m-+12m (once, after the twin starts)"


class FaultError(ValueError):
    """A fault spec that cannot be scheduled; the message names the spec and why."""


class UnknownUnit(FaultError):
    """A well-formed spec naming a unit this twin does not have."""


@dataclass(frozen=True)
class CoolingFault:
    spec: str
    unit: str
    start_s: float     # daily: seconds after local midnight; once: seconds after the twin starts
    end_s: float
    daily: bool


def _seconds(text: str) -> float:
    if text.startswith("+"):
        return float(text[1:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
    hours, minutes = text.split(":")
    return int(hours) * 3600.0 + int(minutes) * 60.0


def parse_fault(spec: str, air_units: list[str] | None = None) -> CoolingFault:
    """One spec; *air_units* (when given) are the names a fault may name."""
    match = SPEC_RE.match(spec.strip())
    if not match:
        raise FaultError(f"fault {spec!r}: expected {SPEC_HELP}")
    start, end = match["start"], match["end"]
    daily = not start.startswith("+")
    if daily != (not end.startswith("+")):
        raise FaultError(f"fault {spec!r}: start and end must both be clock times or both offsets")
    fault = CoolingFault(spec.strip(), match["unit"], _seconds(start), _seconds(end), daily)
    if fault.start_s == fault.end_s or (not daily and fault.end_s < fault.start_s):
        raise FaultError(f"fault {spec!r}: the window is empty")
    if air_units is not None and fault.unit not in air_units:
        raise UnknownUnit(f"fault {spec!r}: no air cooling unit {fault.unit!r} (CRAH or in-row units: "
                         f"{', '.join(air_units) or 'none'})")
    return fault


class FaultSchedule:
    """Applies *faults* to a FacilityTwin before each step: a unit failing in the window runs on a
    copy of its config with ``FAILED_CAPACITY_FRAC`` of its capacity; outside it, on its own."""

    def __init__(self, faults: list[CoolingFault], timezone: str, start_ns: int):
        self.faults = faults
        self.tz = ZoneInfo(timezone)
        self.start_ns = start_ns
        self.failing: set[str] = set()
        self._original: dict[str, object] = {}

    @classmethod
    def from_specs(cls, specs: list[str], twin, *, skip_unknown_units: bool = False) -> FaultSchedule:
        """*skip_unknown_units*: a spec naming a unit the twin lacks is logged and left out (a
        config cut from the demo keeps the demo's faults) instead of raising UnknownUnit."""
        names = [u.name for u in twin.air_units]
        faults = []
        for spec in specs:
            try:
                faults.append(parse_fault(spec, names))
            except UnknownUnit as exc:
                if not skip_unknown_units:
                    raise
                log.warning("%s: not scheduled", exc)
        return cls(faults, twin.config.site.timezone, twin.now_ns)

    def _in_window(self, fault: CoolingFault, now_ns: int) -> bool:
        if not fault.daily:
            elapsed_s = (now_ns - self.start_ns) / 1e9
            return fault.start_s <= elapsed_s < fault.end_s
        local = datetime.fromtimestamp(now_ns / 1e9, self.tz)
        t = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        if fault.start_s < fault.end_s:
            return fault.start_s <= t < fault.end_s
        return t >= fault.start_s or t < fault.end_s   # across midnight

    def apply(self, twin) -> list[str]:
        """Bring *twin*'s air units to the state the schedule asks at ``twin.now_ns``; returns the
        changes made (one line each, for the log)."""
        want = {f.unit for f in self.faults if self._in_window(f, twin.now_ns)}
        changes = []
        for i, unit in enumerate(twin.air_units):
            if unit.name in want and unit.name not in self.failing:
                self._original[unit.name] = unit
                twin.air_units[i] = unit.model_copy(update={"capacity_kw": unit.capacity_kw * FAILED_CAPACITY_FRAC})
                self.failing.add(unit.name)
                changes.append(f"cooling unit {unit.name} failing: {FAILED_CAPACITY_FRAC:.0%} of its "
                               f"{unit.capacity_kw:g} kW left")
            elif unit.name in self.failing and unit.name not in want:
                twin.air_units[i] = self._original.pop(unit.name)
                self.failing.discard(unit.name)
                changes.append(f"cooling unit {unit.name} restored")
        for line in changes:
            log.warning("twin fault: %s", line)
        return changes
