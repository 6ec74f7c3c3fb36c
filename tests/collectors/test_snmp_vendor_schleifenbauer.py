"""Schleifenbauer hybrid PDU on a real walk (LibreNMS tests/snmpsim/schleifenbauer.snmprec),
served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with SCHLEIFENBAUER-DATABUS-MIB's textual
conventions: sdbDevInActualCurrent / ActualVoltage / MaxAmps DISPLAY-HINT d-2 (hundredths),
sdbDevInPowerFactor d-2 % (4594 = 45.94 % = 0.4594), sdbDevInKWhTotal kWh, VoltAmpere VA."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/schleifenbauer/hybrid-3ph"


def test_schleifenbauer_inputs_tagged_by_unit_and_input(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "schleifenbauer"
    # Unit 210, input 1: 32 -> 0.32 A, 22900 -> 229.00 V (x 0.32 A = 73 VA, reported 70 VA).
    assert points[("pdu_phase", "210.1")] == {
        "current_a": pytest.approx(0.32), "voltage_v": pytest.approx(229.0), "apparent_power_va": 70.0,
        "power_factor": pytest.approx(0.4594), "energy_kwh": 66.0, "breaker_a": pytest.approx(28.0)}
    # Input 2 carries no load: 0 A, 0 VA, 0 kWh; its power factor reads 100.00 %.
    assert points[("pdu_phase", "210.2")] == {
        "current_a": 0.0, "voltage_v": pytest.approx(228.6), "apparent_power_va": 0.0,
        "power_factor": pytest.approx(1.0), "energy_kwh": 0.0, "breaker_a": pytest.approx(28.0)}
    assert points[("pdu_phase", "210.3")] == {
        "current_a": pytest.approx(0.32), "voltage_v": pytest.approx(228.78), "apparent_power_va": 70.0,
        "power_factor": pytest.approx(0.4706), "energy_kwh": 66.0, "breaker_a": pytest.approx(28.0)}
    # Whole PDU: 70 + 0 + 70 VA, 0.32 + 0 + 0.32 A, 66 + 0 + 66 kWh. sdbDevInPowerWatt is not
    # in the walk: no power, per input or in total.
    assert points[("pdu", None)] == {"apparent_power_va": 140.0, "current_a": pytest.approx(0.64),
                                     "energy_kwh": 132.0}
    assert set(points) == {("pdu_phase", "210.1"), ("pdu_phase", "210.2"), ("pdu_phase", "210.3"), ("pdu", None)}
    assert count_fields(points) == 21
