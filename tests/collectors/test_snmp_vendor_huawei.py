"""Huawei UPS5000-E on a real recording (snmpsim-data UPS/huawei-gse200m.snmprec), served by
snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with HUAWEI-UPS-MIB's documented units (NetEco
"accurate to one decimal place"): hwUpsOutputActivePowerA/B/C 0.1 kW, hwUpsOutputLoadA/B/C 0.1 %,
voltages 0.1 V, hwUpsBatteryCapacityLeft %, hwUpsBatteryBackupTime s,
hwUpsDevicePowerSupplyMethod 3 = normal (mains) mode."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/huawei/ups5000-e"


def test_huawei_ups5000_found_by_probe_and_read_from_its_own_mib(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    # sysObjectID is Net-SNMP's generic Linux one: the vendor probe picks the profile, ahead of
    # the card's UPS-MIB (whose upsOutputPower reads 34 W).
    assert profile == "huawei_ups"
    assert points == {("ups", None): {
        "output_power_w": pytest.approx(10500.0),      # 21 + 24 + 60 = 105 x 0.1 kW
        "load_pct": pytest.approx(48.1),               # phase loads 200 / 219 / 481 x 0.1 %: the most loaded
        "output_voltage_v": pytest.approx(219.8667),   # (2213 + 2204 + 2179) / 3 x 0.1 V
        "input_voltage_v": pytest.approx(236.2667),    # (2347 + 2380 + 2361) / 3 x 0.1 V
        "on_battery": False,                           # supply method 3: normal mode
        "battery_charge_pct": 100.0,
        "runtime_s": 28080.0,
    }}
    assert count_fields(points) == 7
