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
