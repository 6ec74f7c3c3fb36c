"""Eaton families on real walks, read with `dcim probe` over snmpsim (real UDP).

Expected values are literals worked by hand from each walk and XUPS-MIB's units (xupsBatCapacity
%, xupsBatTimeRemaining s, xupsInputVoltage/xupsOutputVoltage V, xupsOutputWatts W,
xupsOutputLoad %, xupsOutputSource normal(3)/battery(5))."""

from __future__ import annotations

from tests.collectors.vendor_probe import count_fields, probe


def test_9px_on_a_card_answering_xups_only(snmpsim_agent, capsys):
    # snmpsim-data UPS/eaton-9px-partial: sysObjectID .705.1, XUPS-MIB only.
    profile, points = probe(snmpsim_agent, "walks/eaton/9px-2200-xups-only", capsys)
    assert profile == "eaton_xups"
    assert points[("ups", None)] == {
        "output_power_w": 50.0,        # xupsOutputWatts.1 = 50 W (one output phase)
        "load_pct": 9.0,               # xupsOutputLoad = 9 %
        "battery_charge_pct": 100.0,   # xupsBatCapacity = 100 %
        "runtime_s": 17218.0,          # xupsBatTimeRemaining = 17218 s
        "input_voltage_v": 243.0,      # xupsInputVoltage.1 = 243 V
        "output_voltage_v": 231.0,     # xupsOutputVoltage.1 = 231 V
        "on_battery": False,           # xupsOutputSource = normal(3)
    }
    # xupsInputWatts.1 reads 0 W while the output delivers 50 W on mains: not a measurement, so
    # input power is absent (the ups_input_below_output rule), never 0.
    assert set(points) == {("ups", None)}
    assert count_fields(points) == 7
