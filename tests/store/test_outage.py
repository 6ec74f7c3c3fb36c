"""The writer never loses data silently: outages spool to disk and replay in order, exactly
once; past the spool's bound the oldest points are dropped and counted exactly; the spool
outlives the writer. Against a real influxd killed mid-write, and an in-memory store whose
availability the test switches."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from dcim.metrics import Point, PointError
from dcim.store.base import Store, StoreError, StoreUnavailable
from dcim.store.influx import InfluxStore
from dcim.store.spool import Spool, SpoolLocked
from dcim.store.writer import StoreWriter
from tests.fixtures.influxd import InfluxdProcess

T0 = 1_700_000_000_000_000_000


def gpu_point(i: int, gpu: int = 0) -> Point:
    tags = {"site": "s", "room": "r", "rack": "a01", "host": "h", "gpu": str(gpu), "uuid": f"GPU-{gpu}", "model": "m"}
    return Point("gpu", tags, {"power_w": float(i), "pstate": i % 16}, T0 + i * 1_000_000)


class FlakyStore(Store):
    """Records every batch it accepts; raises StoreUnavailable while ``up`` is False."""

    def __init__(self):
        self.up = True
        self.batches: list[list[Point]] = []
        self.refuse_measurement: str | None = None

    def write(self, points):
        if not self.up:
            raise StoreUnavailable("down for the test")
        if self.refuse_measurement and any(p.measurement == self.refuse_measurement for p in points):
            raise StoreError("HTTP 400: refused for the test")
        self.batches.append(list(points))

    @property
    def points(self) -> list[Point]:
        return [p for b in self.batches for p in b]

    def query(self, *a, **k):
        raise NotImplementedError

    def latest(self, *a, **k):
        raise NotImplementedError


def drain(writer: StoreWriter, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        writer.flush()
        if writer.stats()["spool_points"] == 0 and writer.stats()["buffered"] == 0:
            return
        assert time.monotonic() < deadline, f"spool not drained: {writer.stats()}"
        time.sleep(0.05)


# --- in-memory store: order, bound, restart, rejection ----------------------------------------


def test_outage_replays_in_order_exactly_once(tmp_path):
    store = FlakyStore()
    sent = [gpu_point(i) for i in range(1000)]
    with StoreWriter(store, tmp_path / "spool", batch_size=30, flush_interval_s=0.01) as writer:
        for k in range(0, 1000, 25):
            if k == 200:
                store.up = False
            if k == 700:
                store.up = True
            writer.write(sent[k:k + 25])
            if k % 100 == 0:
                writer.flush()
        drain(writer)
        stats = writer.stats()
    assert store.points == sent  # every point, once, in the order written
    assert stats["accepted"] == stats["written"] == 1000
    assert stats["spooled"] > 0 and stats["replayed"] == stats["spooled"]
    assert stats["dropped"] == stats["rejected"] == 0


def test_spool_bound_drops_oldest_and_counts_exactly(tmp_path):
    store = FlakyStore()
    store.up = False
    sent = [gpu_point(i) for i in range(3000)]
    writer = StoreWriter(store, tmp_path / "spool", max_spool_bytes=40_000, batch_size=50, flush_interval_s=60)
    for k in range(0, 3000, 50):
        writer.write(sent[k:k + 50])
        writer.flush()
    stats = writer.stats()
    assert stats["spool_bytes"] <= 40_000
    assert 0 < stats["dropped"] < 3000
    store.up = True
    drain(writer)
    writer.close()
    got = store.points
    assert len(got) == 3000 - writer.dropped  # the count of what is missing is exact
    assert got == sent[writer.dropped:]  # and what is missing is the oldest
    assert writer.stats()["replayed"] == writer.spooled - writer.dropped


def test_spool_survives_writer_restart(tmp_path):
    store = FlakyStore()
    store.up = False
    sent = [gpu_point(i) for i in range(500)]
    first = StoreWriter(store, tmp_path / "spool", batch_size=40, flush_interval_s=60)
    first.write(sent[:300])
    first.close()  # store down: everything stays spooled
    assert first.stats()["spooled"] == 300 and store.points == []
    store.up = True
    second = StoreWriter(store, tmp_path / "spool", batch_size=40, flush_interval_s=60)
    second.write(sent[300:])
    second.close()
    assert store.points == sent  # old spool first, then the new points
    assert second.replayed == 300 and second.written == 500


def test_replay_resumes_mid_segment_after_restart(tmp_path):
    store = FlakyStore()
    store.up = False
    sent = [gpu_point(i) for i in range(100)]
    first = StoreWriter(store, tmp_path / "spool", batch_size=10, flush_interval_s=60)
    first.write(sent)
    first.flush()
    # Let exactly three batches through, then fail again.
    calls = {"n": 0}
    real = store.write

    def three_then_down(points):
        calls["n"] += 1
        if calls["n"] > 3:
            raise StoreUnavailable("down again")
        real(points)

    store.up = True
    store.write = three_then_down
    first.flush()
    first.close()
    assert store.points == sent[:30]
    store.write = real
    with StoreWriter(store, tmp_path / "spool", batch_size=10, flush_interval_s=60) as second:
        second.flush()
    assert store.points == sent  # nothing twice, nothing skipped


def test_torn_last_record_is_cut(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.append([gpu_point(1)])
    spool.append([gpu_point(2)])
    spool.close()
    [seg] = sorted((tmp_path / "s").glob("*.spool"))
    with open(seg, "ab") as f:
        f.write(b'1\t[["gpu",{"site"')  # a crash in the middle of an append
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    assert spool.pending_points == 2
    assert spool.peek() == [gpu_point(1)]
    spool.pop()
    assert spool.peek() == [gpu_point(2)]
    spool.pop()
    assert spool.peek() is None
    spool.close()



def test_damaged_record_is_counted_dropped_and_skipped(tmp_path, caplog):
    """A spooled batch that cannot be read back (bytes damaged on disk) is counted as dropped,
    logged with its reason, and skipped: the batches around it replay."""
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    for i in (1, 2, 3):
        spool.append([gpu_point(i), gpu_point(i, gpu=1)])
    spool.close()
    [seg] = sorted((tmp_path / "s").glob("*.spool"))
    data = seg.read_bytes()
    first = data.index(b"\n") + 1
    second = data.index(b"\n", first)
    seg.write_bytes(data[:first + 4] + b"~" * (second - first - 4) + data[second:])  # same length, not JSON
    store = FlakyStore()
    with caplog.at_level("ERROR", logger="dcim.store.writer"):
        writer = StoreWriter(store, tmp_path / "s", flush_interval_s=0.05)
        drain(writer)
        writer.close()
    assert [p.fields["power_w"] for p in store.points] == [1.0, 1.0, 3.0, 3.0]
    assert writer.stats()["dropped"] == 2
    assert "cannot be read back" in caplog.text

def test_one_writer_per_spool_dir(tmp_path):
    with StoreWriter(FlakyStore(), tmp_path / "spool"):
        with pytest.raises(SpoolLocked):
            StoreWriter(FlakyStore(), tmp_path / "spool")


def test_invalid_points_counted_or_raised(tmp_path):
    store = FlakyStore()
    bad = [Point("gpu", {"uuid": "u"}, {"power_w": "hot"}, T0), Point("nope", {}, {"x": 1.0}, T0)]
    with StoreWriter(store, tmp_path / "a", flush_interval_s=60) as writer:
        writer.write([gpu_point(1), *bad])
        writer.flush()
        assert writer.stats()["rejected"] == 2 and writer.stats()["accepted"] == 1
    assert store.points == [gpu_point(1)]
    with StoreWriter(store, tmp_path / "b", flush_interval_s=60, strict=True) as writer:
        with pytest.raises(PointError):
            writer.write([gpu_point(2), *bad])
        writer.flush()
        assert writer.stats()["accepted"] == 0  # nothing of a refused call is queued
    assert store.points == [gpu_point(1)]


def test_store_4xx_batch_rejected_not_retried(tmp_path, caplog):
    store = FlakyStore()
    store.refuse_measurement = "meter"
    meter = Point("meter", {"site": "s", "meter": "m", "role": "it"}, {"power_w": 1.0}, T0)
    with StoreWriter(store, tmp_path / "spool", batch_size=1, flush_interval_s=60) as writer:
        writer.write([gpu_point(1), meter, gpu_point(2)])
        writer.flush()
        writer.flush()
        stats = writer.stats()
    assert store.points == [gpu_point(1), gpu_point(2)]
    assert stats["rejected"] == 1 and stats["written"] == 2 and stats["spool_points"] == 0
    assert "refused for the test" in caplog.text


# --- a real influxd, killed while points are written -----------------------------------------


@pytest.fixture(scope="module")
def outage_influxd(tmp_path_factory):
    """Its own influxd: this module kills it, which must not disturb the session's server."""
    server = InfluxdProcess(root=tmp_path_factory.mktemp("influxd-outage"))
    try:
        server.start()
        yield server
    finally:
        server.close()


def _count(server: InfluxdProcess, db: str) -> dict[str, int]:
    store = InfluxStore(server.url, db)
    try:
        series = store.query("gpu", ["power_w"], 0, 2**62, agg="count", group_by=["uuid"])
        return {s.tags["uuid"]: s.values["power_w"][0] for s in series}
    finally:
        store.close()


def test_influxd_killed_mid_write_every_point_arrives_once(outage_influxd, tmp_path):
    db = "outage_" + uuid.uuid4().hex[:8]
    store = InfluxStore(outage_influxd.url, db, max_retries=1, backoff_s=0.05, timeout_s=3)
    writer = StoreWriter(store, tmp_path / "spool", batch_size=200, flush_interval_s=0.05)
    n_per_gpu, n_gpus = 3000, 4
    done = threading.Event()

    def produce():
        for i in range(0, n_per_gpu, 50):
            for g in range(n_gpus):
                writer.write([gpu_point(j, g) for j in range(i, i + 50)])
            time.sleep(0.02)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.3)
    outage_influxd.kill()  # SIGKILL mid-stream, as a crash or power cut would
    time.sleep(1.0)
    spooled_during_outage = writer.stats()["spooled"]
    outage_influxd.start()
    producer.join(60)
    assert done.is_set()
    drain(writer, timeout_s=30)
    writer.close()
    stats = writer.stats()
    assert spooled_during_outage > 0, "the outage did not hit the writer; the test proved nothing"
    assert stats["accepted"] == n_per_gpu * n_gpus
    assert stats["dropped"] == stats["rejected"] == 0
    assert stats["replayed"] == stats["spooled"] and stats["written"] == stats["accepted"]
    assert _count(outage_influxd, db) == {f"GPU-{g}": n_per_gpu for g in range(n_gpus)}
    store.close()


def test_influx_spool_survives_writer_restart(outage_influxd, tmp_path):
    db = "restart_" + uuid.uuid4().hex[:8]
    outage_influxd.stop()
    try:
        store = InfluxStore(outage_influxd.url, db, max_retries=0, timeout_s=2)
        first = StoreWriter(store, tmp_path / "spool", batch_size=100, flush_interval_s=60)
        first.write([gpu_point(i) for i in range(700)])
        first.close()
        assert first.spooled == 700 and first.written == 0
        assert any(name.endswith(".spool") for name in os.listdir(tmp_path / "spool"))
    finally:
        outage_influxd.start()
    second = StoreWriter(store, tmp_path / "spool", batch_size=100, flush_interval_s=60)
    second.write([gpu_point(i) for i in range(700, 1000)])
    second.close()
    assert second.replayed == 700 and second.written == 1000
    assert _count(outage_influxd, db) == {"GPU-0": 1000}
    store.close()


def test_unwritable_point_rejected_alone_not_its_batch(influx_store, tmp_path):
    """A point the metric contract allows but line protocol cannot carry (newline in a tag)
    costs only itself."""
    good = [gpu_point(i) for i in range(10)]
    bad = Point("gpu", {**good[0].tags, "host": "two\nlines"}, {"power_w": 1.0}, T0)
    with StoreWriter(influx_store, tmp_path / "spool", batch_size=100, flush_interval_s=60) as writer:
        writer.write([*good[:5], bad, *good[5:]])
        writer.flush()
        stats = writer.stats()
    assert stats["rejected"] == 1 and stats["accepted"] == 10 and stats["written"] == 10
    [s] = influx_store.query("gpu", ["power_w"], 0, 2**62, agg="count")
    assert s.values["power_w"] == [10]
    with StoreWriter(influx_store, tmp_path / "strict", strict=True) as writer:
        with pytest.raises(PointError, match="newline"):
            writer.write([bad])
