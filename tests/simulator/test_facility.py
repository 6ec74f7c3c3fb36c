"""The twin's physics: energy balance, PUE across seasons, determinism, points contract."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcim.metrics import MEASUREMENTS, validate_point
from simulator.facility import FacilityTwin
from tests.simulator.conftest import JAN_NS

DAY_S = 86400


def _meter(twin, role):
    name = next(m.name for m in twin.meters if m.role == role)
    return twin.snapshot.meters[name].energy_kwh


def test_energy_balance_over_a_day(twin):
    """Facility meter energy = IT (UPS output, category 1) + cooling meter + losses + other,
    all read from their own counters or integrated independently, within 0.5 %."""
    s0 = twin.snapshot
    fac0, cool0 = _meter(twin, "facility_total"), _meter(twin, "cooling")
    ups0 = sum(u.energy_kwh for u in s0.ups.values())
    pdu0 = sum(p.energy_kwh for p in s0.pdus.values())
    gpu0 = twin.gpu_state.energy_mj.sum()
    loss_kwh = other_kwh = 0.0
    dt = 60.0
    for _ in range(DAY_S // int(dt)):
        # The state at t holds over [t, t+dt): integrate it before stepping.
        loss_kwh += twin.loss_power_w * dt / 3.6e6
        other_kwh += twin.other_power_w * dt / 3.6e6
        twin.advance(dt)
    s1 = twin.snapshot
    facility = _meter(twin, "facility_total") - fac0
    cooling = _meter(twin, "cooling") - cool0
    it_ups = sum(u.energy_kwh for u in s1.ups.values()) - ups0
    pdus = sum(p.energy_kwh for p in s1.pdus.values()) - pdu0
    gpus_kwh = (twin.gpu_state.energy_mj.sum() - gpu0) / 3.6e9
    assert facility == pytest.approx(it_ups + cooling + loss_kwh + other_kwh, rel=0.005)
    # Category 1: what leaves the UPSes is what the rack PDUs take in.
    assert pdus == pytest.approx(it_ups, rel=0.005)
    # The GPUs are the bulk of IT, but hosts and PDU losses are real.
    assert 0.5 * it_ups < gpus_kwh < 0.95 * it_ups
    assert other_kwh < 0.02 * facility
    assert 1.05 < facility / it_ups < 1.7


def test_pue_plausible_all_year_and_higher_in_summer(demo_config):
    twin = FacilityTwin(demo_config, seed=7, start_ns=JAN_NS)
    dt = 4 * 3600.0
    monthly: dict[int, list[float]] = {}
    for _ in range(int(365 * DAY_S / dt)):
        month = time.gmtime(twin.now_ns / 1e9).tm_mon
        acc = monthly.setdefault(month, [0.0, 0.0])
        acc[0] += twin.facility_power_w
        acc[1] += twin.it_power_w
        twin.advance(dt)
    pue = {m: f / it for m, (f, it) in monthly.items()}
    assert len(pue) == 12
    for m, v in pue.items():
        assert 1.05 <= v <= 1.7, (m, v)
    summer = np.mean([pue[7], pue[8]])
    winter = np.mean([pue[1], pue[2]])
    assert summer > winter + 0.03, pue


def _history(seed, steps=120):
    from dcim.config import load_config
    from tests.conftest import REPO

    twin = FacilityTwin(load_config(REPO / "deploy" / "demo.toml"), seed=seed, start_ns=JAN_NS)
    out = []
    for _ in range(steps):
        twin.step(30.0)
        out.append((twin.facility_power_w, twin.gpu_state.power_w.copy(), twin.snapshot.outdoor_temp_c))
    return out, twin.points()


def test_same_seed_same_history_different_seed_differs():
    a, pa = _history(1)
    b, pb = _history(1)
    c, _ = _history(2)
    assert [x[0] for x in a] == [x[0] for x in b]
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert pa == pb
    assert [x[0] for x in a] != [x[0] for x in c]
    assert [x[2] for x in a] != [x[2] for x in c]


def test_points_follow_the_metric_contract(twin):
    twin.step(10.0)
    points = twin.points(include_outlets=True)
    by_m: dict[str, list] = {}
    for p in points:
        validate_point(p)
        assert p.time_ns == twin.now_ns
        by_m.setdefault(p.measurement, []).append(p)
        # Tag sets are exactly the contract's.
        assert set(p.tags) == set(MEASUREMENTS[p.measurement].tags), p
    inv = twin.inventory
    assert set(by_m) == {"gpu", "workload", "pdu", "pdu_phase", "pdu_outlet", "cooling", "ups", "meter", "env",
                         "facility"}
    assert len(by_m["gpu"]) == len(by_m["workload"]) == len(inv.gpus) == 512
    assert len({p.tags["uuid"] for p in by_m["gpu"]}) == 512
    slot_tags = {tuple(sorted(s.tags.items())) for s in inv.gpus}
    assert {tuple(sorted((k, v) for k, v in p.tags.items() if k != "uuid")) for p in by_m["gpu"]} == slot_tags
    assert len(by_m["pdu"]) == 32 and len(by_m["pdu_phase"]) == 96 and len(by_m["pdu_outlet"]) == 32 * 24
    for kind, measurement, devices in (("pdu", "pdu", inv.pdus), ("cooling", "cooling", inv.cooling),
                                       ("ups", "ups", inv.ups), ("meter", "meter", inv.meters)):
        assert ({tuple(sorted(inv.device_tags(kind, d).items())) for d in devices}
                == {tuple(sorted(p.tags.items())) for p in by_m[measurement]})
    assert {p.tags["position"] for p in by_m["env"]} == {"inlet", "outlet"}
    fac = by_m["facility"][0].fields
    assert fac["pue"] == pytest.approx(fac["total_power_w"] / fac["it_power_w"])
    # Idle GPUs carry an empty job id, busy ones a tenant and class from the config.
    tenants = {t.name for t in twin.config.tenants}
    busy = [p for p in by_m["workload"] if p.fields["job"]]
    assert busy and all(p.fields["tenant"] in tenants for p in busy)
    # Nothing twin-only: the workload fields are the scheduler's (no true throughput).
    assert not any("work_rate" in p.fields for p in by_m["workload"])
    # Without outlets by default.
    assert not any(p.measurement == "pdu_outlet" for p in twin.points())


def test_snapshot_fills_every_device(twin):
    snap = twin.step(10.0)
    inv = twin.inventory
    assert set(snap.pdus) == {p.name for p in inv.pdus}
    assert set(snap.cooling) == {c.name for c in inv.cooling}
    assert set(snap.ups) == {u.name for u in inv.ups}
    assert set(snap.meters) == {m.name for m in inv.meters}
    assert set(snap.rack_inlet_temp_c) == {r.rack for r in inv.racks}
    pdu = snap.pdus["pdu-A01-a"]
    assert len(pdu.phases) == 3 and len(pdu.outlets) == 24
    assert pdu.power_w == pytest.approx(sum(ph.power_w for ph in pdu.phases))
    assert sum(o.power_w for o in pdu.outlets) < pdu.power_w  # PDU losses are not at the outlets
    for r in inv.racks:
        inlet, outlet = snap.rack_inlet_temp_c[r.rack], snap.rack_outlet_temp_c[r.rack]
        assert 15 < inlet < 32 and outlet > inlet
    chiller = snap.cooling["chiller-1"]
    assert chiller.cooling_kw > 0 and chiller.economizer_pct is not None
    assert snap.facility_power_w == pytest.approx(
        snap.it_power_w + snap.cooling_power_w + snap.loss_power_w + twin.other_power_w)


def test_counter_reset_injection(twin):
    twin.step(60.0)
    twin.reset_energy_counter("pdu-A01-a")
    twin.reset_energy_counter("main-incomer")
    uuid = twin.uuids[0]
    twin.reset_energy_counter(uuid)
    snap = twin.snapshot
    assert snap.pdus["pdu-A01-a"].energy_kwh == 0.0
    assert snap.meters["main-incomer"].energy_kwh == 0.0
    assert twin.gpu_state.energy_mj[0] == 0
    snap = twin.step(60.0)
    assert 0 < snap.pdus["pdu-A01-a"].energy_kwh < 1.0
    assert snap.meters["main-incomer"].energy_kwh > 0
    with pytest.raises(KeyError):
        twin.reset_energy_counter("nope")


def test_step_is_cheap(twin):
    for _ in range(5):
        twin.step(10.0)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        twin.step(10.0)
        times.append(time.perf_counter() - t0)
    # Median: robust to a noisy shared machine. 512 GPUs, snapshot included.
    assert sorted(times)[len(times) // 2] < 0.010, times


def test_a_bare_config_without_devices_still_runs():
    """One rack, one 4-GPU server, no PDUs, cooling, UPS or meters: IT still flows, nothing breaks."""
    from dcim.config import parse_config

    cfg = parse_config({"site": {"name": "lab"},
                        "rooms": [{"name": "r", "rows": [{"name": "a", "racks": [
                            {"name": "k1", "servers": [{"host": "h1", "gpus": 4}]}]}]}]})
    twin = FacilityTwin(cfg, seed=1, start_ns=JAN_NS)
    for _ in range(30):
        twin.step(60.0)
    assert twin.it_power_w > 900
    assert twin.facility_power_w == pytest.approx(twin.it_power_w + twin.cooling_power_w + twin.loss_power_w
                                                  + twin.other_power_w)
    for p in twin.points(include_outlets=True):
        validate_point(p)
    assert twin.gpu_backend("h1").sample(3)["power_w"] > 0
