"""Riello UPS on a NetMan 204 card on a real walk (LibreNMS tests/snmpsim/riello.snmprec), served
by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with UPS-MIB (RFC 1628) units: line 1 only (lines 2
and 3 of this single-phase UPS answer 0 V / 0 Hz and are not lines): output 231 V, 184 W
(upsOutputPower), 8 % load; input 242 V at 50.1 Hz; upsInputTruePower 0 while delivering 184 W:
not measured, absent; upsOutputSource 3 (normal): not on battery; charge 100 %;
upsEstimatedMinutesRemaining 135 min = 8100 s. Cross-check: 231 V x 1.1 A = 254 VA for 184 W."""

from __future__ import annotations

import json

from dcim.cli.main import main
from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/riello/netman204"


def test_riello_netman204_single_phase(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "riello_netman"
    assert points == {
        ("ups", None): {"output_power_w": 184.0, "load_pct": 8.0, "input_voltage_v": 242.0,
                        "output_voltage_v": 231.0, "on_battery": False, "battery_charge_pct": 100.0,
                        "runtime_s": 8100.0},
    }
    assert count_fields(points) == 7


def test_generic_ups_mib_profile_would_average_the_phantom_lines(snmpsim_agent, capsys):
    """Why the family needs its own profile: forced to the generic UPS-MIB profile, the same
    walk averages line 1 with the two 0 V lines (231 / 3 = 77 V out, 242 / 3 = 80.7 V in)."""
    target = f"{snmpsim_agent.host}:{snmpsim_agent.port}"
    capsys.readouterr()
    assert main(["probe", target, "--community", WALK, "--profile", "ups_mib", "--format", "json"]) == 0
    fields = json.loads(capsys.readouterr().out.splitlines()[0])["fields"]
    assert fields["output_voltage_v"] == 77.0
    assert round(fields["input_voltage_v"], 1) == 80.7
