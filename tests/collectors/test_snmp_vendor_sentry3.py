"""ServerTech Sentry3 on a real walk: a Sentry Switched CDU CW-24V2C458C1 (firmware 7.1a), master
tower A + link tower B (LibreNMS tests/snmpsim/sentry3.snmprec), served by snmpsim.

Expected values worked by hand from the walk with Sentry3-MIB's UNITS: infeedLoadValue 1/100 A,
infeedVoltage 1/10 V, infeedCapacity A, tempHumidSensorHumidValue %RH, -1 = not measured."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/sentry3/cw-24v2c458c1"


def test_sentry3_towers_feeds_and_probes(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "sentry3"
    # Tower A feed A: 362 -> 3.62 A, 2093 -> 209.3 V, capacity 30 A. Tower B feed A is the link
    # tower's own cord, tagged by the whole index so it does not overwrite tower A's.
    assert points[("pdu_phase", "1")] == {"current_a": pytest.approx(3.62), "voltage_v": pytest.approx(209.3),
                                          "breaker_a": 30.0}
    assert points[("pdu_phase", "2.1")] == {"current_a": pytest.approx(5.02), "voltage_v": pytest.approx(205.9),
                                            "breaker_a": 30.0}
    # Both cords' current: 3.62 + 5.02 A. This CDU meters no power or energy: those are absent.
    assert points[("pdu", None)] == {"current_a": pytest.approx(8.64)}
    # Probes A1/A2 on tower A read 52 / 43 %RH; B1/B2 are not fitted (-1): absent, no point.
    # Temperatures are in tenths of the unit's scale, here Fahrenheit (tempHumidSensorTempScale
    # = 1): A1 680 -> 68.0 °F = (68.0 - 32) x 5/9 = 20.0 °C; A2 745 -> 74.5 °F = 42.5 x 5/9 =
    # 23.611 °C. B1/B2 read -1 (not measured): absent.
    assert points[("env", "dev-1")] == {"humidity_pct": 52.0, "temp_c": pytest.approx(20.0)}
    assert points[("env", "dev-2")] == {"humidity_pct": 43.0, "temp_c": pytest.approx(23.6111, abs=1e-4)}
    assert set(points) == {("pdu_phase", "1"), ("pdu_phase", "2.1"), ("pdu", None), ("env", "dev-1"),
                           ("env", "dev-2")}
    assert count_fields(points) == 11
