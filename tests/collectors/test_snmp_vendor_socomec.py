"""Socomec UPSes on Net Vision cards, on the real walks in centreon-plugins
tests/hardware/ups/socomec/netvision/snmp/ (netvision5 and netvision6), served by snmpsim and
read with `dcim probe`.

Expected values worked by hand from the walks with SOCOMECUPS(7)-MIB: battery group .1.2,
upsEstimatedChargeRemaining (.4) in %, upsEstimatedMinutesRemaining (.3) in minutes. Both walks
carry only the battery group: the output objects are absent, never invented."""

from __future__ import annotations

from tests.collectors.vendor_probe import probe


def test_socomec_netvision6_card_answers_the_ups7_branch(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, "walks/socomec/netvision6-battery", capsys)
    # Same sysObjectID as the older card: the .4555.1.1.7 branch answering decides.
    assert profile == "socomec_netvision7"
    # 100 % charge, 10 minutes remaining -> 600 s (centreon reads the same: "100% (10 minutes").
    assert points == {("ups", None): {"battery_charge_pct": 100.0, "runtime_s": 600.0}}


def test_socomec_netvision5_card_answers_the_older_branch(snmpsim_agent, capsys):
    profile, points = probe(snmpsim_agent, "walks/socomec/netvision5-battery", capsys)
    assert profile == "socomec_netvision"
    # 100 % charge; upsEstimatedMinutesRemaining reads 0 -> 0 s, as recorded.
    assert points == {("ups", None): {"battery_charge_pct": 100.0, "runtime_s": 0.0}}
