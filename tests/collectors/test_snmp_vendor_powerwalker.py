"""PowerWalker UPS on its EPPC network card, on a real walk (LibreNMS
tests/snmpsim/powerwalker.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with EPPC-MIB: voltages in 0.1 V, output load %,
upsESystemStatus 4 = line (normal), charge remaining %; -1 = not measured."""

from __future__ import annotations

from tests.collectors.vendor_probe import probe

WALK = "walks/powerwalker/nmc-eppc"


def test_powerwalker_eppc_card(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    # .935.10 is longer than the older Phoenixtec cards' .935 prefix: the EPPC profile wins.
    assert profile == "powerwalker_ups"
    assert points == {("ups", None): {
        "load_pct": 27.0,
        "input_voltage_v": 238.2,        # 2382 x 0.1 V
        "output_voltage_v": 230.0,       # 2300 x 0.1 V
        "on_battery": False,             # status 4: line
        "battery_charge_pct": 100.0,
    }}  # output watts answer -1: absent
