"""One cycle's decisions, pure: findings + the stored states -> the states to write and the
events to notify. No I/O, no clock (``now_ns`` is given).

- A firing finding raises only after its rule's ``for_s`` (pending times are held in memory: a
  restarted engine waits the delay again, it never notifies twice).
- A finding that says "fine" clears an active alarm (hysteresis was applied in evaluate); no
  finding at all keeps it (a missing reading is no recovery).
- A higher severity re-raises (an acknowledgement does not cover the worse condition); a lower
  one keeps the state (acked stays acked).
- A shelved alarm returns when its shelve runs out.
- Flood control: more ready raises of one rule than ``flood_threshold`` become one aggregate
  alarm (entity ``*``) listing the first devices; at most ``max_raises`` raises a cycle, the
  most severe first, the rest wait (counted in ``deferred``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.evaluate import RANK, Finding
from alerts.state import CLEARED, ENGINE, RAISED, SHELVED, AlarmState

FLOOD_ENTITY = "*"
FLOOD_LISTED = 10  # devices named in an aggregate alarm


@dataclass
class Event:
    kind: str  # raised, escalated, deescalated, cleared, unshelved, acked, shelved, flood
    alarm: AlarmState

    def as_dict(self) -> dict:
        return {"event": self.kind, "alarm": self.alarm.as_dict()}


@dataclass
class Step:
    writes: list[AlarmState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    deferred: int = 0

    def put(self, state: AlarmState, event: str | None) -> None:
        self.writes.append(state)
        if event:
            self.events.append(Event(event, state))


@dataclass
class Limits:
    flood_threshold: int = 20
    max_raises: int = 100
    restate_ns: int = int(6 * 3600e9)


def _raise(site: str, f: Finding, now_ns: int, previous: AlarmState | None) -> AlarmState:
    assert f.severity is not None, "a clearing finding is never raised"  # step() keeps them out of ready
    base = AlarmState(site=site, rule=f.rule, entity=f.entity, severity=f.severity, state=RAISED,
                      raised_ns=now_ns, time_ns=previous.time_ns if previous else 0)
    return base.to(RAISED, now_ns, value=f.value, threshold=f.threshold, unit=f.unit, summary=f.summary,
                   parts=f.parts, by=ENGINE, raised_ns=now_ns)


def _active_update(st: AlarmState, f: Finding, now_ns: int, limits: Limits, step: Step) -> None:
    """An active alarm whose condition still holds."""
    detail = {"value": f.value, "threshold": f.threshold, "summary": f.summary or st.summary, "parts": f.parts,
              "severity": f.severity}
    if st.state == SHELVED and now_ns >= st.shelved_until_ns:
        step.put(st.to(RAISED, now_ns, by=ENGINE, **detail), "unshelved")
    elif RANK[f.severity] > RANK[st.severity]:
        if st.state == SHELVED:  # still shelved: the operator chose quiet until then
            step.put(st.to(SHELVED, now_ns, by=st.by, note=st.note, shelved_until_ns=st.shelved_until_ns, **detail),
                     None)
        else:
            step.put(st.to(RAISED, now_ns, by=ENGINE, **detail), "escalated")
    elif RANK[f.severity] < RANK[st.severity]:
        step.put(st.to(st.state, now_ns, by=st.by, note=st.note, shelved_until_ns=st.shelved_until_ns, **detail),
                 "deescalated" if st.state != SHELVED else None)
    elif now_ns - st.time_ns >= limits.restate_ns:  # written again, so retention never drops it
        step.put(st.to(st.state, now_ns, by=st.by, note=st.note, shelved_until_ns=st.shelved_until_ns,
                       value=f.value, parts=f.parts), None)


def step(site: str, findings: dict[tuple[str, str], Finding], states: dict[tuple[str, str], AlarmState],
         pending: dict[tuple[str, str], int], for_ns: dict[str, int], now_ns: int, limits: Limits) -> Step:
    """Decide one cycle. *pending* ({key: first time seen firing}) is updated in place."""
    out = Step()
    ready: list[Finding] = []
    for key, f in findings.items():
        st = states.get(key)
        active = st if st is not None and st.active else None
        if f.severity is None:
            pending.pop(key, None)
            if active is not None:
                out.put(active.to(CLEARED, now_ns, value=f.value, parts=(), by=ENGINE), "cleared")
            continue
        if active is not None:
            _active_update(active, f, now_ns, limits, out)
            continue
        first = pending.setdefault(key, now_ns)
        if now_ns - first >= for_ns.get(f.rule, 0):
            ready.append(f)
    for key, st in states.items():  # shelves that ran out with no finding this cycle
        if key not in findings and st.state == SHELVED and now_ns >= st.shelved_until_ns:
            out.put(st.to(RAISED, now_ns, by=ENGINE, value=st.value, threshold=st.threshold, summary=st.summary,
                          parts=st.parts), "unshelved")
    _raise_ready(site, ready, states, pending, now_ns, limits, out)
    return out


def _raise_ready(site: str, ready: list[Finding], states: dict, pending: dict, now_ns: int, limits: Limits,
                 out: Step) -> None:
    by_rule: dict[str, list[Finding]] = {}
    for f in ready:
        by_rule.setdefault(f.rule, []).append(f)
    individual: list[Finding] = []
    for rule, found in sorted(by_rule.items()):
        agg = states.get((rule, FLOOD_ENTITY))
        flooding = agg if agg is not None and agg.active else None
        # Hysteresis on the flood too: it ends when the backlog falls to half the threshold.
        if len(found) > limits.flood_threshold or (flooding is not None and len(found) > limits.flood_threshold // 2):
            _flood(site, rule, found, agg, now_ns, out)
        else:
            if flooding is not None:
                out.put(flooding.to(CLEARED, now_ns, value=float(len(found)), parts=(), by=ENGINE), "cleared")
            individual.extend(found)
    for rule, agg in states.items():  # a flood whose devices all recovered
        if rule[1] == FLOOD_ENTITY and agg.active and rule[0] not in by_rule:
            out.put(agg.to(CLEARED, now_ns, value=0.0, parts=(), by=ENGINE), "cleared")
    individual.sort(key=lambda f: (-RANK[f.severity], f.rule, f.entity))
    for f in individual[:limits.max_raises]:
        pending.pop((f.rule, f.entity), None)
        out.put(_raise(site, f, now_ns, states.get((f.rule, f.entity))), "raised")
    out.deferred = max(0, len(individual) - limits.max_raises)


def _flood(site: str, rule: str, found: list[Finding], agg: AlarmState | None, now_ns: int, out: Step) -> None:
    severity = max((f.severity for f in found), key=RANK.__getitem__)
    names = tuple(sorted(f.entity for f in found)[:FLOOD_LISTED])
    summary = (f"{len(found)} devices in alarm for {rule} (flood control: one alarm for all), e.g. "
               f"{found[0].summary}")
    if agg is None or not agg.active:
        f = Finding(rule, FLOOD_ENTITY, severity, float(len(found)), None, "devices", names, summary)
        out.put(_raise(site, f, now_ns, agg), "flood")
    elif RANK[severity] > RANK[agg.severity]:
        out.put(agg.to(RAISED, now_ns, severity=severity, value=float(len(found)), summary=summary, parts=names,
                       by=ENGINE), "escalated")
