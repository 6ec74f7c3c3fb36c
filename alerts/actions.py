"""What the dashboard (or any operator tool) calls: list alarms, read their history,
acknowledge and shelve them. Each action is one point written to the store's ``alarm``
measurement; the engine picks it up at its next cycle (and tells the webhooks). The store
handed in must be writable for acknowledge/shelve.

Errors an operator can cause (an unknown or cleared alarm, no name, a shelve in the past or
too long) raise ``AlarmActionError`` with a message to show as is.
"""

from __future__ import annotations

import time

from alerts.state import ACKED, CLEARED, RAISED, SEVERITY_RANK, SHELVED, AlarmState, parse_alarm_id, read_history, read_states
from dcim.store import Store

MAX_SHELVE_S = 7 * 86400.0  # a shelve longer than a week is a rule change, not a shelve
MAX_NOTE_CHARS = 500


class AlarmActionError(ValueError):
    """An action refused; the message says why, for the operator."""


def list_alarms(store: Store, site: str | None, active_only: bool = True) -> list[AlarmState]:
    """The alarms of *site* (None: every site), most severe first, then oldest raised first.
    Active: raised, acked or shelved (a shelved one carries shelved_until_ns; the banner
    leaves it out, the list shows it)."""
    states = [s for s in read_states(store, site).values() if s.active or not active_only]
    return sorted(states, key=lambda s: (not s.active, -SEVERITY_RANK.get(s.severity, 0), s.raised_ns, s.id))


def counts(alarms: list[AlarmState], now_ns: int | None = None) -> dict[str, int]:
    """Annunciated alarms (active, not shelved) per severity: {"critical": n, "warning": n}."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    out = {"critical": 0, "warning": 0}
    for a in alarms:
        if a.annunciated(now_ns):
            out[a.severity] = out.get(a.severity, 0) + 1
    return out


def history(store: Store, site: str | None, start_ns: int, end_ns: int, alarm_id: str | None = None
            ) -> list[AlarmState]:
    """Every transition in [start_ns, end_ns), oldest first: raised, acked (by, note), shelved
    (until), cleared; of one alarm when *alarm_id* is given."""
    rule = entity = None
    if alarm_id is not None:
        rule, entity = _parse(alarm_id)
    return read_history(store, site, start_ns, end_ns, rule=rule, entity=entity)


def acknowledge(store: Store, alarm_id: str, by: str, note: str = "", *, now_ns: int | None = None) -> AlarmState:
    """Mark an active alarm acknowledged by *by* with *note*; returns the state written."""
    current = _active(store, alarm_id)
    who, note = _who(by), _note(note)
    if current.state == ACKED and current.by == who and current.note == note:
        return current  # the same click twice: nothing new to record
    new = current.to(ACKED, time.time_ns() if now_ns is None else now_ns, by=who, note=note)
    store.write([new.to_point()])
    return new


def shelve(store: Store, alarm_id: str, until_ns: int, by: str, note: str = "", *,
           now_ns: int | None = None) -> AlarmState:
    """Silence an active alarm until *until_ns* (UTC ns, at most a week ahead): no
    notifications, out of the banner; it returns by itself then if its condition holds."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if not isinstance(until_ns, int) or until_ns <= now_ns:
        raise AlarmActionError("shelve until: must be a time in the future")
    if until_ns - now_ns > MAX_SHELVE_S * 1e9:
        raise AlarmActionError(f"shelve until: at most {MAX_SHELVE_S / 86400:g} days ahead")
    current = _active(store, alarm_id)
    new = current.to(SHELVED, now_ns, by=_who(by), note=_note(note), shelved_until_ns=int(until_ns))
    store.write([new.to_point()])
    return new


def unshelve(store: Store, alarm_id: str, by: str, note: str = "", *, now_ns: int | None = None) -> AlarmState:
    """End a shelve early: the alarm is raised (announced) again."""
    current = _active(store, alarm_id)
    if current.state != SHELVED:
        raise AlarmActionError(f"alarm {alarm_id} is not shelved")
    new = current.to(RAISED, time.time_ns() if now_ns is None else now_ns, by=_who(by), note=_note(note))
    store.write([new.to_point()])
    return new


def _parse(alarm_id: str) -> tuple[str, str]:
    try:
        return parse_alarm_id(alarm_id)
    except ValueError as exc:
        raise AlarmActionError(str(exc)) from None


def _active(store: Store, alarm_id: str) -> AlarmState:
    rule, entity = _parse(alarm_id)
    states = read_states(store, None, rule=rule, entity=entity)
    current = states.get((rule, entity))
    if current is None:
        raise AlarmActionError(f"no alarm {alarm_id}")
    if current.state == CLEARED:
        raise AlarmActionError(f"alarm {alarm_id} has cleared")
    return current


def _who(by: str) -> str:
    who = (by or "").strip()
    if not who:
        raise AlarmActionError("who: a name is needed (the acknowledgement is signed)")
    return who[:128]


def _note(note: str) -> str:
    return (note or "").strip()[:MAX_NOTE_CHARS]
