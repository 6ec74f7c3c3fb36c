"""Gude Expert Power Control 8031 on a real walk (LibreNMS tests/snmpsim/gude-epc.snmprec),
served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with the GUDEADS MIBs' UNITS: Voltage V, Current
mA, PowerActive W, PowerApparent VA, PowerFactor 0.001, AbsEnergyActive Wh. The PDU has one
power channel (ChanStatus 1, valid); its totals are that channel. Cross-check: 228 V x 0.185 A =
42.2 VA (PowerApparent 42), 18 W / 42 VA = 0.43 (PowerFactor 427). No external sensor answers:
no env point."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/gude/epc-8031"
t = pytest.approx


def test_gude_epc8031_channel_and_totals(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "gude_8031"
    assert points == {
        # channel 1: 228 V, 185 mA, 18 W, 42 VA, PF 427/1000, 1109209 Wh
        ("pdu_phase", "1"): {"voltage_v": 228.0, "current_a": t(0.185), "power_w": 18.0,
                             "apparent_power_va": 42.0, "power_factor": t(0.427), "energy_kwh": t(1109.209)},
        ("pdu", None): {"power_w": 18.0, "apparent_power_va": 42.0, "energy_kwh": t(1109.209)},
    }
    assert count_fields(points) == 9
