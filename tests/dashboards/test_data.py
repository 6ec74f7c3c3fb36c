"""Cached queries: energy-based PUE, single flight, one set of store queries per tick for any
number of screens, staleness."""

import threading
import time

import pytest

from dashboards.data import NS, DataSource, QueryCache, energy_ratio, quarter_of
from dcim.metrics import Point
from dcim.store.base import Series
from tests.dashboards import sitedata as S


def test_energy_ratio_weights_partial_buckets():
    h = 3600 * NS
    s = Series(tags={}, times_ns=[0, h, 2 * h],
               values={"total_power_w": [120.0, 150.0, 130.0], "it_power_w": [100.0, 100.0, None]})
    # window [0.5 h, 2.5 h): half of bucket 0, all of bucket 1; bucket 2 lacks IT and is left out
    got = energy_ratio([s], h // 2, 5 * h // 2, 3600)
    assert abs(got - (120 * 0.5 + 150 * 1.0) / (100 * 0.5 + 100 * 1.0)) < 1e-12
    assert energy_ratio([], 0, h, 3600) is None


def test_query_cache_single_flight():
    cache = QueryCache()
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(2)
        return 42

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", 7, compute))) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join()
    assert results == [42] * 20 and len(calls) == 1
    assert cache.get("k", 7, lambda: 0) == 42  # same tick: cached
    assert cache.get("k", 8, lambda: 43) == 43  # next tick: recomputed


def test_stale_while_revalidate_never_blocks_a_screen():
    cache = QueryCache()
    assert cache.get("snap", 1, lambda: "tick1", stale_ok=True) == "tick1"
    gate = threading.Event()
    started = threading.Event()

    def slow():
        started.set()
        gate.wait(5)
        return "tick2"

    warmer = threading.Thread(target=lambda: cache.get("snap", 2, slow, stale_ok=True))
    warmer.start()
    started.wait(2)
    t0 = time.monotonic()
    assert cache.get("snap", 2, lambda: "other", stale_ok=True) == "tick1"  # previous tick, at once
    assert time.monotonic() - t0 < 0.5
    gate.set()
    warmer.join()
    assert cache.get("snap", 2, lambda: "other", stale_ok=True) == "tick2"


def _source(tmp_path, clock=None):
    store = S.open_test_store(tmp_path / "s.sqlite")
    now = S.populate(store, int(clock() * NS) if clock else None)
    return DataSource(S.make_config(), store, **({"clock": clock} if clock else {})), store, now


def test_snapshot_values_and_pue(tmp_path):
    # A frozen clock at the moment the history was written: the expected PUE is computed for the
    # same instant, so a slow run cannot move the window between the two computations.
    now_ns = time.time_ns()
    ds, store, now = _source(tmp_path, clock=lambda: now_ns / NS)
    snap = ds.snapshot()
    assert snap["facility"]["total_power_w"] == S.NOW_TOTAL_W
    assert snap["facility"]["pue"] == S.NOW_TOTAL_W / S.NOW_IT_W
    assert not snap["facility_stale"]
    assert abs(ds.pue_period(86400) - S.expected_pue(now, 86400)) < 1e-4
    assert abs(ds.pue_period(30 * 86400) - S.expected_pue(now, 30 * 86400)) < 1e-4
    r1 = next(r for r in snap["racks"] if r["rack"] == "R01")
    assert r1["inlet_c"] == 22.0 and r1["power_w"] == 2 * 3 * 8.0 * 230.0 * 0.95
    opt = snap["optimizer"]
    assert opt["mode"] == "enforce" and opt["gpus_capped"] == len(S.RACKS) * 2
    assert opt["saving_now_w"] == 150.0 * len(S.RACKS) * 2
    store.close()


def test_savings_come_from_the_cycle_rows_when_the_daemon_writes_them(tmp_path):
    """The daemon's cycle row states the whole facility's saving; its decision rows (150 W each
    here, from populate) repeat shares of it. Shown: the newest cycle's figure now, and today's
    cycles × the optimizer interval, not cycles plus decisions."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    noon = datetime.now(ZoneInfo("Asia/Seoul")).replace(hour=12, minute=0, second=0, microsecond=0)
    now_ns = int(noon.timestamp()) * NS
    ds, store, _ = _source(tmp_path, clock=lambda: now_ns / NS)
    every = float(ds.config.optimizer.interval_s)
    cycle = {"site": S.SITE, "host": "", "uuid": "", "action": "cycle"}
    store.write([Point("optimizer", cycle, {"est_saving_w": 4000.0, "mode": "enforce", "lease_s": 300.0},
                       now_ns - int(3 * every) * NS),
                 Point("optimizer", cycle, {"est_saving_w": 5000.0, "mode": "enforce", "lease_s": 300.0},
                       now_ns - int(every) * NS)])
    store.flush()
    opt = ds.snapshot()["optimizer"]
    assert opt["saving_now_w"] == 5000.0
    assert opt["saved_today_kwh"] == pytest.approx((4000.0 + 5000.0) * every / 3.6e6)
    store.close()


def test_many_screens_cost_one_set_of_queries_per_tick(tmp_path):
    now = [time.time()]
    ds, store, _ = _source(tmp_path, clock=lambda: now[0])
    from dashboards.pages import make_ctx, overview

    overview.update(make_ctx(ds, ""))
    one = ds.store.calls
    assert one > 0
    threads = [threading.Thread(target=lambda: overview.update(make_ctx(ds, "?lang=ko"))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ds.store.calls == one  # 20 more screens in the same tick: no new store query
    now[0] += ds.refresh_s  # next tick: the latest values are read again, once
    overview.update(make_ctx(ds, ""))
    second = ds.store.calls - one
    assert 0 < second <= one
    store.close()


def test_stale_after_two_poll_intervals(tmp_path):
    ds, store, now = _source(tmp_path)
    assert not ds.stale("facility", now, now + 119 * NS)  # SNMP interval 60 s
    assert ds.stale("facility", now, now + 121 * NS)
    assert not ds.stale("gpu", now, now + 59 * NS)  # GPU interval 30 s
    assert ds.stale("gpu", now, now + 61 * NS)
    assert ds.stale("env", None, now)
    store.close()


def test_quarter_in_site_zone():
    # 2026-06-30 16:00 UTC is already 2026-07-01 01:00 in Seoul: Q3 there
    ts = 1782835200.0
    assert quarter_of(ts, "Asia/Seoul") == "2026Q3"
    assert quarter_of(ts, "UTC") == "2026Q2"
    assert quarter_of(ts, "Asia/Seoul", -3) == "2025Q4"


def test_gc_paused_nests_and_restores():
    import gc

    from dashboards.data import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer build still runs
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left off when it was off
    finally:
        gc.enable()


def test_snapshot_from_a_read_only_reader_sees_new_series(tmp_path):
    """The dashboard's read-only store loads series per measurement when first asked, and picks up
    series another process creates later (a new rack's PDU) on the next tick."""
    import pytest

    sqlite = pytest.importorskip("dcim.store.sqlite")
    from dcim.metrics import Point

    now = [time.time()]
    path = tmp_path / "dcim.sqlite"
    writer = sqlite.SqliteStore(path)
    now_ns = S.populate(writer)
    reader = sqlite.SqliteStore(path, readonly=True)
    ds = DataSource(S.make_config(), reader, clock=lambda: now[0])
    snap = ds.snapshot()
    pdus = {p["pdu"] for p in snap["pdus"] if p["power_w"] is not None}
    assert "pdu-new-a" not in pdus
    writer.write([Point("pdu", {"site": S.SITE, "room": "hall-1", "rack": "R01", "pdu": "pdu-new-a", "feed": "A"},
                        {"power_w": 1000.0, "current_a": 4.0}, now_ns + NS)])
    now[0] += ds.refresh_s
    snap = ds.snapshot()
    new = next(p for p in snap["pdus"] if p["pdu"] == "pdu-new-a")
    assert new["power_w"] == 1000.0
    assert {p["pdu"] for p in snap["pdus"] if p["power_w"] is not None} == pdus | {"pdu-new-a"}
    reader.close()
    writer.close()
