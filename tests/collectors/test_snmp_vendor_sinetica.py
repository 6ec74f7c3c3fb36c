"""Sinetica UPSController on a real walk (LibreNMS tests/snmpsim/sinetica.snmprec), served by
snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with NETCOM-UPS-MIB (RFC 1628's objects under
.13891.101): upsOutputPower W, upsOutputPercentLoad %, voltages V, upsOutputSource 3 = normal
(5 would be battery), upsEstimatedChargeRemaining %, upsEstimatedMinutesRemaining minutes."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/sinetica/upscontroller-3ph"


def test_sinetica_upscontroller_reads_its_enterprise_ups_branch(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "sinetica_ups"
    assert points == {("ups", None): {
        "output_power_w": 58500.0,                   # 58500 + 0 + 0 W (the card reports the total on line 1)
        "load_pct": 39.0,                            # 39 % of 150 kVA (upsConfigOutputVA 150000) = 58.5 kVA
        "input_voltage_v": 206.0,                    # 206 V on each line
        "output_voltage_v": pytest.approx(208.3333),  # (208 + 208 + 209) / 3 V
        "on_battery": False,
        "battery_charge_pct": 100.0,
        "runtime_s": 0.0,                            # the card reports 0 minutes on mains, as recorded
    }}
    # upsInputTruePower reads 0 W on every line while 17.7 A flow: dropped by the UPS rule,
    # not reported as an input power below the output.
    assert "input_power_w" not in points[("ups", None)]
    assert count_fields(points) == 7
