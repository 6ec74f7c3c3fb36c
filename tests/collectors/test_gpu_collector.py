"""GpuCollector over NvmlBackend + the pynvml fake (and over a plain GpuBackend): tags, points,
lost GPU → alarm + backoff + recovery, deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from collectors.base import Collector
from collectors.gpu.gpu_collector import LOST_ERROR, GpuCollector
from collectors.gpu.nvml_backend import NvmlBackend
from dcim.gpu_backend import GpuBackend, GpuIdentity, GpuNoPermission, PowerConstraints
from dcim.inventory import GpuSlot
from dcim.metrics import validate_point
from tests.fakes.fake_pynvml import FakeDevice, FakeNvml


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def slots(n: int) -> list[GpuSlot]:
    return [GpuSlot("seoul", "hall1", "R01", "node01", i, "H100-SXM", "lab") for i in range(n)]


def make(n: int = 2, **kw):
    nvml = FakeNvml([FakeDevice() for _ in range(n)])
    clock = Clock()
    col = GpuCollector(NvmlBackend(nvml), slots(n), clock=clock, **kw)
    return nvml, col, clock


def poll(col: GpuCollector, deadline_s: float = 5.0):
    return asyncio.run(col.poll(deadline_s))


def test_is_a_collector_with_one_target_per_gpu_keyed_by_uuid():
    nvml, col, _ = make(3)
    assert isinstance(col, Collector)
    assert col.targets() == [d.uuid for d in nvml.devices]


def test_one_valid_gpu_point_per_gpu_with_inventory_tags():
    nvml, col, _ = make(2)
    results = poll(col)
    assert [r.target for r in results] == [d.uuid for d in nvml.devices]
    for i, r in enumerate(results):
        assert r.ok and r.error is None and r.duration_s >= 0
        (p,) = r.points
        validate_point(p)
        assert p.measurement == "gpu"
        assert p.tags == {"site": "seoul", "room": "hall1", "rack": "R01", "host": "node01", "gpu": str(i),
                          "uuid": nvml.devices[i].uuid, "model": "NVIDIA H100 80GB HBM3"}
        assert p.fields["power_w"] == 312.5 and p.fields["energy_j"] == 123_456_789.0
        assert "fan_pct" not in p.fields  # NOT_SUPPORTED → absent


def test_without_inventory_uses_host_tags():
    col = GpuCollector(NvmlBackend(FakeNvml()), host_tags={"site": "s", "host": "gpu-7"})
    (r,) = col.poll_sync()
    assert r.points[0].tags["host"] == "gpu-7" and r.points[0].tags["site"] == "s"
    assert r.points[0].tags["gpu"] == "0"


def test_lost_gpu_alarm_backoff_and_recovery():
    nvml, col, clock = make(2, backoff_initial_s=2.0, backoff_max_s=16.0)
    poll(col)
    nvml.devices[1].lost = True
    r0, r1 = poll(col)
    assert r0.ok and r0.points[0].measurement == "gpu"  # the other GPU keeps going
    assert not r1.ok and LOST_ERROR in r1.error
    (alarm,) = r1.points
    validate_point(alarm)
    assert alarm.measurement == "collector"
    assert alarm.tags == {"collector": "nvml", "target": nvml.devices[1].uuid}
    assert alarm.fields["ok"] is False and alarm.fields["error"] == LOST_ERROR

    def inits() -> int:
        return nvml.call_names().count("nvmlInit")

    # inside the backoff window: no re-init attempt, still alarmed
    n0 = inits()
    clock.t += 1.0
    _, r1 = poll(col)
    assert not r1.ok and r1.points[0].fields["error"] == LOST_ERROR and inits() == n0
    # window over: one re-init attempt, which fails (still lost) → backoff doubles
    delays = []
    for _ in range(5):
        h = col._health[1]
        delays.append(h.next_try_s - clock.t)
        clock.t = h.next_try_s
        _, r1 = poll(col)
        assert not r1.ok
    assert inits() == n0 + 5
    assert delays == [1.0, 4.0, 8.0, 16.0, 16.0]  # 2 s (1 s already waited), 4, 8, 16, capped at 16
    # it comes back: next attempt re-initialises and the GPU reports again, same target
    nvml.devices[1].lost = False
    clock.t = col._health[1].next_try_s
    r0, r1 = poll(col)
    assert r0.ok and r1.ok and r1.target == nvml.devices[1].uuid
    assert r1.points[0].measurement == "gpu" and r1.points[0].fields["power_w"] == 312.5
    assert not col.is_lost(1)
    assert nvml.init_count == 1


def test_driver_gone_for_all_gpus_is_alarmed_and_recovers():
    nvml, col, clock = make(2, backoff_initial_s=1.0)
    poll(col)
    for d in nvml.devices:
        d.lost = True
    assert [r.ok for r in poll(col)] == [False, False]
    for d in nvml.devices:
        d.lost = False
    clock.t += 10
    assert [r.ok for r in poll(col)] == [True, True]


def test_no_permission_on_control_is_visible_through_the_collector():
    nvml = FakeNvml([FakeDevice(no_permission=True)])
    backend = NvmlBackend(nvml)
    col = GpuCollector(backend, slots(1))
    assert col.control_available(0)
    with pytest.raises(GpuNoPermission):
        backend.set_power_limit_w(0, 500)
    assert not col.control_available(0)
    (r,) = poll(col)
    assert r.ok  # monitoring goes on


def test_transient_field_error_keeps_the_point_and_says_why():
    import pynvml

    nvml, col, _ = make(1)
    nvml.devices[0].errors["nvmlDeviceGetUtilizationRates"] = pynvml.NVML_ERROR_UNKNOWN
    (r,) = poll(col)
    assert r.ok and "util_pct" not in r.points[0].fields and "utilization" in r.error
    (r,) = poll(col)
    assert r.error is None and r.points[0].fields["util_pct"] == 87.0


class SlowBackend(GpuBackend):
    """A plain GpuBackend (as the twin's SimulatedGpus is): GPU 1 hangs."""

    def devices(self):
        return [GpuIdentity(0, "GPU-a", "Sim"), GpuIdentity(1, "GPU-b", "Sim")]

    def sample(self, index):
        if index == 1:
            time.sleep(0.5)
        return {"power_w": 100.0 + index}

    def power_constraints(self, index):
        return PowerConstraints(100, 400, 300)

    def power_limit_w(self, index):
        return 300.0

    def set_power_limit_w(self, index, limit_w):
        return limit_w


def test_any_backend_and_deadline():
    col = GpuCollector(SlowBackend(), host_tags={"host": "sim"})
    t0 = time.perf_counter()
    r0, r1 = poll(col, deadline_s=0.1)
    assert time.perf_counter() - t0 < 0.45
    assert r0.ok and r0.points[0].tags["uuid"] == "GPU-a" and r0.points[0].tags["model"] == "Sim"
    assert not r1.ok and "timeout" in r1.error and r1.target == "GPU-b"
    asyncio.run(col.close())


def test_over_the_twins_simulated_gpus(demo_config):
    """The same collector over the twin's SimulatedGpus: inventory tags, lost → alarm → back."""
    facility = pytest.importorskip("simulator.facility", reason="the twin (simulator.facility) is not there yet")
    from dcim.inventory import build_inventory

    twin = facility.FacilityTwin(demo_config, seed=7)
    twin.step(10.0)
    inv = build_inventory(demo_config)
    host = inv.gpus[0].host
    host_slots = [g for g in inv.gpus if g.host == host]
    backend = twin.gpu_backend(host)
    clock = Clock()
    col = GpuCollector(backend, host_slots, clock=clock, backoff_initial_s=1.0)
    results = poll(col)
    assert len(results) == len(host_slots) and all(r.ok for r in results)
    for r, slot in zip(results, host_slots):
        (p,) = r.points
        validate_point(p)
        assert p.tags["host"] == host and p.tags["rack"] == slot.rack and p.tags["gpu"] == str(slot.index)
        assert r.target == p.tags["uuid"] and "fan_pct" not in p.fields
    backend.lose(0)
    r = poll(col)[0]
    assert not r.ok and r.points[0].measurement == "collector" and r.points[0].fields["error"] == LOST_ERROR
    assert all(x.ok for x in poll(col)[1:])
    backend.recover(0)
    clock.t += 5
    assert poll(col)[0].ok
