"""Phoenixtec (PPC) UPS card on a real walk: a "Kert" UPS, card firmware 3.6.CY504.c
(snmpsim-data UPS/phoenixtec-power.snmprec).

Expected values worked by hand from the walk with PPC-MIB units (line voltages 1/10 VAC, battery
capacity and load %, upsBaseOutputStatus onLine(2)) and UPS-MIB (minutes remaining)."""

from __future__ import annotations

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/phoenixtec/kert-cy504"


def test_phoenixtec_ups(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "phoenixtec_ups"
    assert points == {("ups", None): {
        "on_battery": False, "battery_charge_pct": 100.0,
        "runtime_s": 0.0,                 # upsEstimatedMinutesRemaining = 0, as the card says
        "input_voltage_v": 239.0,         # 2390 (UPS-MIB's whole-volt row says 238)
        "output_voltage_v": 230.7,        # 2307
        "load_pct": 2.0}}                 # upsSmartOutputLoad (UPS-MIB's row says 0)
    assert count_fields(points) == 6
