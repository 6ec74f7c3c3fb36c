"""Vertiv (Geist) MN03EDR1 three-phase delta rack PDU on a real walk (LibreNMS
tests/snmpsim/vertiv-pdu_mn03edr1.snmprec), served by snmpsim and read with `dcim probe`.

It reports one of the newer Vertiv sysObjectIDs (.21239.42.1.53) and publishes the V5 tables.
Expected values worked by hand from the walk with VERTIV-V5-MIB's UNITS: pduPhaseVoltage
decivolts, pduPhaseCurrent centiamps, RealPower watts, ApparentPower volt-amps, PowerFactor %,
Energy watt-hours; pduBreakerCurrent centiamps. The PDU has no total row (pduMainTable) and no
outlet table: no pdu point, no outlet points. Each phase pair: V x A is its VA
(206.8 V x 7.12 A = 1472 VA)."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/geist/mn03edr1-delta"
t = pytest.approx


def test_vertiv_mn03edr1_phases_and_breakers(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "geist"
    assert points == {
        # phase pairs AB, BC, CA: 0.1 V, 0.01 A, W, VA, % PF, Wh (/1000 -> kWh)
        ("pdu_phase", "1"): {"voltage_v": t(206.8), "current_a": t(7.12), "power_w": 1434.0,
                             "apparent_power_va": 1472.0, "power_factor": t(0.97), "energy_kwh": t(5047.296)},
        ("pdu_phase", "2"): {"voltage_v": t(207.9), "current_a": t(7.11), "power_w": 1440.0,
                             "apparent_power_va": 1478.0, "power_factor": t(0.97), "energy_kwh": t(5123.811)},
        ("pdu_phase", "3"): {"voltage_v": t(206.2), "current_a": t(7.08), "power_w": 1425.0,
                             "apparent_power_va": 1461.0, "power_factor": t(0.97), "energy_kwh": t(5031.780)},
        # circuits 1..6, 0.01 A
        ("pdu_breaker", "1"): {"current_a": t(4.55)},
        ("pdu_breaker", "2"): {"current_a": t(4.58)},
        ("pdu_breaker", "3"): {"current_a": t(4.54)},
        ("pdu_breaker", "4"): {"current_a": t(2.56)},
        ("pdu_breaker", "5"): {"current_a": t(2.52)},
        ("pdu_breaker", "6"): {"current_a": t(2.52)},
    }
    assert count_fields(points) == 3 * 6 + 6
