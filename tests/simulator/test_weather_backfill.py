"""Weather is seasonal, daily and deterministic; backfill writes history ending at now."""

from __future__ import annotations

import statistics
import time

from dcim.metrics import validate_point
from simulator.backfill import backfill
from simulator.weather import Weather
from tests.simulator.conftest import JAN_NS

HOUR_NS = 3600 * 10**9
JUL_NS = JAN_NS + 181 * 24 * HOUR_NS


def test_daejeon_seasons_days_and_determinism():
    w = Weather("daejeon", seed=1, tz="Asia/Seoul")
    jan = [w.at(JAN_NS + h * HOUR_NS)[0] for h in range(24 * 28)]
    jul = [w.at(JUL_NS + h * HOUR_NS)[0] for h in range(24 * 28)]
    assert -8 < statistics.mean(jan) < 6 and 20 < statistics.mean(jul) < 31
    # Afternoon (15:00 KST = 06:00 UTC) warmer than early morning (05:00 KST = 20:00 UTC prev day).
    afternoon = statistics.mean(jan[6::24])
    morning = statistics.mean(jan[20::24])
    assert afternoon - morning > 5
    rh = [w.at(JUL_NS + h * HOUR_NS)[1] for h in range(24 * 28)]
    assert 60 < statistics.mean(rh) <= 100
    assert Weather("daejeon", seed=1, tz="Asia/Seoul").at(JUL_NS + 12345) == w.at(JUL_NS + 12345)
    assert Weather("daejeon", seed=2, tz="Asia/Seoul").at(JUL_NS) != w.at(JUL_NS)
    assert Weather("constant").at(JUL_NS) == (15.0, 60.0)


class ListStore:
    def __init__(self):
        self.points = []
        self.maintained = False
        self.flushed = False

    def write(self, points):
        self.points.extend(points)

    def flush(self):
        self.flushed = True

    def maintain(self):
        self.maintained = True


def test_backfill_writes_steps_ending_at_now(demo_config):
    store = ListStore()
    end = JAN_NS + 7 * 24 * HOUR_NS + 123
    calls = []
    twin = backfill(demo_config, store, 0.25, step_s=900, end_ns=end, progress=lambda d, t: calls.append((d, t)))
    times = sorted({p.time_ns for p in store.points})
    assert times[-1] == end and twin.now_ns == end
    assert len(times) == 0.25 * 96 + 1
    assert all(b - a == 900 * 10**9 for a, b in zip(times, times[1:]))
    assert calls[-1] == (24, 24)
    assert store.maintained and store.flushed
    per_step = [p for p in store.points if p.time_ns == end]
    assert sum(p.measurement == "gpu" for p in per_step) == 512
    for p in per_step:
        validate_point(p)
    # Counters only grow across the history.
    meter = [p.fields["energy_kwh"] for p in store.points
             if p.measurement == "meter" and p.tags["role"] == "facility_total"]
    assert all(b > a for a, b in zip(meter, meter[1:]))


def test_backfill_continues_a_given_twin(demo_config):
    from simulator.facility import FacilityTwin

    end = JAN_NS + 24 * HOUR_NS
    twin = FacilityTwin(demo_config, seed=4, start_ns=end - 2 * HOUR_NS)
    store = ListStore()
    out = backfill(twin, store, 1 / 24, step_s=600, end_ns=end)
    assert out is twin and twin.now_ns == end
    assert min(p.time_ns for p in store.points) == end - HOUR_NS
    late = FacilityTwin(demo_config, seed=4, start_ns=end)
    try:
        backfill(late, ListStore(), 1, end_ns=end)
    except ValueError:
        pass
    else:
        raise AssertionError("a twin past the window start must be refused")
    assert time.time() > 0


def test_backfill_gpu_points_on_a_coarser_grid_ending_at_now(demo_config):
    store = ListStore()
    end = JAN_NS + 3 * HOUR_NS + 7
    backfill(demo_config, store, 2 / 24, step_s=300, gpu_step_s=900, end_ns=end)
    device_times = sorted({p.time_ns for p in store.points if p.measurement == "pdu"})
    gpu_times = sorted({p.time_ns for p in store.points if p.measurement == "gpu"})
    assert len(device_times) == 25 and device_times[-1] == end
    assert gpu_times[-1] == end and len(gpu_times) == 9
    assert all(b - a == 900 * 10**9 for a, b in zip(gpu_times, gpu_times[1:]))
