"""Vendor profiles against walks of real devices (tests/collectors/snmp_walks/), served by snmpsim
over real UDP. Every expected value is a literal worked out by hand from the walk's raw value and
the MIB's documented unit (the working is in the comment beside it), never from the profile."""

from __future__ import annotations

import asyncio

import pytest

from collectors.snmp.device import SnmpDevice
from collectors.snmp.engine import Endpoint, SnmpPoller, V2c
from tests.collectors.snmp_walks import serve


def poll(agent, community: str, kind: str, name: str = "dev"):
    async def go():
        poller = SnmpPoller()
        try:
            dev = SnmpDevice(name, kind, Endpoint(agent.host, agent.port, V2c(community), timeout_s=2),
                             {"site": "s"})
            return dev, await dev.poll(poller)
        finally:
            poller.close()
    return asyncio.run(go())


def by(points, measurement: str, tag: str | None = None):
    found = {(p.tags.get(tag) if tag else None): p.fields for p in points if p.measurement == measurement}
    return found if tag else found.get(None)


def test_servertech_sentry4_smart_pdu(snmpsim_agent):
    dev, points = poll(snmpsim_agent, serve(snmpsim_agent, "servertech/sentry4-smart-pdu-3ph.snmprec"), "pdu")
    assert dev.plan.profile.name == "sentry4"
    assert by(points, "pdu") == {
        "power_w": 1701,                         # st4InputCordActivePower 1701 W
        "apparent_power_va": 1790,               # st4InputCordApparentPower 1790 VA
        "power_factor": pytest.approx(0.95),     # st4InputCordPowerFactor 95 hundredths
        "energy_kwh": pytest.approx(893.7),      # st4InputCordEnergy 8937 tenths of kWh
    }
    assert by(points, "pdu_phase", "phase") == {  # st4PhaseVoltage tenths V, Current hundredths A, ActivePower W
        "1": {"voltage_v": pytest.approx(207.9), "current_a": pytest.approx(2.09), "power_w": 415},
        "2": {"voltage_v": pytest.approx(208.9), "current_a": pytest.approx(2.22), "power_w": 444},
        "3": {"voltage_v": pytest.approx(209.4), "current_a": pytest.approx(4.29), "power_w": 848},
    }
    # Both probe ports are empty: temperature -410 and humidity -1 are the MIB's "not present".
    assert by(points, "env", "sensor") == {}
    assert dev.stats.sentinel == 4


def test_raritan_px2_inlet_and_outlets(snmpsim_agent):
    dev, points = poll(snmpsim_agent, serve(snmpsim_agent, "raritan/px2-12-outlet.snmprec"), "pdu")
    assert dev.plan.profile.name == "raritan_pdu2"
    # Inlet 1: value x 10^-decimalDigits (inletSensorDecimalDigits: current 3, pf 2, others 0).
    assert by(points, "pdu") == {
        "current_a": pytest.approx(1.626),       # 1626, 3 digits
        "voltage_v": 233,                        # 233 V
        "power_w": 242, "apparent_power_va": 379,
        "power_factor": pytest.approx(0.64),     # 64, 2 digits
        "energy_kwh": pytest.approx(1444.088),   # activeEnergy 1444088 Wh
    }
    outlets = by(points, "pdu_outlet", "outlet")
    assert outlets["1"] == {"current_a": pytest.approx(0.074), "voltage_v": 233, "power_w": 7,
                            "apparent_power_va": 17, "power_factor": pytest.approx(0.41),
                            "energy_kwh": pytest.approx(107.881)}
    assert outlets["2"] == {"current_a": pytest.approx(0.303), "voltage_v": 233, "power_w": 56,
                            "apparent_power_va": 71, "power_factor": pytest.approx(0.79),
                            "energy_kwh": pytest.approx(330.830)}
    assert outlets["3"]["current_a"] == pytest.approx(0.091) and outlets["3"]["energy_kwh"] == pytest.approx(46.648)
    # Outlet 4 is idle: its power-factor sensor's state is unavailable (-1), so the field is absent.
    assert outlets["4"] == {"current_a": 0, "voltage_v": 233, "power_w": 0, "apparent_power_va": 0,
                            "energy_kwh": pytest.approx(0.004)}
    assert set(outlets) == {"1", "2", "3", "4"}


def test_apc_smart_ups_powernet_only(snmpsim_agent):
    dev, points = poll(snmpsim_agent, serve(snmpsim_agent, "apc/smart-ups-powernet.snmprec"), "ups")
    assert dev.plan.profile.name == "apc_ups"
    assert by(points, "ups") == {
        "battery_charge_pct": 100,                   # upsAdvBatteryCapacity 100 %
        "runtime_s": pytest.approx(39925),           # upsAdvBatteryRunTimeRemaining 3992500 ticks of 10 ms
        "input_voltage_v": pytest.approx(234.1),     # upsHighPrecInputLineVoltage 2341 tenths V
        "output_voltage_v": pytest.approx(220.0),    # upsHighPrecOutputVoltage 2200 tenths V
        "load_pct": pytest.approx(9.7),              # upsHighPrecOutputLoad 97 tenths %
        "on_battery": False,                         # upsBasicOutputStatus 2 = onLine
    }
    # The card's probe (iemStatusProbe 1, units 1 = Celsius): 18 °C, 37 %RH.
    assert by(points, "env", "sensor") == {"dev-1": {"temp_c": 18, "humidity_pct": 37}}


def test_eaton_xups_input_watts_per_phase(snmpsim_agent):
    dev, points = poll(snmpsim_agent, serve(snmpsim_agent, "eaton/powerware-xups-3ph-input.snmprec"), "ups")
    assert dev.plan.profile.name == "eaton_xups"
    # xupsInputWatts per phase 1 + 1155 + 912 W (no xupsInputTotalWatts, no UPS-MIB tables);
    # xupsInputVoltage 231 and 228 V averaged, phase 1's 0 V is not a measurement.
    assert by(points, "ups") == {"input_power_w": 2068, "input_voltage_v": pytest.approx(229.5)}
