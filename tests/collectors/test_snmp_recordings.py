"""SNMP collection against recordings of real devices (snmpsim-data), over real UDP.

Every expected value is computed here from the .snmprec file with the reference's scale
(docs: snmp-device-oids.md §1.1, §2.2, §2.3), independently of the profiles' own tables.
"""

from __future__ import annotations

import asyncio

import pytest

from collectors.snmp.device import SnmpDevice
from collectors.snmp.engine import V3, Endpoint, SnmpPoller, V2c
from tests.fixtures.snmpsim import SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, SNMPSIM_V3_USER

RPDU2 = "1.3.6.1.4.1.318.1.1.26"


def poll(agent, community: str, kind: str, auth=None, profile: str = "auto", tags=None):
    async def go():
        poller = SnmpPoller()
        try:
            dev = SnmpDevice("dev", kind, Endpoint(agent.host, agent.port, auth or V2c(community), timeout_s=2),
                             tags or {"site": "s"}, profile)
            points = await dev.poll(poller)
            return dev, points
        finally:
            poller.close()
    return asyncio.run(go())


def column(rec: dict, col: str) -> dict[str, int]:
    """index -> raw integer for every row of a column in the recording."""
    prefix = col + "."
    return {oid[len(prefix):]: int(v) for oid, (tag, v) in rec.items() if oid.startswith(prefix) and tag == "2"}


def by_tag(points, measurement: str, tag: str) -> dict[str, dict]:
    return {p.tags[tag]: p.fields for p in points if p.measurement == measurement}


def one(points, measurement: str) -> dict:
    found = [p for p in points if p.measurement == measurement]
    assert len(found) == 1, f"expected one {measurement} point, got {found}"
    return found[0].fields


def scaled(raw: int, scale: float):
    """The reference's rule: -1 (and other negatives) mean 'not supported' -> absent."""
    return None if raw < 0 else pytest.approx(raw * scale)


def check_columns(points, rec, measurement, tag, cols):
    got = by_tag(points, measurement, tag)
    rows = set()
    for field, (col, scale) in cols.items():
        for index, raw in column(rec, col).items():
            rows.add(index)
            want = scaled(raw, scale)
            if want is None:
                assert field not in got.get(index, {}), (measurement, index, field)
            else:
                assert got[index][field] == want, (measurement, index, field)
    # Rows the recording has are the rows decoded; a table the device lacks yields no points.
    assert set(got) <= rows
    return got


@pytest.mark.parametrize("community", ["UPS/apc-8641", "UPS/apc-8932"])
def test_apc_rpdu2_metered_recordings(snmpsim_agent, community):
    rec = snmpsim_agent.records(community)
    dev, points = poll(snmpsim_agent, community, "pdu")
    assert dev.plan.profile.name == "apc_rpdu2"  # detected from sysObjectID .318.1.3.4.x
    pdu = one(points, "pdu")
    raw_power = int(rec[f"{RPDU2}.4.3.1.5.1"][1])
    assert pdu["power_w"] == pytest.approx(raw_power * 10)            # hundredths of kW
    assert pdu["energy_kwh"] == pytest.approx(int(rec[f"{RPDU2}.4.3.1.9.1"][1]) * 0.1)
    assert pdu["apparent_power_va"] == pytest.approx(int(rec[f"{RPDU2}.4.3.1.16.1"][1]) * 10)
    assert pdu["power_factor"] == pytest.approx(int(rec[f"{RPDU2}.4.3.1.17.1"][1]) * 0.01)
    phases = check_columns(points, rec, "pdu_phase", "phase", {
        "current_a": (f"{RPDU2}.6.3.1.5", 0.1), "voltage_v": (f"{RPDU2}.6.3.1.6", 1),
        "power_w": (f"{RPDU2}.6.3.1.7", 10)})
    assert phases
    outlets = check_columns(points, rec, "pdu_outlet", "outlet", {
        "current_a": (f"{RPDU2}.9.4.3.1.6", 0.1), "power_w": (f"{RPDU2}.9.4.3.1.7", 1),
        "energy_kwh": (f"{RPDU2}.9.4.3.1.11", 0.1)})
    assert len(outlets) == len(column(rec, f"{RPDU2}.9.4.3.1.7"))  # 24 on the AP8641, 0 on the switched AP8932
    check_columns(points, rec, "pdu_breaker", "breaker", {"current_a": (f"{RPDU2}.8.3.1.5", 0.1)})
    if community == "UPS/apc-8641":  # the reference's worked example
        assert pdu["power_w"] == 1210 and pdu["energy_kwh"] == pytest.approx(1951.6)
        assert phases["1"]["voltage_v"] == 201 and phases["1"]["current_a"] == pytest.approx(6.5)
        assert outlets["1"] == {"current_a": pytest.approx(0.9), "power_w": 163, "energy_kwh": pytest.approx(304.6)}
        assert len(outlets) == 24
    for p in points:  # every point carries the device's tags and nothing beyond the contract
        assert p.tags["site"] == "s"


def test_apc_current_only_pdu_reports_absent_not_minus_one(snmpsim_agent):
    """AP7902B: device power/energy and phase voltage/power are -1 in the recording."""
    rec = snmpsim_agent.records("UPS/apc-7902b")
    assert rec[f"{RPDU2}.4.3.1.5.1"][1] == "-1" and rec[f"{RPDU2}.6.3.1.6.1"][1] == "-1"
    dev, points = poll(snmpsim_agent, "UPS/apc-7902b", "pdu")
    pdu = one(points, "pdu")
    assert "power_w" not in pdu and "energy_kwh" not in pdu
    phase = by_tag(points, "pdu_phase", "phase")["1"]
    assert "voltage_v" not in phase and "power_w" not in phase
    assert phase["current_a"] == pytest.approx(int(rec[f"{RPDU2}.6.3.1.5.1"][1]) * 0.1)
    assert dev.stats.sentinel >= 4
    for p in points:
        for value in p.fields.values():
            assert value != -1 and not (isinstance(value, (int, float)) and value < 0)


def test_liebert_pex_recording(snmpsim_agent):
    rec = snmpsim_agent.records("UPS/vertiv-power")
    temp = "1.3.6.1.4.1.476.1.42.3.4.1.3.3.1"
    descr = {oid.rsplit(".", 1)[1]: v for oid, (t, v) in rec.items() if oid.startswith(temp + ".2.")}
    ret_row = next(i for i, d in descr.items() if d == "1.3.6.1.4.1.476.1.42.3.4.1.1.2")  # return air
    dev, points = poll(snmpsim_agent, "UPS/vertiv-power", "cooling",
                       tags={"site": "s", "room": "r", "unit": "crah-1", "kind": "crah"})
    assert dev.plan.profile.name == "liebert_env"
    cooling = one(points, "cooling")
    assert cooling["return_temp_c"] == pytest.approx(int(rec[f"{temp}.3.{ret_row}"][1]))   # 23 °C
    assert cooling["setpoint_c"] == pytest.approx(int(rec[f"{temp}.6.{ret_row}"][1]))
    assert cooling["humidity_pct"] == pytest.approx(int(rec["1.3.6.1.4.1.476.1.42.3.4.2.2.3.1.3.1"][1]))
    assert cooling["fan_pct"] == pytest.approx(int(rec["1.3.6.1.4.1.476.1.42.3.4.3.16.0"][1]))
    assert (cooling["return_temp_c"], cooling["humidity_pct"]) == (23, 42)
    # The supply-air row has no measurement in this recording: absent, not made up.
    assert "supply_temp_c" not in cooling
    assert [p.tags for p in points] == [{"site": "s", "room": "r", "unit": "crah-1", "kind": "crah"}]


def test_eaton_93e_ups_recording_input_power_zero_is_not_reported(snmpsim_agent):
    rec = snmpsim_agent.records("UPS/eaton-93e-80")
    out = column(rec, "1.3.6.1.2.1.33.1.4.4.1.4")
    dev, points = poll(snmpsim_agent, "UPS/eaton-93e-80", "ups")
    ups = one(points, "ups")
    assert ups["output_power_w"] == pytest.approx(sum(out.values())) == 11400
    assert ups["load_pct"] == max(column(rec, "1.3.6.1.2.1.33.1.4.4.1.5").values())
    assert ups["on_battery"] is False  # upsOutputSource 3 = normal
    assert ups["runtime_s"] == pytest.approx(int(rec["1.3.6.1.2.1.33.1.2.3.0"][1]) * 60)
    # upsInputTruePower and xupsInputWatts are 0 on all lines while the UPS delivers 11.4 kW:
    assert set(column(rec, "1.3.6.1.2.1.33.1.3.3.1.5").values()) == {0}
    assert "input_power_w" not in ups and dev.stats.implausible == 1


def test_v3_authpriv_sha_aes_reads_the_same_values(snmpsim_agent):
    auth = V3(SNMPSIM_V3_USER, SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, "SHA", "AES", context="UPS/apc-8641")
    _, v3_points = poll(snmpsim_agent, "", "pdu", auth=auth)
    _, v2_points = poll(snmpsim_agent, "UPS/apc-8641", "pdu")
    strip = lambda pts: sorted((p.measurement, sorted(p.tags.items()), sorted(p.fields.items())) for p in pts)  # noqa: E731
    assert strip(v3_points) == strip(v2_points)
    assert one(v3_points, "pdu")["power_w"] == 1210
