"""The runner: cycles bounded by their deadline, failing collectors backed off (never fatal),
health written as the ``collector`` measurement through the real StoreWriter + SqliteStore,
Prometheus text on /metrics, stable sharding."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest

from collectors.base import Collector, TargetResult
from collectors.runner import Runner, parse_shard
from collectors.snmp.collector import in_shard
from dcim.metrics import Point


class Scripted(Collector):
    """A collector whose poll behaviour the test scripts (the runner is what is under test)."""

    def __init__(self, name, interval_s=10.0, sleep_s=0.0, raises=None, points=1, ok=True):
        self.name, self.interval_s = name, interval_s
        self.sleep_s, self.raises, self.npoints, self.ok = sleep_s, raises, points, ok
        self.calls = 0
        self.closed = False

    def targets(self):
        return [f"{self.name}-t1", f"{self.name}-t2"]

    async def poll(self, deadline_s):
        self.calls += 1
        await asyncio.sleep(self.sleep_s)
        if self.raises:
            raise self.raises
        out = []
        for t in self.targets():
            pts = [Point("meter", {"site": "s", "meter": t, "role": "other"}, {"power_w": 100.0 + i})
                   for i in range(self.npoints)]
            out.append(TargetResult(t, pts, ok=self.ok, error=None if self.ok else "device said no", duration_s=0.01))
        return out

    async def close(self):
        self.closed = True


@pytest.fixture
def store_writer(tmp_path):
    sqlite = pytest.importorskip("dcim.store.sqlite")
    writer_mod = pytest.importorskip("dcim.store.writer")
    store = sqlite.SqliteStore(tmp_path / "t.sqlite")
    writer = writer_mod.StoreWriter(store, tmp_path / "spool", 1 << 20, batch_size=100, flush_interval_s=0.1)
    yield store, writer
    writer.close()
    store.close()


def test_once_writes_points_and_health(store_writer):
    store, writer = store_writer
    good, bad = Scripted("good", points=2), Scripted("bad", ok=False, points=0)
    runner = Runner([good, bad], writer)
    results = asyncio.run(runner.run_once())
    writer.flush()
    assert set(results) == {"good", "bad"}
    meters = store.latest("meter")
    assert {p.tags["meter"] for p in meters} == {"good-t1", "good-t2"}
    health = {p.tags["target"]: p.fields for p in store.latest("collector")}
    assert health["good-t1"]["ok"] is True and health["good-t1"]["points"] == 2
    assert health["bad-t1"]["ok"] is False and health["bad-t1"]["error"] == "device said no"
    assert runner.states["good"].points_total == 4


def test_a_raising_collector_backs_off_and_others_carry_on(store_writer):
    _, writer = store_writer
    broken, fine = Scripted("broken", interval_s=0.2, raises=RuntimeError("boom")), Scripted("fine", interval_s=0.2)
    runner = Runner([broken, fine], writer, jitter_pct=0)

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await asyncio.sleep(1.1)
        stop.set()
        await task

    asyncio.run(go())
    # 0.2 s interval over 1.1 s: ~6 cycles for the healthy one; the broken one backs off
    # (0.4 s, then 0.8 s) after each failure.
    assert fine.calls >= 4
    assert 1 <= broken.calls <= 3
    assert runner.states["broken"].errors_total == broken.calls
    text = runner.metrics_text()
    assert 'dcim_collector_errors_total{collector="broken"}' in text
    assert fine.closed and broken.closed   # closed on the way out


def test_a_collector_ignoring_its_deadline_is_cut_off(store_writer):
    _, writer = store_writer
    hung = Scripted("hung", interval_s=0.3, sleep_s=30)
    runner = Runner([hung], writer)
    t0 = time.monotonic()
    results = asyncio.run(runner.run_once())
    took = time.monotonic() - t0
    assert took < 0.3 + 0.5 + 0.5
    assert all(not r.ok and "deadline" in r.error for r in results["hung"])


def test_overrunning_cycles_are_counted_as_missed(store_writer):
    _, writer = store_writer
    slow = Scripted("slow", interval_s=0.2, sleep_s=0.45)   # under deadline + grace, over the interval
    runner = Runner([slow], writer, jitter_pct=0)

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await asyncio.sleep(1.2)
        stop.set()
        await task

    asyncio.run(go())
    assert runner.states["slow"].missed >= 2
    assert slow.calls <= 3   # not run back to back


def test_metrics_endpoint_serves_prometheus_text(store_writer):
    _, writer = store_writer
    runner = Runner([Scripted("c1")], writer)
    asyncio.run(runner.run_once())
    port = runner.serve_metrics("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    finally:
        runner.stop_metrics()
    assert 'dcim_collector_cycles_total{collector="c1"} 1' in body
    assert 'dcim_collector_target_ok{collector="c1",target="c1-t1"} 1' in body
    assert "# TYPE dcim_writer_points_written_total counter" in body
    for line in body.splitlines():  # every sample line is NAME{labels} VALUE
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_sharding_is_stable_and_partitions_devices():
    names = [f"pdu-{r}{i:02d}-{f}" for r in "ABCD" for i in range(1, 9) for f in "ab"]
    for n in (1, 2, 3, 4):
        shards = [[x for x in names if in_shard(x, (i, n))] for i in range(n)]
        assert sorted(sum(shards, [])) == sorted(names)        # each device in exactly one shard
        assert all(shards) or n > len(names)
    # Stable across processes and hosts: sha1, not Python's salted hash().
    import hashlib
    assert in_shard("pdu-A01-a", (int(hashlib.sha1(b"pdu-A01-a").hexdigest(), 16) % 4, 4))
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_the_poll_deadline_leaves_room_for_the_writes(store_writer):
    """A poll that runs to its deadline (devices discovering or timing out) must still end the
    cycle inside its slot: the collector gets less than the whole interval."""
    _, writer = store_writer
    seen = []

    class Greedy(Scripted):
        async def poll(self, deadline_s):
            seen.append(deadline_s)
            await asyncio.sleep(deadline_s)
            return await super().poll(deadline_s)

    runner = Runner([Greedy("greedy", interval_s=1.0)], writer, jitter_pct=0)

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await asyncio.sleep(2.3)
        stop.set()
        await task

    asyncio.run(go())
    assert seen and all(d < 1.0 for d in seen)
    assert runner.states["greedy"].missed == 0


def test_self_metrics_are_prometheus_client_families_on_the_registry_passed_in(store_writer):
    """The runner registers its health on the registry it is given (private here), so a process
    can expose it beside its own; prometheus_client's parser reads it back typed."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    _, writer = store_writer
    registry = CollectorRegistry()
    runner = Runner([Scripted("c1", points=3), Scripted("c2", ok=False, points=0)], writer, registry=registry)
    asyncio.run(runner.run_once())
    writer.flush()
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families["dcim_collector_cycles"].type == "counter"
    assert families["dcim_collector_target_ok"].type == "gauge"
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values[("dcim_collector_points_total", (("collector", "c1"),))] == 6   # 2 targets x 3 points
    assert values[("dcim_collector_target_ok", (("collector", "c2"), ("target", "c2-t1")))] == 0
    assert values[("dcim_collector_target_ok", (("collector", "c1"), ("target", "c1-t2")))] == 1
    assert values[("dcim_writer_points_written_total", ())] >= 6
    # two runners, two registries: nothing registered globally, no duplicate-name clash
    Runner([Scripted("c1")], writer)
    Runner([Scripted("c1")], writer)
