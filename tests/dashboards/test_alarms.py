"""Alarm rules as plain functions: ASHRAE classes, breaker derate, failover, UPS, GPUs, collectors."""

from dashboards import alarms as A


def rack(name="R1", temp=22.0, cls="A1", t=1):
    return {"rack": name, "inlet_c": temp, "ashrae_class": cls, "inlet_t": t}


def test_inlet_recommended_and_allowable_per_class():
    assert A.check_inlet([rack(temp=22.0)]) == []
    warn = A.check_inlet([rack(temp=28.0)])
    assert [(a.severity, a.threshold) for a in warn] == [("warning", 27.0)]
    crit = A.check_inlet([rack(temp=32.5)])
    assert [(a.severity, a.threshold) for a in crit] == [("critical", 32.0)]
    # the same 33 °C is only a warning for an A3 rack (allowable 5–40 °C)
    assert [a.severity for a in A.check_inlet([rack(temp=33.0, cls="A3")])] == ["warning"]
    # too cold: A1 recommended starts at 18, allowable at 15
    assert [a.severity for a in A.check_inlet([rack(temp=17.0)])] == ["warning"]
    assert [a.severity for a in A.check_inlet([rack(temp=14.0)])] == ["critical"]
    # H1 (high density) is tighter: recommended 18–22, allowable 15–25
    assert [a.severity for a in A.check_inlet([rack(temp=23.0, cls="H1")])] == ["warning"]
    assert [a.severity for a in A.check_inlet([rack(temp=26.0, cls="H1")])] == ["critical"]
    assert A.check_inlet([rack(temp=None)]) == []


def test_alarm_carries_value_threshold_and_message_params():
    (a,) = A.check_inlet([rack(name="X9", temp=33.0, t=123)])
    assert a.subject == "X9" and a.value == 33.0 and a.unit == "°C" and a.time_ns == 123
    assert a.params["cls"] == "A1" and a.params["hi"] == "32"


def pdu(name="p", rack="R1", feed="A", breaker=32.0, phases=None, current=None):
    return {"pdu": name, "rack": rack, "feed": feed, "breaker_a": breaker, "phases": 3, "current_a": current,
            "phase_current": {k: (v, 5) for k, v in (phases or {}).items()}, "t": 5}


def test_breaker_current_against_80_percent_derate():
    limit = 32.0 * 0.8  # 25.6 A
    assert A.check_breakers([pdu(phases={"L1": 20.0})], 0.8) == []
    (w,) = A.check_breakers([pdu(phases={"L1": 0.9 * limit + 0.01})], 0.8)
    assert w.severity == "warning" and w.threshold == limit
    (c,) = A.check_breakers([pdu(phases={"L1": 10.0, "L2": 26.0, "L3": 10.0})], 0.8)
    assert c.severity == "critical" and c.value == 26.0 and "L2" in c.key
    # no phase readings: the whole-PDU current (sum of 3 phases) is split evenly
    (c2,) = A.check_breakers([pdu(current=3 * 26.0)], 0.8)
    assert c2.severity == "critical"
    # another derate from the config
    # a 0.9 derate: limit 28.8 A, so 26 A is a warning (≥ 90 % of it), not critical
    assert [a.severity for a in A.check_breakers([pdu(phases={"L1": 26.0})], 0.9)] == ["warning"]


def test_failover_needs_both_feeds_to_fit_one_derated_breaker():
    a = pdu("a", feed="A", phases={"L1": 12.0})
    b = pdu("b", feed="B", phases={"L1": 12.0})
    assert A.check_failover([a, b], 0.8) == []  # 24 A ≤ 25.6 A
    b2 = pdu("b", feed="B", phases={"L1": 14.0})
    (w,) = A.check_failover([a, b2], 0.8)
    assert w.severity == "warning" and w.value == 26.0 and w.subject == "R1"
    assert A.check_failover([a], 0.8) == []  # single-fed rack: nothing to fail over to


def test_ups_battery_and_load():
    (bat,) = A.check_ups([{"ups": "u1", "on_battery": True, "load_pct": 40.0}])
    assert bat.severity == "critical" and bat.kind == "ups_battery"
    assert A.check_ups([{"ups": "u1", "on_battery": False, "load_pct": 79.0}]) == []
    assert [a.severity for a in A.check_ups([{"ups": "u1", "on_battery": False, "load_pct": 85.0}])] == ["warning"]
    assert [a.severity for a in A.check_ups([{"ups": "u1", "on_battery": False, "load_pct": 95.0}])] == ["critical"]


def test_gpu_throttling_ignores_power_cap_but_flags_thermal():
    g = {"uuid": "GPU-1", "host": "h", "gpu": "0"}
    assert A.check_gpus([{**g, "throttle_reasons": 0x4}]) == []  # SW power cap: the optimizer at work
    assert A.check_gpus([{**g, "throttle_reasons": 0x1}]) == []  # idle
    (w,) = A.check_gpus([{**g, "throttle_reasons": 0x20}])
    assert w.severity == "warning" and "sw_thermal" in w.params["reasons"]
    (c,) = A.check_gpus([{**g, "throttle_reasons": 0x40 | 0x4}])
    assert c.severity == "critical"


def test_collectors_lost_gpu_is_critical_other_failures_warn():
    cs = [{"collector": "nvml", "target": "h1", "ok": False, "error": "NVML GPU_IS_LOST on GPU-3"},
          {"collector": "snmp", "target": "pdu-1", "ok": False, "error": "timeout"},
          {"collector": "snmp", "target": "pdu-2", "ok": True}]
    out = {a.kind: a.severity for a in A.check_collectors(cs)}
    assert out == {"gpu_lost": "critical", "collector": "warning"}


def test_evaluate_orders_by_severity_and_tracker_keeps_first_seen():
    snap = {"racks": [rack("R1", 28.0), rack("R2", 40.0)], "pdus": [], "ups": [], "gpus": [], "collectors": []}
    alarms = A.evaluate(snap)
    assert [a.severity for a in alarms] == ["critical", "warning"]
    tr = A.AlarmTracker()
    first = tr.update(alarms, now_ns=1000)
    assert {a.first_seen_ns for a in first} == {1}  # reading time (t=1) is older than now
    again = tr.update(A.evaluate(snap), now_ns=5000)
    assert {a.first_seen_ns for a in again} == {1}
    # R2 clears, then comes back: its first-seen starts again
    snap2 = {**snap, "racks": [rack("R1", 28.0), rack("R2", 22.0)]}
    assert len(tr.update(A.evaluate(snap2), now_ns=6000)) == 1
    back = tr.update(A.evaluate({**snap, "racks": [rack("R1", 28.0), rack("R2", 40.0, t=7000)]}), now_ns=7000)
    assert {a.subject: a.first_seen_ns for a in back} == {"R1": 1, "R2": 7000}
    assert A.counts(back) == {"critical": 1, "warning": 1}
