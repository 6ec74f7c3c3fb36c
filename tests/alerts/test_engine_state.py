"""The engine on a real SQLite store: raise after the delay, clear, acknowledge, shelve, history,
flood control, a restarted engine that resumes without raising again, a store that fails."""

from __future__ import annotations

import pytest

from alerts import actions
from alerts.engine import AlarmEngine
from alerts.state import read_states
from dcim.metrics import Point
from dcim.store import StoreUnavailable

S = 10**9
T0 = 1_800_000_000 * S


class Recorder:
    """An event notifier that only records (the real ones are tested in their own files)."""

    dropped = 0

    def __init__(self):
        self.events = []

    def notify(self, events):
        self.events += [(e.kind, e.alarm.id) for e in events]

    def stop(self, timeout_s=5.0):
        pass


def ups(store, t, on_battery, name="UPS-1"):
    store.write([Point("ups", {"site": "s", "ups": name}, {"on_battery": on_battery, "load_pct": 40.0}, t)])


def engine(cfg, store, rec=None):
    return AlarmEngine(cfg, store, notifiers=[rec] if rec else [])


def test_raise_clear_and_history(make_config, store):
    cfg = make_config()
    rec = Recorder()
    e = engine(cfg, store, rec)
    ups(store, T0, True)
    r = e.run_once(T0 + S)
    assert [(s.rule, s.entity, s.state, s.severity) for s in r.writes] == [("ups_on_battery", "UPS-1", "raised",
                                                                           "critical")]
    assert e.run_once(T0 + 2 * S).writes == []  # still on battery: nothing new
    ups(store, T0 + 3 * S, False)
    r = e.run_once(T0 + 4 * S)
    assert [(s.id, s.state) for s in r.writes] == [("ups_on_battery:UPS-1", "cleared")]
    assert rec.events == [("raised", "ups_on_battery:UPS-1"), ("cleared", "ups_on_battery:UPS-1")]
    hist = actions.history(store, cfg.site.name, T0, T0 + 10 * S, "ups_on_battery:UPS-1")
    assert [(h.state, h.time_ns) for h in hist] == [("raised", T0 + S), ("cleared", T0 + 4 * S)]
    assert hist[1].raised_ns == T0 + S
    assert actions.list_alarms(store, cfg.site.name) == []


def test_for_s_delays_the_raise(make_config, store):
    cfg = make_config(overrides={"ups_load": {"for_s": 60}})
    e = engine(cfg, store)
    for k in range(0, 80, 10):  # 95 % load every 10 s
        store.write([Point("ups", {"site": "s", "ups": "U"}, {"load_pct": 95.0}, T0 + k * S)])
        r = e.run_once(T0 + k * S + S // 2)
        assert bool(r.writes) == (k == 60), k  # first seen at 0.5 s: raised at 60.5 s, once


def test_ack_and_shelve_from_the_dashboard(make_config, store):
    cfg = make_config()
    rec = Recorder()
    e = engine(cfg, store, rec)
    ups(store, T0, True)
    e.run_once(T0 + S)
    aid = "ups_on_battery:UPS-1"
    acked = actions.acknowledge(store, aid, "kim", "generator starting", now_ns=T0 + 2 * S)
    assert (acked.state, acked.by, acked.note, acked.raised_ns) == ("acked", "kim", "generator starting", T0 + S)
    ups(store, T0 + 2 * S, True)
    e.run_once(T0 + 3 * S)
    assert rec.events[-1] == ("acked", aid)  # the webhooks hear of it, once
    e.run_once(T0 + 4 * S)
    assert rec.events.count(("acked", aid)) == 1
    [listed] = actions.list_alarms(store, cfg.site.name)
    assert (listed.id, listed.state, listed.by) == (aid, "acked", "kim")

    until = T0 + 600 * S
    actions.shelve(store, aid, until, "lee", "maintenance", now_ns=T0 + 5 * S)
    assert actions.counts(actions.list_alarms(store, cfg.site.name), now_ns=T0 + 6 * S) == {"critical": 0,
                                                                                              "warning": 0}
    ups(store, until + S, True)
    r = e.run_once(until + 2 * S)  # the shelve ran out and the UPS is still on battery
    assert [(s.state, s.by) for s in r.writes] == [("raised", "engine")]
    assert ("unshelved", aid) in rec.events
    states = [h.state for h in actions.history(store, None, T0, until + 10 * S, aid)]
    assert states == ["raised", "acked", "shelved", "raised"]


def test_actions_refuse_what_an_operator_gets_wrong(make_config, store):
    cfg = make_config()
    with pytest.raises(actions.AlarmActionError, match="no alarm ups_on_battery:nope"):
        actions.acknowledge(store, "ups_on_battery:nope", "kim")
    with pytest.raises(actions.AlarmActionError, match="not an alarm id"):
        actions.acknowledge(store, "garbage", "kim")
    ups(store, T0, True)
    engine(cfg, store).run_once(T0 + S)
    with pytest.raises(actions.AlarmActionError, match="a name is needed"):
        actions.acknowledge(store, "ups_on_battery:UPS-1", "  ")
    with pytest.raises(actions.AlarmActionError, match="in the future"):
        actions.shelve(store, "ups_on_battery:UPS-1", T0, "kim", now_ns=T0 + 2 * S)
    with pytest.raises(actions.AlarmActionError, match="at most 7 days"):
        actions.shelve(store, "ups_on_battery:UPS-1", T0 + 8 * 86400 * S, "kim", now_ns=T0 + 2 * S)


def test_restarted_engine_resumes_without_raising_again(make_config, store):
    cfg = make_config()
    first = Recorder()
    ups(store, T0, True)
    ups(store, T0, True, name="UPS-2")
    engine(cfg, store, first).run_once(T0 + S)
    assert sorted(first.events) == [("raised", "ups_on_battery:UPS-1"), ("raised", "ups_on_battery:UPS-2")]
    second = Recorder()
    again = engine(cfg, store, second)  # a new process: nothing in memory
    ups(store, T0 + 2 * S, True)
    ups(store, T0 + 2 * S, False, name="UPS-2")
    for k in range(3, 6):
        again.run_once(T0 + k * S)
    assert second.events == [("cleared", "ups_on_battery:UPS-2")]


def test_flood_control_one_aggregate_alarm(make_config, store):
    cfg = make_config(flood_threshold=5, max_raises_per_cycle=3)
    rec = Recorder()
    e = engine(cfg, store, rec)
    store.write([Point("ups", {"site": "s", "ups": f"U{i:02d}"}, {"on_battery": True}, T0) for i in range(8)])
    r = e.run_once(T0 + S)
    # 8 > 5 new alarms of one rule: one aggregate alarm naming them, not 8 notifications.
    assert [(s.entity, s.value) for s in r.writes] == [("*", 8.0)]
    assert rec.events == [("flood", "ups_on_battery:*")]
    assert "8 devices" in r.writes[0].summary
    # Down to 2 (<= half the threshold): the aggregate clears and the two raise on their own.
    store.write([Point("ups", {"site": "s", "ups": f"U{i:02d}"}, {"on_battery": i < 2}, T0 + 2 * S) for i in range(8)])
    r = e.run_once(T0 + 3 * S)
    assert sorted((s.entity, s.state) for s in r.writes) == [("*", "cleared"), ("U00", "raised"), ("U01", "raised")]


def test_raises_per_cycle_are_capped_most_severe_first(make_config, store):
    cfg = make_config(max_raises_per_cycle=3, overrides={"ups_load": {"for_s": 0}})
    e = engine(cfg, store)
    store.write([Point("ups", {"site": "s", "ups": f"U{i}"}, {"load_pct": 85.0 if i < 3 else 95.0}, T0)
                 for i in range(5)])
    r = e.run_once(T0 + S)
    # Two critical (95 % > 90) first, then one of the three warnings (85 % > 80); two wait.
    assert [(s.entity, s.severity) for s in r.writes] == [("U3", "critical"), ("U4", "critical"), ("U0", "warning")]
    assert r.deferred == 2
    r = e.run_once(T0 + 2 * S)
    assert [s.entity for s in r.writes] == ["U1", "U2"]


class FailingStore:
    """Reads from the real store, refuses every write (InfluxDB down)."""

    def __init__(self, inner):
        self.inner = inner

    def latest(self, *a, **kw):
        return self.inner.latest(*a, **kw)

    def write(self, points):
        raise StoreUnavailable("store down (test)")


def test_a_store_that_refuses_writes_notifies_nothing(make_config, store):
    cfg = make_config()
    rec = Recorder()
    ups(store, T0, True)
    r = engine(cfg, FailingStore(store), rec).run_once(T0 + S)
    assert r.error == "store down (test)" and r.writes == [] and rec.events == []
    assert read_states(store, cfg.site.name) == {}
    r = engine(cfg, store, rec).run_once(T0 + 2 * S)  # back: raised once, now
    assert rec.events == [("raised", "ups_on_battery:UPS-1")]
