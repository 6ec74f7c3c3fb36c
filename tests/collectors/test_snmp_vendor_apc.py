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


def test_first_generation_rpdu_tables(snmpsim_agent, capsys):
    # snmpsim-data UPS/apc-8641.snmprec (an AP8641, AOS 6.7.2) with only its rPDU branch, as a
    # first-generation unit answers: picked by rPDULoadStatusTable answering, not rPDU2's.
    profile, points = probe(snmpsim_agent, "walks/apc/ap8641-rpdu-legacy", capsys)
    assert profile == "apc_rpdu"
    assert points[("pdu", None)] == {
        "power_w": 1230.0,                       # rPDUIdentDevicePowerWatts 1230 W
        "apparent_power_va": 1310.0,             # rPDUIdentDevicePowerVA 1310 VA
        "power_factor": pytest.approx(0.94),     # rPDUIdentDevicePowerFactor 940 thousandths
        "current_a": pytest.approx(6.6),         # the one phase row (bank 0): 66 tenths of A
    }                                            # rPDUIdentDeviceLinetoLineVoltage -1: absent
    # rPDULoadStatus row 1 is phase 1 (bank 0); rows 2/3 are banks 1/2, tagged by their bank number.
    assert points[("pdu_phase", "1")] == {"current_a": pytest.approx(6.6), "breaker_a": 24.0}
    assert points[("pdu_breaker", "1")] == {"current_a": pytest.approx(4.0), "breaker_a": 20.0}
    assert points[("pdu_breaker", "2")] == {"current_a": pytest.approx(2.5), "breaker_a": 20.0}
    # rPDUOutletStatusLoad, tenths of A, outlets 1..24.
    tenths = [8, 7, 4, 7, 4, 6, 4, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 5, 6, 0, 4, 5, 0]
    for outlet, load in enumerate(tenths, start=1):
        assert points[("pdu_outlet", str(outlet))] == {"current_a": pytest.approx(load / 10)}
    assert len(points) == 4 + 24
    assert count_fields(points) == 4 + 2 + 4 + 24


def test_galaxy_vs_three_phase_ups_over_powernet(snmpsim_agent, capsys):
    # centreon-plugins ups-apc-galaxy.snmpwalk: a Galaxy VS 40 kW (sysObjectID .318.1.3.28.75).
    profile, points = probe(snmpsim_agent, "walks/apc/galaxy-vs-40kw", capsys)
    assert profile == "apc_ups"
    assert points[("ups", None)] == {
        # upsPhaseInputPower of input 1 (mains), W: 2318 + 2383 + 2341; the bypass input's 23 W
        # (input 2) is not the UPS's draw.
        "input_power_w": 7042.0,
        "output_power_w": 6632.0,           # upsAdvOutputActivePower, W
        "load_pct": 21.0,                   # upsAdvOutputLoad, %
        "battery_charge_pct": 100.0,        # upsAdvBatteryCapacity, %
        "runtime_s": pytest.approx(6108.0),  # upsAdvBatteryRunTimeRemaining 610800 ticks of 10 ms
        "on_battery": False,                # upsBasicOutputStatus 2 = onLine
    }
    # No upsAdv/upsHighPrec line voltage and no UPS-MIB: voltages stay absent (the phase table's
    # 389-399 V are line-to-line on a 230/400 V system; the contract's voltage is not read from it).
    assert set(points) == {("ups", None)}
    assert count_fields(points) == 6
