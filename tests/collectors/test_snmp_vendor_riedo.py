"""E3METER IPS 1290 three-phase power strip on a real walk (LibreNMS
tests/snmpsim/e3meter.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with NETTRACK-E3METER-SNMP-MIB's UNITS: Urms mV,
Irms mA, PowerP W, PowerS VA, EnergyP Wh; sensor temperature in 1/10 degC. The neutral channel
(type 1; only its current is meaningful) is not a phase; sensor ports 1 and 2 hold no sensor
(type 0): both absent. Each phase: V x A is close to its VA (229.876 V x 2.066 A = 475 VA vs 469)."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/riedo/ips-1290"
t = pytest.approx


def test_e3meter_ips_phases_totals_and_sensor(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "e3meter_ips"
    assert points == {
        ("pdu_phase", "L1"): {"voltage_v": t(229.876), "current_a": t(2.066), "power_w": 454.0,
                              "apparent_power_va": 469.0, "energy_kwh": t(336.317)},
        ("pdu_phase", "L2"): {"voltage_v": t(229.333), "current_a": t(0.675), "power_w": 154.0,
                              "apparent_power_va": 156.0, "energy_kwh": t(16.090)},
        ("pdu_phase", "L3"): {"voltage_v": t(229.507), "current_a": t(0.323), "power_w": 49.0,
                              "apparent_power_va": 74.0, "energy_kwh": t(89.074)},
        # the strip: 454 + 154 + 49 W, 469 + 156 + 74 VA, (336317 + 16090 + 89074) Wh
        ("pdu", None): {"power_w": 657.0, "apparent_power_va": 699.0, "energy_kwh": t(441.481)},
        ("env", "dev-0"): {"temp_c": t(20.9)},                       # raw 209, the "internal" sensor
    }
    assert count_fields(points) == 19
