"""Vertiv Liebert ITA2 UPS on a real walk (LibreNMS tests/snmpsim/vertiv-ups.snmprec), served by
snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with VERTIV-ITA2-MIB's DESCRIPTION units:
upsOutputSource 1 (on main); input and output voltage 0.1 V; output active power per phase in
0.01 kW (A 141, B 0, C 0: 1410 W); output load per phase in 0.1 % (A 292: 29.2 %, the most loaded
phase); batteryRemainsTime 347 x 0.1 min = 34.7 min = 2082 s; batteryCapacity 100 %.
batteryEnvironmentTemperature answers 65535 (no probe): no env point. Cross-check: 230.8 V x
7.6 A (outputCurrentA 76) = 1754 VA for 1410 W, a power factor of 0.80."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/vertiv_ups/ita2"
t = pytest.approx


def test_vertiv_ita2_ups(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "vertiv_ita2"
    assert points == {
        ("ups", None): {"on_battery": False, "input_voltage_v": t(236.7), "output_voltage_v": t(230.8),
                        "output_power_w": t(1410.0), "load_pct": t(29.2), "runtime_s": t(2082.0),
                        "battery_charge_pct": 100.0},
    }
    assert count_fields(points) == 7
