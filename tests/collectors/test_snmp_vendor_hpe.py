"""HPE pdu3-generation PDU (P9S18A, 24 outlets, single phase) on a real walk (LibreNMS
tests/snmpsim/hpe-mapdu_pdu3.snmprec), served by snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with CPQPOWER-MIB (pdu3 branch): input watts in W,
phase voltage 0.1 V, phase and outlet current 0.01 A, outlet watts in W. Phase rows 2 and 3
carry phase index 0 and outlet rows 25..48 control status 0 (no such phase / outlet): absent.
Idle outlets read 0.00 A and 0 W, which are readings, not gaps."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/hpe/pdu3-p9s18a"


def test_hpe_pdu3_phases_and_outlets(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "hpe_pdu3"
    expected = {
        ("pdu", None): {"power_w": 79.0},                                           # pdu3InputPowerWatts.1
        ("pdu_phase", "1"): {"voltage_v": pytest.approx(228.9), "current_a": pytest.approx(0.37)},  # 2289, 37
    }
    for outlet in range(1, 25):
        expected[("pdu_outlet", str(outlet))] = {"current_a": 0.0, "power_w": 0.0}
    expected[("pdu_outlet", "8")] = {"current_a": pytest.approx(0.05), "power_w": 0.0}      # raw 5, 0
    expected[("pdu_outlet", "23")] = {"current_a": pytest.approx(0.34), "power_w": 79.0}    # raw 34, 79
    assert points == expected
    assert count_fields(points) == 1 + 2 + 24 * 2   # outlet 23's 79 W is the whole input's 79 W
