"""Rules over readings (alerts.evaluate) and the rule tables (alerts.rules): expected values are
worked out by hand from the rule tables' numbers, never by the code under test."""

from __future__ import annotations

import pytest

from alerts.evaluate import Context, evaluate
from alerts.rules import RuleError, load_rules
from dcim.config.alerts import AlertsSettings
from dcim.metrics import Point

NOW = 1_800_000_000 * 10**9
S = 10**9


def rules(*names, **overrides):
    settings = AlertsSettings.model_validate({"overrides": overrides}) if overrides else None
    return [r for r in load_rules(settings) if r.name in names]


def ctx(**kw):
    base = dict(now_ns=NOW, derate=0.8, max_age_ns={}, silent_after_ns={"gpu": 15 * S, "snmp": 30 * S})
    base.update(kw)
    return Context(**base)


def phase(pdu, ph, amps, t=NOW - S, breaker=None, feed="A", rack="R1"):
    f = {"current_a": amps}
    if breaker:
        f["breaker_a"] = breaker
    return Point("pdu_phase", {"site": "s", "room": "h", "rack": rack, "pdu": pdu, "feed": feed, "phase": ph}, f, t)


def test_one_alarm_per_pdu_lists_its_phases():
    # 32 A breaker derated to 25.6 A: 24 A is 93.75 % (warning, > 90), 26 A is 101.6 % (critical).
    pts = [phase("p1", "L1", 24.0), phase("p1", "L2", 26.0), phase("p1", "L3", 10.0)]
    out = evaluate(rules("pdu_phase_load"), {"pdu_phase": pts}, ctx(breaker_a={"p1": 32.0}))
    assert list(out) == [("pdu_phase_load", "p1")]
    f = out[("pdu_phase_load", "p1")]
    assert f.severity == "critical"
    assert f.parts == ("L1", "L2")
    assert f.value == pytest.approx(26.0 / 25.6 * 100)
    assert f.threshold == 100.0
    assert "L1, L2" in f.summary and "R1" in f.summary


def test_breaker_from_the_reading_wins_over_the_config():
    # 16 A breaker on the reading -> 12.8 A derated; 12 A is 93.75 %: warning.
    out = evaluate(rules("pdu_phase_load"), {"pdu_phase": [phase("p1", "L1", 12.0, breaker=16.0)]},
                   ctx(breaker_a={"p1": 32.0}))
    assert out[("pdu_phase_load", "p1")].severity == "warning"


def test_hysteresis_holds_an_active_alarm_until_inside_by_the_margin():
    r = rules("pdu_phase_load")  # warning 90 %, hysteresis 3 points
    reading = [phase("p1", "L1", 0.885 * 25.6)]  # 88.5 %: under 90 but within 3 of it
    quiet = evaluate(r, {"pdu_phase": reading}, ctx(breaker_a={"p1": 32.0}))
    assert quiet == {}  # not active: below the level is nothing at all
    held = evaluate(r, {"pdu_phase": reading}, ctx(breaker_a={"p1": 32.0}, active={("pdu_phase_load", "p1"): "warning"}))
    assert held[("pdu_phase_load", "p1")].severity == "warning"
    lower = [phase("p1", "L1", 0.86 * 25.6)]  # 86 %: 4 points inside
    cleared = evaluate(r, {"pdu_phase": lower}, ctx(breaker_a={"p1": 32.0}, active={("pdu_phase_load", "p1"): "warning"}))
    assert cleared[("pdu_phase_load", "p1")].severity is None  # evidence of recovery


def test_a_missing_or_stale_reading_is_no_evidence():
    r = rules("pdu_phase_load")
    active = {("pdu_phase_load", "p1"): "critical"}
    old = [phase("p1", "L1", 1.0, t=NOW - 60 * S)]  # older than its max age (30 s)
    out = evaluate(r, {"pdu_phase": old}, ctx(breaker_a={"p1": 32.0}, active=active, max_age_ns={"pdu_phase": 30 * S}))
    assert out == {}
    assert evaluate(r, {}, ctx(active=active)) == {}


def test_ashrae_classes_per_rack():
    def env(rack, temp, sensor="top"):
        return Point("env", {"site": "s", "room": "h", "rack": rack, "sensor": sensor, "position": "inlet"},
                     {"temp_c": temp}, NOW - S)
    pts = [env("a1", 28.0), env("h1", 23.0), env("a2", 33.0), env("a1b", 26.0),
           Point("env", {"site": "s", "room": "h", "rack": "x", "sensor": "o", "position": "outlet"}, {"temp_c": 45.0},
                 NOW - S)]
    out = evaluate(rules("inlet_temp"), {"env": pts},
                   ctx(ashrae_class={"a1": "A1", "h1": "H1", "a2": "A1", "a1b": "A1"}))
    # A1: 28 > 27 recommended -> warning; H1: 23 > 22 -> warning; 33 > 32 allowable A1 -> critical;
    # 26 inside; outlet probes are not inlet.
    assert {k[1]: f.severity for k, f in out.items() if f.severity} == {"a1": "warning", "h1": "warning",
                                                                        "a2": "critical"}
    assert out[("inlet_temp", "a2")].threshold == 32.0
    assert "allowable" in out[("inlet_temp", "a2")].summary


def test_collector_failure_vs_gpu_lost():
    def col(target, ok, error=""):
        f = {"ok": ok, "duration_s": 0.1}
        if error:
            f["error"] = error
        return Point("collector", {"collector": "gpu", "target": target}, f, NOW - S)
    pts = [col("n1", False, "NVML: GPU_IS_LOST on gpu 3"), col("n2", False, "timeout"), col("n3", True)]
    out = evaluate(rules("gpu_lost", "collector_failed"), {"collector": pts}, ctx(max_age_ns={"collector": 30 * S}))
    firing = {k: f.severity for k, f in out.items() if f.severity}
    assert firing == {("gpu_lost", "gpu:n1"): "critical", ("collector_failed", "gpu:n2"): "warning"}
    # A lost GPU is not also a plain collector failure: that rule has evidence it is fine.
    assert out[("collector_failed", "gpu:n1")].severity is None


def test_gpu_throttle_bits_ecc_and_temperature():
    def gpu(i, **f):
        return Point("gpu", {"site": "s", "room": "h", "rack": "R1", "host": "n1", "gpu": str(i), "uuid": f"u{i}",
                             "model": "H100"}, f, NOW - S)
    pts = [gpu(0, throttle_reasons=0x4, temp_c=60.0), gpu(1, throttle_reasons=0x20), gpu(2, throttle_reasons=0x40),
           gpu(3, ecc_uncorrected=2, temp_c=90.0), gpu(4, ecc_uncorrected=0, temp_c=86.0)]
    out = evaluate(rules("gpu_throttle", "gpu_ecc", "gpu_temp"), {"gpu": pts}, ctx(max_age_ns={"gpu": 15 * S}))
    firing = {k: f.severity for k, f in out.items() if f.severity}
    assert firing == {("gpu_throttle", "n1/gpu1"): "warning", ("gpu_throttle", "n1/gpu2"): "critical",
                      ("gpu_ecc", "n1/gpu3"): "critical", ("gpu_temp", "n1/gpu3"): "critical",
                      ("gpu_temp", "n1/gpu4"): "warning"}
    assert "sw_thermal" in out[("gpu_throttle", "n1/gpu1")].summary


def test_silent_series_one_alarm_per_host_listing_gpus():
    def gpu(host, i, age_s):
        return Point("gpu", {"site": "s", "room": "h", "rack": "R1", "host": host, "gpu": str(i), "uuid": f"{host}{i}",
                             "model": "H100"}, {"power_w": 300.0}, NOW - age_s * S)
    pts = [gpu("n1", 0, 2), gpu("n1", 1, 20), gpu("n1", 2, 40), gpu("n2", 0, 1)]
    out = evaluate(rules("gpu_silent"), {"gpu": pts}, ctx())  # silent after 15 s
    assert {k: f.parts for k, f in out.items()} == {("gpu_silent", "n1"): ("gpu1", "gpu2")}
    assert out[("gpu_silent", "n1")].value == pytest.approx(40.0)


def test_feed_failover_needs_both_feeds():
    pts = [phase("pa", "L1", 14.0, feed="A"), phase("pb", "L1", 13.0, feed="B"), phase("pc", "L1", 20.0, rack="R2")]
    out = evaluate(rules("feed_failover"), {"pdu_phase": pts}, ctx(breaker_a={"pa": 32.0, "pb": 32.0, "pc": 32.0}))
    # R1: 27 A on one 25.6 A derated breaker = 105.5 % -> warning; R2 has one feed only.
    assert list(out) == [("feed_failover", "R1")]
    assert out[("feed_failover", "R1")].value == pytest.approx(27.0 / 25.6 * 100)


def test_ups_runtime_only_on_battery():
    def ups(name, **f):
        return Point("ups", {"site": "s", "ups": name}, f, NOW - S)
    pts = [ups("u1", on_battery=True, runtime_s=250.0), ups("u2", on_battery=False, runtime_s=100.0)]
    out = evaluate(rules("ups_runtime", "ups_on_battery"), {"ups": pts}, ctx())
    firing = {k: f.severity for k, f in out.items() if f.severity}
    assert firing == {("ups_runtime", "u1"): "critical", ("ups_on_battery", "u1"): "critical"}


def test_site_override_changes_levels_and_switches_rules_off():
    r = rules("gpu_temp", gpu_temp={"warning": 70.0, "for_s": 5})
    assert r[0].above == {"warning": 70.0, "critical": 89.0} and r[0].for_s == 5
    assert rules("gpu_temp", gpu_temp={"enabled": False}) == []
    with pytest.raises(RuleError, match="alerts.overrides.nope: no rule named 'nope'"):
        load_rules(AlertsSettings.model_validate({"overrides": {"nope": {"for_s": 1}}}))
    with pytest.raises(RuleError, match="kind 'flag', which has no levels"):
        load_rules(AlertsSettings.model_validate({"overrides": {"ups_on_battery": {"warning": 1}}}))


@pytest.mark.parametrize("table, message", [
    ('[[rule]]\nname = "x"\nkind = "threshold"\nmeasurement = "gpu"\nfield = "nope"\nentity = "{host}"\n'
     'above = {warning = 1}\n', "gpu has no field 'nope'"),
    ('[[rule]]\nname = "x"\nkind = "threshold"\nmeasurement = "gpu"\nfield = "temp_c"\nentity = "{rack2}"\n'
     'above = {warning = 1}\n', "gpu has no tag 'rack2'"),
    ('[[rule]]\nname = "x"\nkind = "nope"\nmeasurement = "gpu"\nentity = "{host}"\n', "kind: one of"),
    ('[[rule]]\nname = "x"\nkind = "threshold"\nmeasurement = "gpu"\nfield = "temp_c"\nentity = "{host}"\n',
     "needs exactly one of above or below"),
    ('[[rule]]\nname = "x"\nkind = "flag"\nmeasurement = "ups"\nfield = "on_battery"\nentity = "{ups}"\n'
     'equals = true\ntypo = 1\n', "unknown key(s) ['typo']"),
    ('[[rule\n', "rules.toml"),
])
def test_bad_rule_tables_name_the_key(tmp_path, table, message):
    path = tmp_path / "rules.toml"
    path.write_text(table)
    with pytest.raises(RuleError) as err:
        load_rules(AlertsSettings(rules_file=path))
    assert message in str(err.value)
