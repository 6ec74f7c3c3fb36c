"""AKCP sensorProbe8 on a real walk (LibreNMS tests/snmpsim/akcp_serverprobe8.snmprec), served by
snmpsim and read with `dcim probe`.

Expected values worked by hand from the walk with SPAGENT-MIB: sensorProbeTempDegreeRaw in
tenths of a degree (DegreeType 1 = Celsius on every online port), sensorProbeHumidityPercent
%RH; ports whose Online column reads 2 (offline) are absent."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/akcp/sensorprobe8"


def test_akcp_sensorprobe_online_ports_only(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "akcp_sensorprobe"
    assert points == {
        ("env", "dev-0"): {"temp_c": pytest.approx(19.9), "humidity_pct": 42.0},   # raw 199, "Temp.Sensor Carrier"
        ("env", "dev-6"): {"temp_c": pytest.approx(20.0), "humidity_pct": 41.0},   # raw 200, "Temp.Sensor 2"
        ("env", "dev-7"): {"temp_c": pytest.approx(22.1), "humidity_pct": 39.0},   # raw 221, "Temp.Sensor 1"
    }  # ports 1..5 are offline (Online = 2): no point, not 0 °C
    assert count_fields(points) == 6
