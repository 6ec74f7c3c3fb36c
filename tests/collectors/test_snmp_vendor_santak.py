"""Santak ARRAY 3A3 90 kVA UPS on its WebPower Pro II card, on a real recording (snmpsim-data
UPS/ingrasys-power-switch.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with UPS-MIB (RFC 1628): upsOutputPower in W per
line, whole volts, % load, upsOutputSource 3 = normal, charge %. upsEstimatedMinutesRemaining
answers TimeTicks 0 at 100 % charge on mains and upsInputTruePower 0 on every line: absent."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/santak/array-3a3-90k"


def test_santak_webpower_ups(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "santak_ups"
    assert points == {("ups", None): {
        "output_power_w": 21100.0,                         # 7900 + 5500 + 7700 W
        "load_pct": 33.0,                                  # 33 % on each line
        "input_voltage_v": pytest.approx(228.0),           # (228 + 229 + 227) V / 3
        "output_voltage_v": 220.0,                         # 220 V on each line
        "on_battery": False,                               # upsOutputSource 3: normal
        "battery_charge_pct": 100.0,
    }}  # runtime (TimeTicks 0 at full charge) and input watts (0 on each line): absent, not 0
    assert count_fields(points) == 6
