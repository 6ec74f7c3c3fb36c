"""Enlogic EN1814 delta-wired rack PDU on a real walk (LibreNMS tests/snmpsim/enlogic-pdu2.snmprec),
served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with ENLOGIC-PDU-MIB's DESCRIPTION units: unit
ActivePower W, ApparentPower VA, Energy in tenths of kWh; input phase Current in hundredths of
A, Voltage V, ActivePower W, ApparentPower VA, PowerFactor (active / apparent) in hundredths;
breaker Current in hundredths of A. Cross-checks: the unit's 1120 W is line 1 + line 2
(521 + 599 W); line 1's 205 V x 2.77 A = 568 VA, its apparent power. Breaker rows 4..12 are
unused (count 0, label NA): absent, not 0 A."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/enlogic/en1814-delta"
t = pytest.approx


def test_enlogic_en1814_unit_lines_and_breakers(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "enlogic_pdu"
    assert points == {
        # unit 1: 1120 W, 1222 VA, 527776 x 0.1 kWh
        ("pdu", None): {"power_w": 1120.0, "apparent_power_va": 1222.0, "energy_kwh": t(52777.6)},
        # lines 1..3: V, 0.01 A, W, VA, PF / 100
        ("pdu_phase", "1"): {"voltage_v": 205.0, "current_a": t(2.77), "power_w": 521.0,
                             "apparent_power_va": 568.0, "power_factor": t(0.91)},
        ("pdu_phase", "2"): {"voltage_v": 205.0, "current_a": t(4.72), "power_w": 599.0,
                             "apparent_power_va": 652.0, "power_factor": t(0.91)},
        ("pdu_phase", "3"): {"voltage_v": 205.0, "current_a": t(3.18), "power_w": 0.0,
                             "apparent_power_va": 0.0, "power_factor": t(1.0)},
        # breakers B1..B3, 0.01 A
        ("pdu_breaker", "1"): {"current_a": t(2.77)},
        ("pdu_breaker", "2"): {"current_a": t(3.18)},
        ("pdu_breaker", "3"): {"current_a": 0.0},
    }
    assert count_fields(points) == 3 + 3 * 5 + 3
