"""Rittal LCP on a real walk: a CMC-TC/LCP-InlineEC (HW V3.20, SW V6.50.00), the LCP on sensor
port 2 (LibreNMS tests/snmpsim/rittal-cmc.snmprec).

Expected values read by hand from the walk's port-2 sensor table with RITTAL-CMC-TC-MIB's types:
row 1 and row 21 temp1LCP(56) "Server-In-Temperat." = 16 °C, row 22 temp2LCP(57)
"Server-Out-Temperat." = 25 °C, row 26 fanSpeed(61) "RLCP Fanspeed" = 63 %."""

from __future__ import annotations

from tests.collectors.vendor_probe import probe

WALK = "walks/rittal/cmc-tc-lcp-inline-ec"


def test_rittal_lcp(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "rittal_lcp"
    assert points == {("cooling", None): {"supply_temp_c": 16.0, "rack_inlet_temp_c": 16.0,
                                          "return_temp_c": 25.0, "fan_pct": 63.0}}
