"""Eaton families on real walks, read with `dcim probe` over snmpsim (real UDP).

Expected values are literals worked by hand from each walk and XUPS-MIB's units (xupsBatCapacity
%, xupsBatTimeRemaining s, xupsInputVoltage/xupsOutputVoltage V, xupsOutputWatts W,
xupsOutputLoad %, xupsOutputSource normal(3)/battery(5))."""

from __future__ import annotations

import pytest

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


def test_9390_behind_a_power_xpert_gateway(snmpsim_agent, capsys):
    # murrant/librenms-snmpsim captures/eaton-powerxpert: sysObjectID .534.2.12 (PXGX 2000).
    profile, points = probe(snmpsim_agent, "walks/eaton/9390-pxgx2000", capsys)
    assert profile == "eaton_xups"
    assert points[("ups", None)] == {
        "input_power_w": 111399.0,           # xupsInputWatts / upsInputTruePower: 37097 + 37151 + 37151 W
        "output_power_w": 100698.0,          # upsOutputPower: 34773 + 30323 + 35602 W
        "load_pct": 69.0,                    # upsOutputPercentLoad (line 1 only): 69 %
        "input_voltage_v": pytest.approx(270.6667, abs=1e-3),  # upsInputVoltage 269, 272, 271 V
        "output_voltage_v": 278.0,           # upsOutputVoltage 277, 278, 279 V
        "battery_charge_pct": 99.0,          # upsEstimatedChargeRemaining 99 %
        "runtime_s": 420.0,                  # upsEstimatedMinutesRemaining 7 min (xupsBatTimeRemaining 415 s)
        "on_battery": False,                 # upsOutputSource normal(3)
    }
    assert set(points) == {("ups", None)}
    assert count_fields(points) == 8
