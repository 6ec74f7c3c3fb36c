"""Stulz WIB8000 board serving nine units, on a real walk (LibreNMS
tests/snmpsim/stulz_wib8000.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with Stulz-WIB8000-MIB: air temperatures and the
air set point in 1/10 degC, unitHumidity in 1/10 %RH, fan1Speed in %. Rows are indexed
<bus>.<unit>.<module>: bus 1 units keep their address as tag, the bus-2 unit is "2.1"."""

from __future__ import annotations

import json

import pytest

from dcim.cli.main import main

WALK = "walks/stulz/wib8000"


def _units(agent, capsys) -> tuple[str, dict[str, dict]]:
    """(profile picked, {unit tag: fields}) from `dcim probe` over UDP (the shared probe helper
    keys rows by phase/outlet/sensor; cooling rows of one board are keyed by unit)."""
    target = f"{agent.host}:{agent.port}"
    capsys.readouterr()
    assert main(["probe", target, "--community", WALK]) == 0
    header = capsys.readouterr().out
    assert main(["probe", target, "--community", WALK, "--format", "json"]) == 0
    units: dict[str, dict] = {}
    for line in capsys.readouterr().out.splitlines():
        p = json.loads(line)
        assert p["measurement"] == "cooling", p
        unit = p["tags"]["unit"]
        assert unit not in units, f"two points for unit {unit}"
        units[unit] = p["fields"]
    profile = header.split("profile ", 1)[1].split(":", 1)[0]
    return profile, units


def test_stulz_wib8000_units(snmpsim_agent, capsys):
    profile, units = _units(snmpsim_agent, capsys)
    assert profile == "stulz_wib8000"
    t = pytest.approx
    assert units == {
        # unit: supply 1193, return 1192, set point 1175 (x 0.1 degC), humidity 1171 (x 0.1 %), fan 6932 %
        "1": {"supply_temp_c": t(20.0), "return_temp_c": t(26.5), "setpoint_c": t(22.0), "humidity_pct": t(42.4), "fan_pct": 85.0},
        "2": {"supply_temp_c": t(20.7), "return_temp_c": t(25.3), "setpoint_c": t(22.0), "humidity_pct": t(42.4), "fan_pct": 85.0},
        "3": {"supply_temp_c": t(21.5), "return_temp_c": t(21.9), "setpoint_c": t(22.0), "humidity_pct": t(42.4), "fan_pct": 0.0},
        "4": {"supply_temp_c": t(24.4), "return_temp_c": t(26.9), "setpoint_c": t(22.0), "humidity_pct": t(49.9), "fan_pct": 45.0},
        "5": {"supply_temp_c": t(16.7), "return_temp_c": t(21.0), "setpoint_c": t(18.0), "humidity_pct": t(52.8), "fan_pct": 55.0},
        "6": {"supply_temp_c": t(22.7), "return_temp_c": t(25.0), "setpoint_c": t(22.0), "humidity_pct": t(52.8), "fan_pct": 55.0},
        "7": {"supply_temp_c": t(24.1), "return_temp_c": t(28.2), "setpoint_c": t(22.0), "humidity_pct": t(52.8), "fan_pct": 55.0},
        "8": {"supply_temp_c": t(23.5), "return_temp_c": t(22.9), "setpoint_c": t(22.0), "humidity_pct": t(52.8), "fan_pct": 55.0},
        # bus 2, unit 1: no supply air temperature published -> absent, not 0
        "2.1": {"return_temp_c": t(23.1), "setpoint_c": t(23.0), "humidity_pct": t(37.0), "fan_pct": 50.0},
    }
    assert sum(len(f) for f in units.values()) == 44
