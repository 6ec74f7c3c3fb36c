"""Stulz WIB8000 board serving nine units, on a real walk (LibreNMS
tests/snmpsim/stulz_wib8000.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with Stulz-WIB8000-MIB: air temperatures and the
air set point in 1/10 degC, unitHumidity in 1/10 %RH, fan1Speed in %. Rows are indexed
<bus>.<unit>.<module>: bus 1 units are tagged <board>-<address>, the bus-2 unit <board>-2.1
(the board's name first, so two boards in one room never share a unit tag)."""

from __future__ import annotations

import asyncio

import pytest

from collectors.snmp.device import SnmpDevice
from collectors.snmp.engine import Endpoint, SnmpPoller, V2c
from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/stulz/wib8000"


def test_stulz_wib8000_units(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "stulz_wib8000"
    assert {m for m, _ in points} == {"cooling"}
    units = {row: f for (_, row), f in points.items()}
    t = pytest.approx

    def u(supply, ret, setpoint, rh, fan):
        return {"supply_temp_c": t(supply), "return_temp_c": t(ret), "setpoint_c": t(setpoint),
                "humidity_pct": t(rh), "fan_pct": fan}

    assert units == {
        # unit: supply 1193, return 1192, set point 1175 (x 0.1 degC), humidity 1171 (x 0.1 %), fan 6932 %
        "dev-1": u(20.0, 26.5, 22.0, 42.4, 85.0),
        "dev-2": u(20.7, 25.3, 22.0, 42.4, 85.0),
        "dev-3": u(21.5, 21.9, 22.0, 42.4, 0.0),
        "dev-4": u(24.4, 26.9, 22.0, 49.9, 45.0),
        "dev-5": u(16.7, 21.0, 18.0, 52.8, 55.0),
        "dev-6": u(22.7, 25.0, 22.0, 52.8, 55.0),
        "dev-7": u(24.1, 28.2, 22.0, 52.8, 55.0),
        "dev-8": u(23.5, 22.9, 22.0, 52.8, 55.0),
        # bus 2, unit 1: no supply air temperature published -> absent, not 0
        "dev-2.1": {"return_temp_c": t(23.1), "setpoint_c": t(23.0), "humidity_pct": t(37.0), "fan_pct": 50.0},
    }
    assert count_fields(points) == 44


def test_two_boards_in_one_room_keep_their_units_apart(snmpsim_agent):
    """Two WIB8000 boards with the same unit addresses, polled as configured devices of one room:
    every unit point is its own series (board name + address), none overwrites another."""
    async def poll_both():
        poller = SnmpPoller()
        try:
            out = []
            for name in ("stulz-a", "stulz-b"):
                dev = SnmpDevice(name, "cooling", Endpoint(snmpsim_agent.host, snmpsim_agent.port, V2c(WALK),
                                                          timeout_s=2), {"site": "s", "room": "r"})
                out += await dev.poll(poller)
            return out
        finally:
            poller.close()

    points = asyncio.run(poll_both())
    series = {(p.measurement, tuple(sorted(p.tags.items()))) for p in points}
    assert len(points) == len(series) == 18
    assert {p.tags["unit"] for p in points if p.tags["unit"].startswith("stulz-b-")} == {
        "stulz-b-1", "stulz-b-2", "stulz-b-3", "stulz-b-4", "stulz-b-5", "stulz-b-6", "stulz-b-7", "stulz-b-8",
        "stulz-b-2.1"}
