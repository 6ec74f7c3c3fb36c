"""SqliteStore's month rows (``month_<m>``, kept by maintain() in the store's zone) on the
quarter of tests/store/month_data.py. Every read of whole months is compared with the same
read through the store interface's defaults (``Store.counter_increase`` from counter_days,
``Store.bucket_stats`` from query(): SQLite's rollups by another path), and with the same
store in another zone, which cannot use the rows; the month path must be the one taken.
"""

from __future__ import annotations

import pytest

from dcim.metrics import Point
from dcim.report.periods import month, quarter
from dcim.store.base import Store
from dcim.store.sqlite import SqliteStore
from tests.store.month_data import DAY, HOUR, NOW, PEAKS, POINTS, TAGS, S, periods, same_increase, same_stats

FIELDS_HOURLY = ("power_w", "util_pct")
FIELDS_COUNTER = ("energy_j", "ecc_corrected")


@pytest.fixture(params=["Asia/Seoul", "America/New_York"])
def store(request, tmp_path):
    s = SqliteStore(tmp_path / "m.sqlite", timezone=request.param, raw_retention_days=1e4)
    s.write(POINTS)
    s.maintain(NOW)
    yield s
    s.close()


def month_reads(store) -> list:
    """Record each call of the month rows' reader and whether it answered."""
    seen = []
    real = store._month_results
    store._month_results = lambda *a, **k: (lambda r: (seen.append(r is not None), r)[1])(real(*a, **k))
    return seen


def test_month_rows_hold_the_months_of_the_zone(store):
    zone = store.timezone
    rows = store._conn.execute("SELECT DISTINCT zone, ts FROM month_gpu ORDER BY ts").fetchall()
    # The data runs from 29 September to 2 January: September to December are over at NOW.
    assert rows == [(zone, month(m, zone).start_ns) for m in ("2026-09", "2026-10", "2026-11", "2026-12")]
    assert store._conn.execute("SELECT value FROM meta WHERE key = ?", (f"mo_to:gpu:{zone}",)).fetchone() == \
        (month("2027-01", zone).start_ns,)


@pytest.mark.parametrize("field", FIELDS_COUNTER)
def test_counter_increase_of_whole_months_matches_the_default(store, field):
    for start, end in periods(store.timezone):
        for group_by, where in [(("uuid",), None), (("uuid", "host", "rack"), {"uuid": ["GPU-2", "GPU-3"]})]:
            seen = month_reads(store)
            got = store.counter_increase("gpu", field, start, end, group_by=group_by, where=where)
            del store._month_results
            assert seen == [True]
            want = Store.counter_increase(store, "gpu", field, start, end, group_by=group_by, where=where)
            assert same_increase(got, want), (start, end, got, want)
    q = quarter("2026Q4", store.timezone)
    got = store.counter_increase("gpu", "energy_j", q.start_ns, q.end_ns, group_by=("uuid",))
    assert [got[(g,)][1] for g in TAGS] == [1, 1, 1]  # the resets reached the comparison


@pytest.mark.parametrize("field", FIELDS_HOURLY)
def test_bucket_stats_of_whole_months_match_the_default(store, field):
    for start, end in periods(store.timezone):
        for group_by, combine in [(("uuid",), "sum"), (("uuid", "rack"), "mean"), (("host",), "each")]:
            seen = month_reads(store)
            got = store.bucket_stats("gpu", field, start, end, 3600, group_by=group_by, combine=combine)
            del store._month_results
            assert seen == [True]
            want = Store.bucket_stats(store, "gpu", field, start, end, 3600, group_by=group_by, combine=combine)
            assert same_stats(got, want), (start, end, group_by, combine, got, want)
    q = quarter("2026Q4", store.timezone)
    st = store.bucket_stats("gpu", "power_w", q.start_ns, q.end_ns, 3600, group_by=("uuid",))[("GPU-1",)]
    assert (st.peak, st.peak_ns) == (900.0, PEAKS[0])  # a tie between months: the earlier hour


def test_period_figures_read_the_month_rows_once(store):
    q = quarter("2026Q4", store.timezone)
    key = ("uuid", "host", "rack")
    seen = month_reads(store)
    got = store.period_figures("gpu", q.start_ns, q.end_ns, counters=list(FIELDS_COUNTER), hourly=list(FIELDS_HOURLY),
                               group_by=key)
    del store._month_results
    assert seen == [True]
    want = Store.period_figures(store, "gpu", q.start_ns, q.end_ns, counters=list(FIELDS_COUNTER),
                                hourly=list(FIELDS_HOURLY), group_by=key)
    assert all(same_increase(got[0][f], want[0][f]) for f in FIELDS_COUNTER)
    assert all(same_stats(got[1][f], want[1][f]) for f in FIELDS_HOURLY)


def test_reads_the_month_rows_cannot_serve(store, tmp_path):
    """Not whole months, a month not over at the last maintain(), raw rows waiting for
    maintain(), or another zone: the days, with the same answers."""
    zone = store.timezone
    q = quarter("2026Q4", zone)
    jan = month("2027-01", zone)
    other = SqliteStore(store.path, readonly=True, timezone="UTC" if zone != "UTC" else "Asia/Seoul")
    for reader, start, end in [(store, q.start_ns + 14 * DAY, q.end_ns), (store, q.start_ns, jan.end_ns),
                               (other, q.start_ns, q.end_ns)]:
        seen = month_reads(reader)
        got = reader.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        stats = reader.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("uuid",))
        del reader._month_results
        assert True not in seen
        assert same_increase(got, Store.counter_increase(store, "gpu", "energy_j", start, end, group_by=("uuid",)))
        assert same_stats(stats, Store.bucket_stats(store, "gpu", "power_w", start, end, 3600, group_by=("uuid",)))
    other.close()
    # A late point in November, not rolled yet: the quarter reads the days (and sees it) until maintain().
    late = Point("gpu", TAGS["GPU-1"], {"power_w": 5000.0}, month("2026-11", zone).start_ns + 3 * DAY + 7 * S)
    store._next_maintain = float("inf")  # write() must not run maintain() itself here
    store.write([late])
    seen = month_reads(store)
    st = store.bucket_stats("gpu", "power_w", q.start_ns, q.end_ns, 3600, group_by=("uuid",))
    del store._month_results
    assert True not in seen and st[("GPU-1",)].peak_ns == late.time_ns - late.time_ns % HOUR


def test_late_points_rewrite_their_months(store):
    """maintain() writes again the months of the series whose late points it rolls up: a
    point in November (peak and counter reset) and one for a GPU in September."""
    zone = store.timezone
    nov = month("2026-11", zone)
    t = nov.start_ns + 9 * DAY + 5 * HOUR + 3 * S
    store.write([Point("gpu", TAGS["GPU-3"], {"power_w": 4000.0, "energy_j": 1.0}, t),
                 Point("gpu", TAGS["GPU-3"], {"power_w": 10.0, "energy_j": 2.0}, month("2026-09", zone).end_ns - HOUR)])
    store.maintain(NOW + HOUR)
    for start, end in [(nov.start_ns, nov.end_ns), (month("2026-09", zone).start_ns, quarter("2026Q4", zone).end_ns)]:
        seen = month_reads(store)
        got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        stats = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("uuid",))
        del store._month_results
        assert seen == [True, True]
        assert same_increase(got, Store.counter_increase(store, "gpu", "energy_j", start, end, group_by=("uuid",)))
        assert same_stats(stats, Store.bucket_stats(store, "gpu", "power_w", start, end, 3600, group_by=("uuid",)))
        assert stats[("GPU-3",)].peak_ns == t - t % HOUR


def test_months_close_as_time_passes_and_a_file_gets_its_past_months(tmp_path):
    """A store maintained while the quarter runs writes each month once it is over; a file
    without month rows (opened by a zone it never had) gets every past month at its first
    maintain()."""
    zone = "Asia/Seoul"
    store = SqliteStore(tmp_path / "t.sqlite", timezone=zone, raw_retention_days=1e4)
    months = [month(m, zone) for m in ("2026-10", "2026-11", "2026-12")]
    for now in (months[0].start_ns + 5 * DAY, months[1].start_ns + HOUR, months[2].start_ns + 20 * DAY, NOW):
        store.write([p for p in POINTS if p.time_ns < now])
        store.maintain(now)
        written = [t for (t,) in store._conn.execute("SELECT DISTINCT ts FROM month_gpu ORDER BY ts")]
        assert written == [m.start_ns for m in [month("2026-09", zone)] + months if m.end_ns <= now]
    store.close()
    other = SqliteStore(tmp_path / "t.sqlite", timezone="America/New_York", raw_retention_days=1e4)
    other.maintain(NOW)
    q = quarter("2026Q4", "America/New_York")
    seen = month_reads(other)
    got = other.counter_increase("gpu", "energy_j", q.start_ns, q.end_ns, group_by=("uuid",))
    assert seen == [True]
    assert same_increase(got, Store.counter_increase(other, "gpu", "energy_j", q.start_ns, q.end_ns,
                                                     group_by=("uuid",)))
    other.close()


def test_zones_whose_months_start_inside_an_hour_get_no_rows(tmp_path):
    store = SqliteStore(tmp_path / "k.sqlite", timezone="Asia/Kolkata", raw_retention_days=1e4)
    store.write(POINTS)
    store.maintain(NOW)
    assert store._conn.execute("SELECT count(*) FROM month_gpu").fetchone() == (0,)
    q = quarter("2026Q4", "Asia/Kolkata")
    got = store.counter_increase("gpu", "energy_j", q.start_ns, q.end_ns, group_by=("uuid",))
    assert same_increase(got, Store.counter_increase(store, "gpu", "energy_j", q.start_ns, q.end_ns,
                                                     group_by=("uuid",)))
    store.close()



def test_writers_do_not_wait_for_the_months(tmp_path):
    """The month upkeep reads on a connection of its own, outside the write transaction: a
    write while it computes goes through (at 32,000 GPUs a month is ~10 s of reading)."""
    import threading
    import time

    store = SqliteStore(tmp_path / "w.sqlite", timezone="Asia/Seoul", raw_retention_days=1e4)
    store.write(POINTS[:3000])
    computing, release = threading.Event(), threading.Event()
    real = store._month_rows

    def slow(*a, **k):
        computing.set()
        release.wait(30)
        return real(*a, **k)

    store._month_rows = slow
    upkeep = threading.Thread(target=store.maintain, args=(NOW,))
    upkeep.start()
    try:
        assert computing.wait(30)
        t0 = time.monotonic()
        store.write([Point("gpu", TAGS["GPU-1"], {"power_w": 1.0}, NOW - DAY)])
        waited = time.monotonic() - t0
    finally:
        release.set()
        upkeep.join(60)
    assert waited < 5 and not upkeep.is_alive()
    assert store._conn.execute("SELECT count(*) FROM month_gpu").fetchone()[0] > 0
    store.close()
