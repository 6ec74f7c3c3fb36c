"""Janitza UMG power analyser on a real walk (sysObjectID .34278.10.1; LibreNMS
tests/snmpsim/janitza.snmprec).

Expected value worked by hand from the walk with JANITZA-MIB: p3 (.34278.2.1) "Real Power Summe
L1..L3 in Watt" = 137982; the phases agree (46363 + 44088 + 47530 = 137981 W)."""

from __future__ import annotations

from tests.collectors.vendor_probe import probe

WALK = "walks/janitza/umg"


def test_janitza_umg_meter(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, WALK, capsys)
    assert profile == "janitza_umg"
    # wh3 (energy) is not in this walk: absent.
    assert points == {("meter", None): {"power_w": 137982.0}}
