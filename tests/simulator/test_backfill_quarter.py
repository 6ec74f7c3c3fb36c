"""The demo's backfill covers the current quarter to date (simulator/backfill.py): it starts at the
quarter's first local midnight, hourly (every GPU each hour) before the recent days and every
5 minutes in them, one twin throughout (counters never step back at the seam), and a report over
the backfilled days finds every hour covered."""

from __future__ import annotations

import time
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from dcim.config import load_config
from simulator.backfill import backfill_quarter, quarter_start_ns

SEOUL = ZoneInfo("Asia/Seoul")
H = 3600 * 10**9


def seoul_ns(*args) -> int:
    return int(datetime(*args, tzinfo=SEOUL).timestamp()) * 10**9


def test_quarter_start_is_local_midnight_of_the_quarters_first_day():
    assert quarter_start_ns(seoul_ns(2026, 12, 7, 6, 30), "Asia/Seoul") == seoul_ns(2026, 10, 1)
    # 2026-09-30 15:00 UTC is already 1 October in Seoul
    assert quarter_start_ns(seoul_ns(2026, 9, 30, 23, 59), "Asia/Seoul") == seoul_ns(2026, 7, 1)
    assert quarter_start_ns(seoul_ns(2026, 10, 1, 0, 0), "Asia/Seoul") == seoul_ns(2026, 10, 1)
    # ... and still 30 September in UTC: 1 July 00:00 UTC, 9 h after Seoul's
    assert quarter_start_ns(seoul_ns(2026, 10, 1, 0, 0), "UTC") == seoul_ns(2026, 7, 1) + 9 * H


def test_backfill_covers_the_quarter_to_date(tmp_path):
    from dcim.report import build_report, date_range
    from dcim.store.sqlite import SqliteStore

    cfg = load_config()
    end_ns = seoul_ns(2026, 10, 3, 12, 0)
    store = SqliteStore(tmp_path / "q.sqlite")
    try:
        twin = backfill_quarter(cfg, store, 1.0, end_ns=end_ns)
        assert twin.now_ns == end_ns
        quarter = seoul_ns(2026, 10, 1)
        [facility] = store.query("facility", ["total_power_w"], quarter - H, end_ns + 1, agg="count", every_s=3600)
        counts = dict(zip(facility.times_ns, facility.values["total_power_w"]))
        assert min(counts) == quarter                       # from the quarter's first hour
        early = [counts.get(quarter + k * H) for k in range(35)]
        assert early == [1] * 35                             # hourly before the recent day
        assert counts[end_ns - 2 * H] == 12                  # 5-minute steps in it
        [gpus] = store.query("gpu", ["power_w"], quarter, end_ns - 24 * H, agg="count", every_s=3600)
        assert set(gpus.values["power_w"]) == {512}          # every GPU, every hour
        [meter] = store.query("meter", ["energy_kwh"], quarter, end_ns + 1, agg="max", every_s=3600,
                              where={"role": "facility_total"})
        kwh = meter.values["energy_kwh"]
        assert all(b >= a for a, b in pairwise(kwh))     # one twin: the counter runs on across the seam
        rows = build_report(store, cfg, date_range("2026-10-01", "2026-10-03", cfg.site.timezone), by="rack")
    finally:
        store.close()
    assert rows and all(r["coverage_pct"] >= 99.0 for r in rows), [(r.get("rack"), r["coverage_pct"]) for r in rows]
    assert all(r["it_kwh"] > 0 for r in rows)


def test_asked_for_days_are_exactly_those(tmp_path):
    """dcim up --backfill-days D: D days, not the quarter (a quick start, as tests and trials want)."""
    from dcim.store.sqlite import SqliteStore

    cfg = load_config()
    end_ns = seoul_ns(2026, 11, 20, 12, 0)
    store = SqliteStore(tmp_path / "d.sqlite")
    try:
        backfill_quarter(cfg, store, 0.25, end_ns=end_ns, whole_quarter=False)
        [facility] = store.query("facility", ["total_power_w"], seoul_ns(2026, 10, 1), end_ns + 1, agg="count")
    finally:
        store.close()
    assert facility.values["total_power_w"] == [6 * 12 + 1]   # 6 h of 5-minute steps, both ends: no quarter


def _figures(store, start_ns: int, end_ns: int) -> dict:
    """What a report and the energy page read, hour by hour: counters, GPU power, facility power."""
    out = {}
    for m, field, agg, where in [("meter", "energy_kwh", "max", {"role": "facility_total"}),
                                 ("gpu", "power_w", "sum", None), ("gpu", "energy_j", "max", None),
                                 ("facility", "total_power_w", "mean", None), ("pdu", "energy_kwh", "max", None)]:
        series = store.query(m, [field], start_ns, end_ns, agg=agg, every_s=3600, where=where)
        out[(m, field)] = [(s.times_ns, s.values[field]) for s in series]
    return out


def test_deferred_early_part_writes_what_one_run_writes(tmp_path):
    """dcim up serves after the recent days; the quarter before them is written later by
    fill_early (simulator/quarter_fill.py, in a process of its own). The store then holds the
    very values one uninterrupted run writes, the counters running on across the seam."""
    from dcim.store.sqlite import SqliteStore
    from simulator.backfill import fill_early

    cfg = load_config()
    end_ns = seoul_ns(2026, 10, 2, 12, 0)
    quarter = seoul_ns(2026, 10, 1)
    one, split = SqliteStore(tmp_path / "one.sqlite"), SqliteStore(tmp_path / "split.sqlite")
    try:
        backfill_quarter(cfg, one, 0.5, end_ns=end_ns)
        parts = []
        twin = backfill_quarter(cfg, split, 0.5, end_ns=end_ns, defer_early=parts.append)
        assert twin.now_ns == end_ns
        [part] = parts
        assert (part.start_ns, part.end_ns) == (quarter, end_ns - 12 * H)
        [facility] = split.query("facility", ["total_power_w"], quarter - H, end_ns + 1, agg="count", every_s=3600)
        assert min(facility.times_ns) == part.end_ns          # served with the recent half day only
        fill_early(cfg, split, part)
        assert _figures(split, quarter, end_ns + 1) == _figures(one, quarter, end_ns + 1)
        [meter] = split.query("meter", ["energy_kwh"], quarter, end_ns + 1, agg="max", every_s=3600,
                              where={"role": "facility_total"})
        assert len(meter.times_ns) == 37
        assert all(b >= a for a, b in pairwise(meter.values["energy_kwh"]))
    finally:
        one.close()
        split.close()


def test_quarter_fill_process(tmp_path):
    """The background process dcim up starts: it writes the part into the config's store, logs
    its progress and says done; a bad range is one line and exit 2."""
    import os
    import subprocess
    from pathlib import Path

    from dcim.store.sqlite import SqliteStore
    from simulator.backfill import EarlyPart
    from simulator.quarter_fill import command

    root = Path(__file__).resolve().parents[2]
    db = tmp_path / "dcim.sqlite"
    demo = (root / "deploy" / "demo.toml").read_text()
    assert 'path = "var/dcim.sqlite"' in demo
    cfg = tmp_path / "dcim.toml"
    cfg.write_text(demo.replace('path = "var/dcim.sqlite"', f'path = "{db}"'))
    env = {**os.environ, "PYTHONPATH": str(root)}
    part = EarlyPart(seoul_ns(2026, 10, 1), seoul_ns(2026, 10, 1, 6), 7)
    done = subprocess.run(command(part, str(cfg)), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "quarter backfill: done, 0.2 days" in done.stderr and "(50 %)" in done.stderr
    store = SqliteStore(db)
    try:
        [facility] = store.query("facility", ["total_power_w"], part.start_ns, part.end_ns + 1, agg="count")
    finally:
        store.close()
    assert facility.values["total_power_w"] == [7]            # 6 hourly steps, both ends
    bad = subprocess.run(command(EarlyPart(part.end_ns, part.start_ns, 7), str(cfg)), env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: --end-ns must be after --start-ns"


def test_the_fill_waits_out_a_store_locked_by_another_writer(tmp_path, monkeypatch, caplog):
    """SQLite's write lock held by another process' writer (the live collectors, their
    maintain()): the background fill's write waits and goes through once it is released, and
    each write is followed by a pause as long as it took (the fill never takes more than half
    the store's time)."""
    import logging
    import sqlite3
    import threading

    import dcim.store.sqlite as sqlite_mod
    from dcim.metrics import Point
    from dcim.store.sqlite import SqliteStore
    from simulator.quarter_fill import PacedStore

    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 100)  # production waits 10 s; same code path
    store = SqliteStore(tmp_path / "l.sqlite")
    store.write([Point("facility", {"site": "s"}, {"pue": 1.2}, seoul_ns(2026, 10, 1))])
    other = sqlite3.connect(tmp_path / "l.sqlite", check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")                     # another writer holds the lock
    release = threading.Timer(2.0, other.rollback)
    release.start()
    slept = []
    paced = PacedStore(store, sleep=lambda s: (slept.append(s), time.sleep(s)))
    try:
        with caplog.at_level(logging.INFO, logger="dcim.quarter_fill"):
            paced.write([Point("facility", {"site": "s"}, {"pue": 1.3}, seoul_ns(2026, 10, 1, 1))])
        [row] = store.query("facility", ["pue"], seoul_ns(2026, 10, 1), seoul_ns(2026, 10, 2), agg="count")
    finally:
        release.join()
        other.close()
        store.close()
    assert row.values["pue"] == [2]
    assert "the store is busy" in caplog.text
    assert paced.waited_s >= 1.0 and slept[:1] == [1.0]   # backed off, then wrote
    assert len(slept) >= 2 and slept[-1] > 0              # the duty pause after the write
