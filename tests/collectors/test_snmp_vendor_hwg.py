"""HW group Poseidon 4002 on a real walk (LibreNMS tests/snmpsim/hwg-poseidon.snmprec), served by
snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with POSEIDON-MIB: sensValue is the value x 10 in
the row's sensUnit (0 = Celsius, 3 = percent RH); every sensor's state is 1 (normal). The
device's own sensString column ("30.3 %RH", "24.9 C") agrees with each value."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/hwg/poseidon-4002"


def test_hwg_poseidon_sensors(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "hwg_poseidon"
    assert points == {
        ("env", "dev-1"): {"humidity_pct": pytest.approx(30.3)},   # raw 303, "H.Servidores"
        ("env", "dev-2"): {"humidity_pct": pytest.approx(29.6)},   # raw 296, "H.Network"
        ("env", "dev-3"): {"humidity_pct": pytest.approx(28.7)},   # raw 287, "H.Ambiente"
        ("env", "dev-4"): {"humidity_pct": pytest.approx(20.6)},   # raw 206, "H.C4c"
        ("env", "dev-5"): {"temp_c": pytest.approx(24.9)},         # raw 249, "T.Network"
        ("env", "dev-6"): {"temp_c": pytest.approx(31.1)},         # raw 311, "T.C4c"
        ("env", "dev-7"): {"temp_c": pytest.approx(25.7)},         # raw 257, "T.Ambiente"
        ("env", "dev-8"): {"temp_c": pytest.approx(23.6)},         # raw 236, "T.Servidores"
    }
    assert count_fields(points) == 8
