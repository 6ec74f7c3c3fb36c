"""EAST EA9080 UPS on its iStars card, on a real recording (snmpsim-data
UPS/eastpower-istars-swv053.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with UPS-MIB (RFC 1628): whole volts, % load,
upsOutputSource 3 = normal (not on battery), charge %. The card answers 0 W on every line while
they carry 20/26/30 % load, and 0 minutes remaining at 100 % on mains: not measured, absent."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/east/ea9080-istars"


def test_east_istars_ups(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "east_ups"
    assert points == {("ups", None): {
        "load_pct": 30.0,                                  # lines 20, 26, 30 %: the most loaded
        "input_voltage_v": pytest.approx(706 / 3),         # (236 + 236 + 234) V / 3 = 235.33 V
        "output_voltage_v": 219.0,                         # 219 V on each line
        "on_battery": False,                               # upsOutputSource 3: normal
        "battery_charge_pct": 100.0,
    }}  # output and input watts 0 on loaded lines, runtime 0 min at full charge: absent, not 0
    assert count_fields(points) == 5
