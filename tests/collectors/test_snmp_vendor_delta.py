"""Delta UPS agent on a real walk: a Minuteman E1500RTXL2U on Delta's "UPS SNMP Agent"
(sysObjectID .2254.2.4; LibreNMS tests/snmpsim/deltaups.snmprec).

Expected values worked by hand from the walk with UPS-MIB (RFC 1628) units: upsOutputPower W,
upsOutputPercentLoad %, voltages V, upsEstimatedMinutesRemaining minutes, upsOutputSource normal(3)."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/delta/minuteman-e1500rtxl2u"


def test_delta_ups(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "delta_ups"
    assert points == {("ups", None): {
        "output_power_w": 951.0, "load_pct": 79.0, "input_voltage_v": 121.0, "output_voltage_v": 121.0,
        "on_battery": False, "battery_charge_pct": 100.0, "runtime_s": pytest.approx(1320.0)}}  # 22 min
    # upsInputTruePower is not published: input power absent.
    assert count_fields(points) == 7
