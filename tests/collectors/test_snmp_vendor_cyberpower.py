"""CyberPower UPS on a real walk: an OL2200RTXL2U (firmware S1A17) behind an RMCARD whose
sysObjectID is the ePDU branch (.3808.1.1.3) (LibreNMS tests/snmpsim/cyberpower.snmprec).

Expected values worked by hand from the walk with CPS-MIB's units: line voltages 1/10 VAC,
battery capacity %, runtime TimeTicks (1/100 s), upsBaseOutputStatus onLine(2), envirTemperature
1/10 °F, envirHumidity %RH."""

from __future__ import annotations

import pytest

from tests.collectors.vendor_probe import count_fields, probe

WALK = "walks/cyberpower/ol2200rtxl2u"


@pytest.mark.parametrize("kind", [None, "ups"])
def test_cyberpower_ups(snmpsim_agent, capsys, kind):
    profile, points = probe(snmpsim_agent, WALK, capsys, kind)
    assert profile == "cyberpower_ups"
    ups = points[("ups", None)]
    assert ups == {"on_battery": False, "battery_charge_pct": 100.0,
                   "runtime_s": pytest.approx(1740.0),          # 174000 ticks
                   "input_voltage_v": pytest.approx(119.5),     # 1195
                   "output_voltage_v": pytest.approx(120.2)}    # 1202
    # The card publishes no upsAdvanceOutputLoad / upsAdvanceOutputPower: absent, not 0.
    assert "load_pct" not in ups and "output_power_w" not in ups
    # envirTemperature 683 in 1/10 °F: 68.3 °F = (68.3 - 32) x 5/9 = 20.1667 °C; envirHumidity 56 %RH.
    assert points[("env", "dev")] == {"humidity_pct": 56.0, "temp_c": pytest.approx(20.1667, abs=1e-4)}
    assert count_fields(points) == 7
