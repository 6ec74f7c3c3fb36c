"""Bad input to the profile engine, offline (a walk file answered by WalkPoller): a device that
answers some tables and not others, a walk that loops, a table with gaps, a counter that wraps,
a sysObjectID two profiles claim, a multi-tower Sentry4. Each has a defined outcome, logged
once, and the rest of the device still decodes. Expected values are worked by hand."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collectors.snmp import profiles as registry
from collectors.snmp.device import SnmpDevice
from collectors.snmp.engine import Endpoint, V2c
from collectors.snmp.profiles.spec import Profile, scalar
from collectors.snmp.walkfile import WalkFileError, WalkPoller
from dcim.cli.main import main

EP = Endpoint("walk", 0, V2c("public"))
S = "1.3.6.1.4.1.1718.4.1"
R = "1.3.6.1.4.1.318.1.1.26"


def decode(tmp_path, lines, kind="pdu", poller=None, name="dev"):
    path = tmp_path / "w.snmprec"
    path.write_text("\n".join(lines) + "\n")
    poller = poller or WalkPoller(path)
    dev = SnmpDevice(name, kind, EP)
    return dev, asyncio.run(dev.poll(poller))


def by(points, measurement, tag):
    return {p.tags[tag]: p.fields for p in points if p.measurement == measurement}


def test_sentry4_link_tower_rows_keep_their_whole_index(tmp_path):
    # Master tower (unit 1) and link tower (unit 2), one cord each, phases 1..2 on both.
    _, points = decode(tmp_path, [
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.1718.4",
        f"{S}.5.3.1.3.1.1.1|2|2079", f"{S}.5.3.1.3.1.1.2|2|2089",
        f"{S}.5.3.1.3.2.1.1|2|2101", f"{S}.5.3.1.3.2.1.2|2|2111",
        f"{S}.8.3.1.7.1.1.4|2|140", f"{S}.8.3.1.7.2.1.4|2|90",
    ])
    phases = by(points, "pdu_phase", "phase")
    assert phases == {"1": {"voltage_v": pytest.approx(207.9)}, "2": {"voltage_v": pytest.approx(208.9)},
                      "2.1.1": {"voltage_v": pytest.approx(210.1)}, "2.1.2": {"voltage_v": pytest.approx(211.1)}}
    assert by(points, "pdu_outlet", "outlet") == {"4": {"power_w": 140}, "2.1.4": {"power_w": 90}}


def test_device_answering_some_tables_logs_once_and_decodes_the_rest(tmp_path, caplog):
    lines = ["1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.5", f"{R}.4.3.1.5.1|2|121",
             f"{R}.6.3.1.5.1|66|65", f"{R}.6.3.1.6.1|2|201"]   # no outlet, breaker or probe tables
    path = tmp_path / "w.snmprec"
    path.write_text("\n".join(lines) + "\n")
    poller = WalkPoller(path)
    dev = SnmpDevice("apc", "pdu", EP)
    with caplog.at_level(logging.INFO, logger="collectors.snmp.device"):
        points = asyncio.run(dev.poll(poller))
        dev.plan.discovered_at = -1e9          # due again: a second discovery finds the same gaps
        asyncio.run(dev.poll(poller))
    assert by(points, "pdu_phase", "phase") == {"1": {"current_a": pytest.approx(6.5), "voltage_v": 201}}
    assert [p.fields for p in points if p.measurement == "pdu"] == [{"power_w": 1210, "current_a": pytest.approx(6.5)}]
    silent = [r for r in caplog.records if "answered nothing" in r.getMessage()]
    assert len(silent) == 1 and f"{R}.9.4.3.1.7" in silent[0].getMessage()


def test_walk_that_loops_is_cut_there_and_logged_once(caplog):
    col = f"{S}.8.3.1.7"

    class Looping(WalkPoller):
        def __init__(self):
            self.requests = 0

        async def get(self, ep, oids):
            return {o: {"1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.1718.4", f"{col}.1.1.1": 10, f"{col}.1.1.2": 20}.get(o)
                    for o in oids}

        async def walk(self, ep, root, max_rows=10000):
            if root != col:
                return []
            return [(f"{col}.1.1.1", 10), (f"{col}.1.1.2", 20), (f"{col}.1.1.1", 10), (f"{col}.1.1.2", 20)]

    dev = SnmpDevice("loop", "pdu", EP)
    with caplog.at_level(logging.WARNING, logger="collectors.snmp.device"):
        points = asyncio.run(dev.poll(Looping()))
        dev.plan.discovered_at = -1e9
        asyncio.run(dev.poll(Looping()))
    assert by(points, "pdu_outlet", "outlet") == {"1": {"power_w": 10}, "2": {"power_w": 20}}
    assert len([r for r in caplog.records if "went back" in r.getMessage()]) == 1


def test_table_with_gaps_and_a_wrapped_counter(tmp_path):
    _, points = decode(tmp_path, [
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.5",
        # outlet 2 has no current row (a gap); outlet 3's energy counter is at its 32-bit top,
        f"{R}.9.4.3.1.6.1|66|9", f"{R}.9.4.3.1.6.3|66|4",
        f"{R}.9.4.3.1.7.1|66|100", f"{R}.9.4.3.1.7.2|66|50", f"{R}.9.4.3.1.7.3|66|40",
        f"{R}.9.4.3.1.11.1|66|5", f"{R}.9.4.3.1.11.3|66|4294967295",
        # and a phase table whose phase 2 current is missing: no (silently low) PDU total.
        f"{R}.6.3.1.5.1|66|65", f"{R}.6.3.1.6.1|2|201", f"{R}.6.3.1.6.2|2|202",
    ])
    outlets = by(points, "pdu_outlet", "outlet")
    assert outlets["2"] == {"power_w": 50}
    assert outlets["3"]["energy_kwh"] == pytest.approx(429496729.5)   # stored raw (tenths kWh), never "fixed"
    pdu = [p.fields for p in points if p.measurement == "pdu"]
    assert pdu == [{"current_a": pytest.approx(6.5)}]   # one phase row has a current: its sum is that row


def test_wrapped_counter_decodes_raw_after_the_wrap(tmp_path):
    path = tmp_path / "w.snmprec"
    lines = ["1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.5", f"{R}.4.3.1.9.1|65|4294967295"]
    path.write_text("\n".join(lines) + "\n")
    dev = SnmpDevice("apc", "pdu", EP)
    first = asyncio.run(dev.poll(WalkPoller(path)))
    path.write_text("\n".join([lines[0], f"{R}.4.3.1.9.1|65|7"]) + "\n")
    second = asyncio.run(dev.poll(WalkPoller(path)))
    assert first[0].fields == {"energy_kwh": pytest.approx(429496729.5)}
    assert second[0].fields == {"energy_kwh": pytest.approx(0.7)}   # the wrap is downstream's to detect


def test_sys_object_id_two_profiles_claim_is_decided_by_identity_and_logged_once(tmp_path, monkeypatch, caplog):
    base = "1.3.6.1.4.1.476.1.42"
    cooling = Profile("t_cooling", "cooling", "test cooling", (base,), (scalar(f"{base}.3.4.3.16.0", "cooling", "fan_pct"),),
                      identity=(f"{base}.3.4",))
    ups = Profile("t_ups", "cooling", "test ups as cooling kind", (base,),
                  (scalar(f"{base}.3.5.9.0", "cooling", "power_w"),), identity=(f"{base}.3.5",))
    monkeypatch.setattr(registry, "ALL", (cooling, ups))
    assert [p.name for p in registry.candidates(base + ".1", "cooling")] == ["t_cooling", "t_ups"]
    path = tmp_path / "w.snmprec"
    path.write_text(f"1.3.6.1.2.1.1.2.0|6|{base}\n{base}.3.5.9.0|2|1500\n")
    dev = SnmpDevice("lgp", "cooling", EP)
    with caplog.at_level(logging.INFO, logger="collectors.snmp.device"):
        points = asyncio.run(dev.poll(WalkPoller(path)))
        dev.plan.discovered_at = -1e9
        asyncio.run(dev.poll(WalkPoller(path)))
    assert dev.plan.profile.name == "t_ups" and points[0].fields == {"power_w": 1500}
    assert len([r for r in caplog.records if "matches t_cooling, t_ups" in r.getMessage()]) == 1


def test_walk_file_out_of_order_and_duplicates_are_repaired_bad_lines_named(tmp_path):
    path = tmp_path / "w.snmprec"
    path.write_text("1.3.6.1.2.1.1.5.0|4|b\n1.3.6.1.2.1.1.2.0|6|1.3.6\n1.3.6.1.2.1.1.5.0|4|c\n")
    poller = WalkPoller(path)
    assert poller.faults == {"out_of_order": 1, "duplicates": 1}
    assert asyncio.run(poller.walk(EP, "1.3.6.1.2.1.1")) == [("1.3.6.1.2.1.1.2.0", "1.3.6"), ("1.3.6.1.2.1.1.5.0", "b")]
    path.write_text("1.3.6.1.2.1.1.5.0|4|b\nnot a line\n")
    with pytest.raises(WalkFileError, match=r"w.snmprec:2: expected OID\|TAG\|VALUE"):
        WalkPoller(path)


def test_probe_save_walk_then_decode_it_offline(snmpsim_agent, tmp_path, monkeypatch, capsys):
    saved = tmp_path / "saved.snmprec"
    monkeypatch.setenv("TEST_PROBE_COMMUNITY", "UPS/apc-8641")
    rc = main(["probe", f"{snmpsim_agent.host}:{snmpsim_agent.port}", "--community-env", "TEST_PROBE_COMMUNITY",
               "--format", "json", "--save-walk", str(saved)])
    live = capsys.readouterr().out
    assert rc == 0 and saved.stat().st_size > 0
    rc = main(["probe", "--walk", str(saved), "--format", "json"])
    offline = capsys.readouterr().out
    assert rc == 0
    # The same readings (the device name differs: sysName is the same, so the lines match exactly).
    assert sorted(offline.splitlines()) == sorted(live.splitlines())
    assert '"power_w": 1210' in offline
    rc = main(["probe", "--walk", str(tmp_path / "missing.snmprec")])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot read walk" in err and "Traceback" not in err
