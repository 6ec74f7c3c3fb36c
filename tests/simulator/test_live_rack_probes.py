"""The demo's rack probes stay live after the twin starts serving: every rack of both halls
(APC rPDU2 probes in hall-1, Raritan PDU2 external sensors in hall-2) reads its inlet
temperature through the real SNMP collector, equal to the twin's rack inlet, and follows it when
the twin moves on (a CRAH of hall-2 failing warms its racks); the probe at each rack's rear,
named so on the PDU, is read as the rack's outlet (its position taken from its name)."""

from __future__ import annotations

import asyncio

import pytest

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.engine import SnmpPoller
from dcim.config import load_config
from dcim.inventory import build_inventory
from simulator.facility import FacilityTwin
from tests.simulator.snmp_helpers import TEST_SECRETS, relocated, running_service


def poll_inlets(cfg, position: str = "inlet") -> dict[str, list[float]]:
    """rack -> the *position* temperatures its PDUs' probes read."""
    async def go():
        col = SnmpCollector.from_inventory(build_inventory(cfg), poller=SnmpPoller())
        try:
            return await col.poll(20.0)
        finally:
            await col.close()

    out: dict[str, list[float]] = {}
    for result in asyncio.run(go()):
        for p in result.points:
            if p.measurement == "env" and p.tags.get("position") == position and "temp_c" in p.fields:
                out.setdefault(p.tags["rack"], []).append(p.fields["temp_c"])
    return out


@pytest.fixture
def demo(monkeypatch):
    for name, value in TEST_SECRETS.items():
        monkeypatch.setenv(name, value)
    cfg = load_config()
    return relocated(cfg.model_copy(update={"cooling": [], "ups": [], "meters": []}))


def test_every_rack_of_both_halls_reads_a_live_inlet(demo):
    full = load_config()
    twin = FacilityTwin(full, seed=3)
    # the twin computes with every unit; only the PDUs answer SNMP here (relocated, v3)
    with running_service(demo, twin, faults=["cooling:crah-C:+5m-+60m"]) as svc:
        svc.call(lambda: svc.advance(60))
        before = poll_inlets(demo)
        truth = svc.call(lambda: dict(svc.snapshot.rack_inlet_temp_c))
        assert set(before) == {r.rack for r in build_inventory(full).racks}   # A01..D04: hall-2 too
        for rack, temps in before.items():
            assert all(t == pytest.approx(truth[rack], abs=0.06) for t in temps), (rack, temps, truth[rack])
        svc.call(lambda: svc.advance(600))   # crah-C (racks C01-C04) now failing
        after = poll_inlets(demo)
        truth_after = svc.call(lambda: dict(svc.snapshot.rack_inlet_temp_c))
    for rack in ("C01", "C02", "C03", "C04"):
        assert truth_after[rack] > truth[rack] + 1.0
        assert after[rack][0] == pytest.approx(truth_after[rack], abs=0.06)
    assert after["D01"][0] == pytest.approx(truth_after["D01"], abs=0.06)


def test_every_rack_of_both_halls_reads_a_live_outlet(demo):
    """The Racks page's outlet column: the rear probe (APC "A01 rear", Raritan "C01 outlet
    temperature") is an outlet by its name, hotter than the inlet by the rack's heat."""
    full = load_config()
    twin = FacilityTwin(full, seed=3)
    with running_service(demo, twin) as svc:
        svc.call(lambda: svc.advance(60))
        outlets = poll_inlets(demo, "outlet")
        inlets = poll_inlets(demo, "inlet")
        truth = svc.call(lambda: dict(svc.snapshot.rack_outlet_temp_c))
    assert set(outlets) == {r.rack for r in build_inventory(full).racks}
    for rack, temps in outlets.items():
        assert len(temps) == 2                                  # the A and B PDUs' rear probes
        assert all(t == pytest.approx(truth[rack], abs=0.06) for t in temps), (rack, temps, truth[rack])
        assert min(temps) > max(inlets[rack]) + 1.0
    assert all(len(temps) == 2 for temps in inlets.values())   # no rear probe read as an inlet


def test_backfilled_probes_are_the_series_the_collectors_write(demo):
    """History and live data are one series per probe: the backfill names each rack probe, and
    gives it the fields, that the SNMP collector reads from the twin's PDUs (else every backfilled
    series would fall silent at start and raise env_silent on every rack)."""
    from simulator.backfill import RackProbes

    full = load_config()
    twin = FacilityTwin(full, seed=3)
    with running_service(demo, twin) as svc:
        svc.call(lambda: svc.advance(60))
        live = collected_env(demo)
        backfilled = svc.call(lambda: RackProbes(twin).as_collected(twin.points(include_gpus=False)))
    history = {(p.tags["rack"], p.tags["sensor"], p.tags["position"]): set(p.fields)
               for p in backfilled if p.measurement == "env"}
    assert history == live
    assert {pos for _, _, pos in history} == {"inlet", "outlet"}   # the rear probes have history too


def collected_env(cfg) -> dict[tuple, set]:
    async def go():
        col = SnmpCollector.from_inventory(build_inventory(cfg), poller=SnmpPoller())
        try:
            return await col.poll(20.0)
        finally:
            await col.close()

    return {(p.tags["rack"], p.tags["sensor"], p.tags["position"]): set(p.fields)
            for r in asyncio.run(go()) for p in r.points if p.measurement == "env"}
