"""Panduit SmartZone G5 P42D04M on a real walk (LibreNMS tests/snmpsim/panduit.snmprec), served
by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with PANDUIT-MIB's DESCRIPTION units: input W, VA,
kWh, power factor in hundredths, total current 0.01 A; per breaker (group) 0.1 V, 0.01 A,
% load, VA, W, Wh, hundredths PF, rating 0.01 A. Group rows 7..12 (type 0: past the PDU's
group count) are not breakers: absent. Breaker 2 carries no load: 0 A, 0 W are readings."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/panduit/p42d04m"
t = pytest.approx


def _breaker(v, a, pct, va, w, wh, pf):
    return {"voltage_v": t(v), "current_a": t(a), "load_pct": pct, "apparent_power_va": va, "power_w": w,
            "energy_kwh": t(wh), "power_factor": t(pf), "breaker_a": t(16.0)}   # rating 1600 x 0.01 A


def test_panduit_g5_input_and_breakers(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "panduit_g5"
    assert points == {
        ("pdu", None): {"power_w": 956.0, "apparent_power_va": 1022.0, "energy_kwh": 7405.0,
                        "current_a": t(4.48), "power_factor": t(0.93)},       # raw 448 x 0.01 A, 93 / 100
        # group: raw 0.1 V, 0.01 A, %, VA, W, Wh (/1000 -> kWh), PF / 100
        ("pdu_breaker", "1"): _breaker(229.7, 1.93, 12.0, 454.0, 427.0, 77.384, 0.94),
        ("pdu_breaker", "2"): _breaker(230.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.00),
        ("pdu_breaker", "3"): _breaker(228.2, 2.00, 12.0, 457.0, 436.0, 24.548, 0.95),
        ("pdu_breaker", "4"): _breaker(228.5, 0.16, 1.0, 37.0, 29.0, 153.030, 0.81),
        ("pdu_breaker", "5"): _breaker(230.7, 0.13, 0.0, 30.0, 7.0, 24.900, 0.24),
        ("pdu_breaker", "6"): _breaker(228.6, 0.26, 1.0, 60.0, 56.0, 153.992, 0.93),
    }
    assert count_fields(points) == 5 + 6 * 8
