"""APC (PowerNet-MIB) families on real walks, read with `dcim probe` over snmpsim (real UDP).

Expected values are literals worked by hand from each walk and PowerNet-MIB's documented units
(the working is in the comment beside each); never computed by the profile under test."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe


def test_inrow_rc_on_the_generic_cooling_unit_tables(snmpsim_agent, capsys):
    # LibreNMS tests/snmpsim/apc_inrow-rc.snmprec: an InRow RC (sysObjectID .318.1.3.14.10) that
    # answers no airIRRC object, only coolingUnitStatusAnalogTable (value / coolingUnitStatusAnalogScale).
    profile, points = probe(snmpsim_agent, "walks/apc/inrow-rc-coolingunit", capsys)
    assert profile == "apc_cooling_unit"
    assert points[("cooling", None)] == {
        "supply_temp_c": pytest.approx(23.7),    # row 2 "Supply Air Temperature" C: 237 / 10
        "return_temp_c": pytest.approx(29.6),    # row 4 "Return Air Temperature" C: 296 / 10
        "cooling_kw": pytest.approx(10.3),       # row 10 "Cool Output" kW: 103 / 10 (not "Group Cool Output" 10 / 1)
        "airflow_m3s": pytest.approx(1.388),     # row 44 "Airflow" L/s: 1388 / 1 = 1388 L/s (row 11: 2941 CFM agrees)
        "fan_pct": pytest.approx(73.0),          # row 12 "Fan Speed" %: 73 / 1
        "power_w": pytest.approx(840.0),         # row 14 "Unit Power" W: 840 / 1
    }
    # "Unit Maximum Rack Inlet Temperature" has no value on this unit: absent, not 0.
    assert set(points) == {("cooling", None)}
    assert count_fields(points) == 6


def test_inrow_dx_on_the_generic_cooling_unit_tables(snmpsim_agent, capsys):
    # LibreNMS tests/snmpsim/apc_inrow-dx.snmprec: an InRow DX 300 mm (sysObjectID .318.1.3.14.23).
    profile, points = probe(snmpsim_agent, "walks/apc/inrow-dx-coolingunit", capsys)
    assert profile == "apc_cooling_unit"
    assert points[("cooling", None)] == {
        "supply_temp_c": pytest.approx(19.4),      # row 9 "Supply Temperature" C: 194 / 10 (row 10: 67.1 °F agrees)
        "return_temp_c": pytest.approx(28.0),      # row 13 "Return Temperature" C: 280 / 10
        "rack_inlet_temp_c": pytest.approx(20.9),  # row 11 "Maximum Rack Inlet Temperature" C: 209 / 10
        "humidity_pct": pytest.approx(30.6),       # row 15 "Humidity" %RH: 306 / 10
        "airflow_m3s": pytest.approx(1.083),       # row 20 "Airflow" L/s: 1083 / 1 (not "Total Airflow" 3238)
        "cooling_kw": pytest.approx(10.8),         # row 25 "Cool Output" kW: 108 / 10
    }
    # The DX unit reports compressor (1.44 kW) and condenser fan (24 W) power but not the whole
    # unit's input, and its evaporator fans in rpm: power_w and fan_pct stay absent.
    assert set(points) == {("cooling", None)}
    assert count_fields(points) == 6
