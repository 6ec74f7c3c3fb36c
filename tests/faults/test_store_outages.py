"""Store outages while points keep coming: nothing is lost within the spool's bound, and every
point dropped past it is counted and logged.

* influxd (the real Debian server) stopped for ~12 s while a generator writes at a collector's
  full rate (~1,000 points/s: the demo's 512 GPUs at 1 s, or a 10x site's SNMP + NVML at 5-10 s);
  the bench (bench/faults.py) does the full minute.
* influxd down for longer than the spool bound holds.
* SQLite locked by another connection (BEGIN EXCLUSIVE) for longer than the store's busy
  timeout, and a long read transaction held open while the collector writes.

Each count is taken three ways: the test's own tally of what it generated, StoreWriter.stats(),
and a query of the store afterwards.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid

import pytest

from dcim.metrics import Point
from dcim.store.influx import InfluxStore
from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from tests.faults.conftest import T0, gpu_point, wait_for
from tests.fixtures.influxd import InfluxdProcess

N_GPUS = 512
RATE_BATCH = 256          # points per tick
TICK_S = 0.25             # -> ~1,000 points/s


class Generator:
    """Writes gpu points at a steady rate from a thread; keeps its own count."""

    def __init__(self, writer: StoreWriter, n_gpus: int = N_GPUS):
        self.writer = writer
        self.n_gpus = n_gpus
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        next_t = time.monotonic()
        while not self._stop.is_set():
            batch = [gpu_point_seq(self.sent + k) for k in range(RATE_BATCH)]
            self.writer.write(batch)
            self.sent += len(batch)
            next_t += TICK_S
            time.sleep(max(0.0, next_t - time.monotonic()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def drain(writer: StoreWriter, timeout_s: float = 60.0) -> dict:
    def empty():
        writer.flush()
        s = writer.stats()
        return s if s["spool_points"] == 0 and s["buffered"] == 0 else None
    return wait_for(empty, timeout_s, "the spool to drain", every_s=0.2)


def stored(store, end_seq: int) -> tuple[int, int, int, int]:
    """(count, sum, min, max) of the generated sequence numbers the store holds."""
    start, end = T0 - 10**9, T0 + (end_seq // N_GPUS + 2) * 10**9
    out = []
    for agg in ("count", "sum", "min", "max"):
        series = store.query("gpu", ["mem_used_bytes"], start, end, agg=agg)
        values = [v for s in series for v in s.values["mem_used_bytes"] if v is not None]
        if agg == "count":
            out.append(int(sum(values)))
        elif agg == "sum":
            out.append(int(sum(values)))
        elif agg == "min":
            out.append(int(min(values)) if values else -1)
        else:
            out.append(int(max(values)) if values else -1)
    return tuple(out)


def gpu_point_seq(i: int):
    """Point *i* of the stream; its sequence number rides in mem_used_bytes (an integer field)."""
    return gpu_point(i, n_gpus=N_GPUS)




@pytest.fixture(scope="module")
def influxd():
    server = InfluxdProcess()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def influx(influxd):
    if influxd.proc is None:
        influxd.start()
    store = InfluxStore(influxd.url, "faults_" + uuid.uuid4().hex[:8], timeout_s=2.0, max_retries=1,
                        backoff_s=0.05, max_backoff_s=0.2)
    yield store
    if influxd.proc is None:
        influxd.start()
    try:
        store.execute(f'DROP DATABASE "{store.database}"')
    except Exception:
        pass
    store.close()



def test_influxd_down_12s_at_full_rate_loses_nothing(influxd, influx, tmp_path, monkeypatch):
    writer = StoreWriter(influx, tmp_path / "spool", batch_size=2000, flush_interval_s=0.2,
                         max_retry_interval_s=1.0)
    try:
        with Generator(writer) as gen:
            time.sleep(3)
            influxd.stop()
            down_at = gen.sent
            time.sleep(12)
            mid = writer.stats()
            influxd.start()
            time.sleep(3)
        assert gen.sent > down_at > 0
        stats = drain(writer)
    finally:
        writer.close()
    generated = gen.sent
    # the outage was real: points went to disk while influxd was down
    assert mid["spooled"] > 0 and mid["spool_points"] > 0, mid
    assert stats["accepted"] == generated
    assert stats["dropped"] == 0 and stats["rejected"] == 0
    assert stats["replayed"] == stats["spooled"] > 0
    assert stats["written"] == generated
    count, total, lo, hi = stored(influx, generated)
    assert count == generated, (count, generated, stats)
    assert total == generated * (generated - 1) // 2  # every sequence number exactly once
    assert (lo, hi) == (0, generated - 1)


def test_outage_past_the_spool_bound_drops_only_counted_oldest_points(influxd, influx, tmp_path, monkeypatch,
                                                                       caplog):
    caplog.set_level(logging.WARNING)
    bound = 256 << 10  # 256 KiB: a few seconds of this stream
    writer = StoreWriter(influx, tmp_path / "spool", max_spool_bytes=bound, batch_size=2000,
                         flush_interval_s=0.2, max_retry_interval_s=1.0)
    try:
        influx.write([Point("facility", {"site": "s"}, {"pue": 1.3}, T0)])  # the database exists
        influxd.stop()
        with Generator(writer) as gen:
            wait_for(lambda: writer.stats()["dropped"] > 0, 60, "the spool to pass its bound")
            time.sleep(2)
            during = writer.stats()
        assert during["spool_bytes"] <= bound + 64 << 10, during  # bounded on disk (one segment of slack)
        influxd.start()
        stats = drain(writer)
    finally:
        writer.close()
    generated = gen.sent
    assert stats["accepted"] == generated
    assert stats["dropped"] > 0
    assert stats["written"] + stats["dropped"] == generated, stats  # every point is accounted for
    assert stats["spooled"] == generated  # nothing bypassed the spool while the store was down
    count, total, lo, hi = stored(influx, generated)
    assert count == stats["written"], (count, stats)
    # the drop policy is "oldest first": what survives is one contiguous run ending at the newest
    assert hi == generated - 1 and lo == stats["dropped"]
    assert total == sum(range(lo, hi + 1))
    # every drop is logged, with a running count that matches
    msgs = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any(f"{stats['dropped']} dropped so far" in m for m in msgs), msgs[-5:]


def _sqlite_count(path, generated):
    with SqliteStore(path, readonly=True) as ro:
        return stored(ro, generated)


def test_sqlite_locked_exclusive_longer_than_busy_timeout(tmp_path, monkeypatch):
    """Another process holds BEGIN EXCLUSIVE past the store's busy timeout: the writer spools
    and replays; nothing lost, nothing duplicated."""
    import dcim.store.sqlite as sqlite_mod

    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 1000)  # production waits 10 s; same code path
    path = tmp_path / "dcim.sqlite"
    store = SqliteStore(path)
    writer = StoreWriter(store, tmp_path / "spool", batch_size=2000, flush_interval_s=0.2,
                         max_retry_interval_s=1.0)
    locker = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        with Generator(writer) as gen:
            time.sleep(1.5)
            locker.execute("BEGIN EXCLUSIVE")
            time.sleep(4)
            mid = writer.stats()
            locker.execute("COMMIT")
            time.sleep(1.5)
        stats = drain(writer)
    finally:
        locker.close()
        writer.close()
        store.close()
    generated = gen.sent
    assert mid["spooled"] > 0, mid  # the lock was felt: points went to the spool
    assert stats["accepted"] == stats["written"] == generated and stats["dropped"] == 0
    assert stats["replayed"] == stats["spooled"]
    count, total, lo, hi = _sqlite_count(path, generated)
    assert count == generated and total == generated * (generated - 1) // 2


def test_sqlite_long_reader_does_not_block_or_lose_writes(tmp_path, monkeypatch):
    """A dashboard-like reader keeps a read transaction open for seconds (WAL): writes go on."""
    path = tmp_path / "dcim.sqlite"
    store = SqliteStore(path)
    writer = StoreWriter(store, tmp_path / "spool", batch_size=2000, flush_interval_s=0.2)
    reader = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        with Generator(writer) as gen:
            time.sleep(1)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
            before = writer.stats()["written"]
            time.sleep(4)
            during = writer.stats()
            reader.execute("COMMIT")
        stats = drain(writer)
    finally:
        reader.close()
        writer.close()
        store.close()
    generated = gen.sent
    assert during["written"] > before  # writes continued under the open read transaction
    assert stats["accepted"] == stats["written"] == generated and stats["dropped"] == 0
    count, total, _, _ = _sqlite_count(path, generated)
    assert count == generated and total == generated * (generated - 1) // 2
