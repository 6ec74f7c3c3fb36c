"""Raritan PDU2-MIB external (rack) sensors, read with `dcim probe` over snmpsim.

The fixture is SYNTHETIC (see its header): no public walk of a PX2/PX3 with external sensors was
found. The PX2's inlet/outlet decoding is proven on a real walk in test_snmp_vendor_walks.py."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe


def test_external_sensors_by_type_units_state_and_digits(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, "walks/raritan/synthetic-px-external-sensors", capsys)
    assert profile == "raritan_pdu2"
    # Sensor 1: temperature(10), degreeC(7), 1 decimal digit: 235 -> 23.5 °C.
    assert points[("env", "dev-1")] == {"temp_c": pytest.approx(23.5)}
    # Sensor 2: humidity(11), percent(9), 0 digits: 41 %RH.
    assert points[("env", "dev-2")] == {"humidity_pct": 41.0}
    # Sensor 4: temperature in degreeF(14), 1 digit: 752 -> 75.2 °F = (75.2 - 32) x 5/9 = 24.0 °C.
    assert points[("env", "dev-4")] == {"temp_c": pytest.approx(24.0)}
    # Sensor 3 is unavailable (state -1) and sensor 5 an on/off contact: neither is read.
    assert set(points) == {("env", "dev-1"), ("env", "dev-2"), ("env", "dev-4")}
    assert count_fields(points) == 3
