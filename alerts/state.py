"""An alarm's state as the store holds it: the ``alarm`` measurement (dcim/metrics.py), one point
per transition. The newest point of (rule, entity) is the alarm's state; the points in time
order are its history. Every point carries every field, because a store's latest() fills a
field a point lacks from older points of the series (a cleared alarm must not show the
acknowledger of an earlier occurrence)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from dcim.metrics import FieldValue, Point
from dcim.store import Store

MEASUREMENT = "alarm"
RAISED, ACKED, SHELVED, CLEARED = "raised", "acked", "shelved", "cleared"
STATES = (RAISED, ACKED, SHELVED, CLEARED)
ENGINE = "engine"  # the 'by' of transitions the engine makes
SEVERITY_RANK = {"warning": 1, "critical": 2}
# History is read in buckets this small, so that each point is its own bucket; writers keep an
# alarm's points at least this far apart (``next_time_ns``).
HISTORY_BUCKET_S = 1e-6
MIN_GAP_NS = 1000


def alarm_id(rule: str, entity: str) -> str:
    """The id the dashboard passes back: rule names hold no ':' (alerts/rules), entities may."""
    return f"{rule}:{entity}"


def parse_alarm_id(value: str) -> tuple[str, str]:
    rule, sep, entity = str(value).partition(":")
    if not sep or not rule or not entity:
        raise ValueError(f"not an alarm id (rule:entity): {value!r}")
    return rule, entity


@dataclass(frozen=True)
class AlarmState:
    site: str
    rule: str
    entity: str
    severity: str
    state: str
    raised_ns: int
    time_ns: int = 0  # when this state was written
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    summary: str = ""
    parts: tuple[str, ...] = ()
    shelved_until_ns: int = 0
    by: str = ""
    note: str = ""

    @property
    def id(self) -> str:
        return alarm_id(self.rule, self.entity)

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.entity)

    @property
    def active(self) -> bool:
        return self.state != CLEARED

    def annunciated(self, now_ns: int) -> bool:
        """Active and not shelved (or its shelve has run out): what notifications carry."""
        return self.active and not (self.state == SHELVED and now_ns < self.shelved_until_ns)

    def to(self, state: str, time_ns: int, **changes) -> AlarmState:
        base = {"by": "", "note": "", "shelved_until_ns": 0}
        return replace(self, **{**base, **changes, "state": state, "time_ns": next_time_ns(self, time_ns)})

    def as_dict(self) -> dict:
        d = asdict(self)
        d["id"] = self.id
        d["parts"] = list(self.parts)
        return d

    def to_point(self) -> Point:
        fields: dict[str, FieldValue] = {
            "state": self.state, "raised_ns": int(self.raised_ns), "unit": self.unit, "summary": self.summary,
            "parts": ",".join(self.parts), "shelved_until_ns": int(self.shelved_until_ns), "by": self.by,
            "note": self.note}
        if self.value is not None:
            fields["value"] = float(self.value)
        if self.threshold is not None:
            fields["threshold"] = float(self.threshold)
        tags = {"site": self.site, "rule": self.rule, "entity": self.entity, "severity": self.severity}
        return Point(MEASUREMENT, tags, fields, self.time_ns)

    @classmethod
    def from_fields(cls, tags: dict, fields: dict, time_ns: int) -> AlarmState | None:
        state = fields.get("state")
        if state not in STATES or not tags.get("rule") or not tags.get("entity"):
            return None
        parts = fields.get("parts") or ""
        return cls(site=tags.get("site", ""), rule=tags["rule"], entity=tags["entity"],
                   severity=tags.get("severity", "warning"), state=state,
                   raised_ns=int(fields.get("raised_ns") or time_ns), time_ns=int(time_ns),
                   value=fields.get("value"), threshold=fields.get("threshold"), unit=fields.get("unit") or "",
                   summary=fields.get("summary") or "", parts=tuple(p for p in parts.split(",") if p),
                   shelved_until_ns=int(fields.get("shelved_until_ns") or 0), by=fields.get("by") or "",
                   note=fields.get("note") or "")


def next_time_ns(previous: AlarmState | None, now_ns: int) -> int:
    """A new point's time: now, but after the alarm's previous point (history keeps both)."""
    if previous is None or not previous.time_ns:
        return int(now_ns)
    return max(int(now_ns), previous.time_ns + MIN_GAP_NS)


def read_states(store: Store, site: str | None = None, *, rule: str | None = None,
                entity: str | None = None) -> dict[tuple[str, str], AlarmState]:
    """Each alarm's current state: the newest point of its (rule, entity), whatever its severity
    (a severity change starts a new series under the tag)."""
    where: dict[str, str | Sequence[str]] = {k: v for k, v in (("site", site), ("rule", rule), ("entity", entity))
                                            if v is not None}
    out: dict[tuple[str, str], AlarmState] = {}
    for p in store.latest(MEASUREMENT, where=where or None):
        s = AlarmState.from_fields(p.tags, p.fields, p.time_ns)
        if s is None:
            continue
        old = out.get(s.key)
        if old is None or s.time_ns > old.time_ns:
            out[s.key] = s
    return out


def read_history(store: Store, site: str | None, start_ns: int, end_ns: int, *, rule: str | None = None,
                 entity: str | None = None) -> list[AlarmState]:
    """Every alarm point in [start_ns, end_ns), oldest first (ties: by id)."""
    where: dict[str, str | Sequence[str]] = {k: v for k, v in (("site", site), ("rule", rule), ("entity", entity))
                                            if v is not None}
    fields = ["state", "value", "threshold", "unit", "summary", "parts", "raised_ns", "shelved_until_ns", "by",
              "note"]
    out = []
    for series in store.query(MEASUREMENT, fields, start_ns, end_ns, every_s=HISTORY_BUCKET_S, agg="last",
                              group_by=("site", "rule", "entity", "severity"), where=where or None):
        for i, t in enumerate(series.times_ns):
            s = AlarmState.from_fields(series.tags, {f: series.values[f][i] for f in fields}, t)
            if s is not None:
                out.append(s)
    out.sort(key=lambda s: (s.time_ns, s.id))
    return out
