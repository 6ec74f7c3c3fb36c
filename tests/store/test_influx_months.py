"""InfluxStore's month rows (``m_month``, ``m_month_to_date``: dcim.store.influx.months, month_figures)
against the real influxd, on the quarter of tests/store/month_data.py. Every read of whole
months is compared with the same read on raw points (a store with ``use_rollups=False``), and
must come from the month rows; reads the rows cannot serve must not use them.
"""

from __future__ import annotations

import pytest

from dcim.metrics import Point
from dcim.report.periods import month, quarter
from dcim.store import month_figures
from dcim.store.influx import InfluxStore
from dcim.store.influx.layout import read_state, source
from tests.store.month_data import DAY, FIRST, HOUR, LAST, NOW, PEAKS, POINTS, TAGS, S, periods, same, same_increase, same_stats


@pytest.fixture(params=["Asia/Seoul", "America/New_York"])
def stores(request, influxd):
    """(a store in the zone, maintained, and a store on the same database reading raw only)."""
    import uuid as uuid_mod

    db = "t_" + uuid_mod.uuid4().hex[:12]
    store = InfluxStore(influxd.url, db, timezone=request.param)
    raw = InfluxStore(influxd.url, db, use_rollups=False, timezone=request.param)
    store.write(POINTS)
    store.maintain(NOW)
    yield store, raw
    store.execute(f'DROP DATABASE "{db}"')
    store.close()
    raw.close()


def statements(store) -> list[str]:
    """Record the InfluxQL the store sends from now on."""
    seen = []
    real = store.execute
    store.execute = lambda q, **kw: (seen.append(q), real(q, **kw))[1]
    return seen


# --- what maintain() writes ----------------------------------------------------------------

def test_month_starts_are_the_reports_months():
    """The rows' calendar is the report's: local midnight of the 1st, DST included."""
    for zone in ("Asia/Seoul", "America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata"):
        want = [month(f"{y}-{m:02d}", zone).start_ns for y, m in [(2026, k) for k in range(1, 13)] + [(2027, 1)]]
        assert month_figures.month_starts(zone, want[0], want[-1]) == want
        assert month_figures.month_starts(zone, want[0] + 1, want[-1] - 1) == want[1:-1]
        assert [month_figures.month_start(zone, t + k) for t in want for k in (0, DAY, 27 * DAY)] == \
            [t for t in want for _ in range(3)]
    ny = [month(m, "America/New_York").start_ns % DAY // HOUR for m in ("2026-10", "2026-11", "2026-12")]
    assert ny == [4, 4, 5]  # EDT, EDT (DST ends at 2:00 on 1 November), EST


def test_state_holds_the_zone_and_the_first_whole_month(stores):
    store, _ = stores
    st = read_state(store)["gpu"]
    # The data starts on 29 September (UTC): the first run holds September whole (nothing before).
    assert (st.mo_zone, st.mo_from_ns) == (store.timezone, month("2026-09", store.timezone).start_ns)


def packed(store, name: str = "gpu_month") -> dict:
    """{(series key, time): figures} of every series in the month rows *name* (a point per
    series and month, read back with plain InfluxQL)."""
    answer = store.execute(f"SELECT * FROM {source(store, name)} GROUP BY *")[0].get("series", [])
    out = {}
    for s in answer:
        assert s["tags"]["tz"] == store.timezone
        key = tuple(sorted((t, v) for t, v in s["tags"].items() if t != "tz" and v != ""))
        if not key:
            continue  # a month-to-date day kept with no series
        for row in s["values"]:
            assert (key, row[0]) not in out
            out[(key, row[0])] = {c: v for c, v in zip(s["columns"][1:], row[1:]) if v is not None}
    return out


def of(store, uuid: str, t: int, name: str = "gpu_month") -> dict:
    [figures] = [v for (key, at), v in packed(store, name).items() if ("uuid", uuid) in key and at == t]
    return figures



def test_month_rows_are_ordinary_points_influxql_reads(stores):
    """What an InfluxQL or Grafana user writes by hand: November's GPU energy summed over the
    GPUs, and one GPU's hours with power, straight from the month rows; equal to the raw reads."""
    store, raw = stores
    nov = month("2026-11", store.timezone)
    cond = f"\"tz\" = '{store.timezone}' AND time >= {nov.start_ns} AND time < {nov.end_ns}"
    [series] = store.execute(f'SELECT sum("energy_j_inc") FROM {source(store, "gpu_month")} WHERE {cond}')[0]["series"]
    per_gpu = raw.counter_increase("gpu", "energy_j", nov.start_ns, nov.end_ns, group_by=("uuid",))
    assert len(per_gpu) == 3 and same(series["values"][0][1], sum(inc for inc, _ in per_gpu.values()))
    [series] = store.execute(f'SELECT "power_w_hn" FROM {source(store, "gpu_month")} '
                             f"WHERE {cond} AND \"uuid\" = 'GPU-2'")[0]["series"]
    hours = raw.bucket_stats("gpu", "power_w", nov.start_ns, nov.end_ns, 3600, group_by=("uuid",))[("GPU-2",)]
    assert series["values"] == [[nov.start_ns, hours.buckets]]

def test_month_rows_match_raw_figures_of_the_month(stores):
    """The stored figures of one GPU's November are the raw reads of that month."""
    store, raw = stores
    nov = month("2026-11", store.timezone)
    row = of(store, "GPU-1", nov.start_ns)
    want_inc = raw.counter_increase("gpu", "energy_j", nov.start_ns, nov.end_ns, group_by=("uuid",))[("GPU-1",)]
    assert same(row["energy_j_inc"], want_inc[0]) and (row["energy_j_rst"], want_inc[1]) == (1, 1)
    mine = [p for p in POINTS if p.tags["uuid"] == "GPU-1" and nov.start_ns <= p.time_ns < nov.end_ns]
    assert (row["energy_j_first"], row["energy_j_last"]) == (mine[0].fields["energy_j"], mine[-1].fields["energy_j"])
    want = raw.bucket_stats("gpu", "power_w", nov.start_ns, nov.end_ns, 3600, group_by=("uuid",))[("GPU-1",)]
    assert (row["power_w_hn"], row["power_w_hmax"], row["power_w_hmaxts"]) == (want.buckets, want.peak, want.peak_ns)
    assert same(float(row["power_w_hsum"]), want.total)


# --- reads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["energy_j", "ecc_corrected"])
def test_counter_increase_of_whole_months_matches_raw(stores, field):
    store, raw = stores
    for start, end in periods(store.timezone):
        for group_by, where in [(("uuid",), None), (("uuid", "host", "rack"), {"uuid": ["GPU-2", "GPU-3"]})]:
            seen = statements(store)
            got = store.counter_increase("gpu", field, start, end, group_by=group_by, where=where)
            want = raw.counter_increase("gpu", field, start, end, group_by=group_by, where=where)
            assert same_increase(got, want), (start, end, got, want)
            assert any('"gpu_month"' in q for q in seen) and not any('"gpu_1d"' in q for q in seen)
            del store.execute
    q = quarter("2026Q4", store.timezone)
    got = store.counter_increase("gpu", field, q.start_ns, q.end_ns, group_by=("uuid",))
    if field == "energy_j":
        assert [got[(g,)][1] for g in TAGS] == [1, 1, 1]  # the resets reached the comparison
    else:
        assert all(got[(g,)][1] > 10 and isinstance(got[(g,)][0], float) for g in TAGS)


@pytest.mark.parametrize("field", ["power_w", "util_pct"])
def test_bucket_stats_of_whole_months_match_raw(stores, field):
    """Groups of one series, or each series added up: from the month rows; each series added
    up per group where the days' group rows serve (one grouping tag, or none: a row per group
    and day, not a row per series and day)."""
    store, raw = stores
    for start, end in periods(store.timezone):
        for group_by, combine in [(("uuid", "host"), "sum"), (("uuid", "rack"), "mean"), (("host", "gpu"), "each"),
                                  (("rack",), "each"), ((), "each"), (("uuid",), "sum")]:
            seen = statements(store)
            got = store.bucket_stats("gpu", field, start, end, 3600, group_by=group_by, combine=combine)
            want = raw.bucket_stats("gpu", field, start, end, 3600, group_by=group_by, combine=combine)
            assert same_stats(got, want), (start, end, group_by, combine, got, want)
            months = combine != "each" or len(group_by) > 1
            assert any('"gpu_month"' in q for q in seen) == months
            assert any('"gpu_1d_by"' in q for q in seen) == (not months)
            del store.execute
    q = quarter("2026Q4", store.timezone)
    st = store.bucket_stats("gpu", "power_w", q.start_ns, q.end_ns, 3600, group_by=("uuid",))[("GPU-1",)]
    assert (st.peak, st.peak_ns) == (900.0, PEAKS[0])  # a tie between months: the earlier hour


def test_period_figures_read_every_field_at_once(stores):
    """The report's per-GPU figures in one read of the month rows, equal to the per-field raw
    reads; where the months cannot serve, the same figures from a call per field."""
    store, raw = stores
    key = ("uuid", "host", "rack")
    for start, end in periods(store.timezone)[:2] + [(FIRST + DAY, LAST - DAY)]:
        seen = statements(store)
        counters, hourly = store.period_figures("gpu", start, end, counters=["energy_j", "ecc_corrected"],
                                                hourly=["power_w", "util_pct"], group_by=key)
        del store.execute
        for f in ("energy_j", "ecc_corrected"):
            assert same_increase(counters[f], raw.counter_increase("gpu", f, start, end, group_by=key))
        for f in ("power_w", "util_pct"):
            assert same_stats(hourly[f], raw.bucket_stats("gpu", f, start, end, 3600, group_by=key))
        months = [q for q in seen if '"gpu_month"' in q]
        if end == LAST - DAY:  # not whole months: a read per field, from the days
            assert not months and seen
        else:
            assert len(seen) == 1 and months == seen


def test_summed_groups_of_several_series_do_not_use_month_rows(stores):
    """A rack's power summed hour by hour needs its hours, which a month row does not keep."""
    store, raw = stores
    start, end = periods(store.timezone)[0]
    got = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("rack",))
    assert same_stats(got, raw.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("rack",)))


def test_reads_the_month_rows_cannot_serve_read_the_days(stores):
    store, raw = stores
    zone = store.timezone
    q = quarter("2026Q4", zone)
    other = InfluxStore(store.url, store.database, timezone="UTC" if zone != "UTC" else "Asia/Seoul")
    cases = [(store, q.start_ns + 14 * DAY, q.end_ns),  # not whole months
             (store, q.start_ns, q.end_ns - HOUR),
             (other, q.start_ns, q.end_ns)]  # the rows follow another zone's calendar
    for reader, start, end in cases:
        seen = statements(reader)
        got = reader.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        stats = reader.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("uuid",))
        del reader.execute
        assert not any('_month"' in s for s in seen), (start, end)
        assert same_increase(got, raw.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",)))
        assert same_stats(stats, raw.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("uuid",)))
    other.close()


def test_months_before_the_first_rolled_day_serve_only_without_raw_points_there(stores):
    """A year to December reads September on from the month rows (nothing before the data);
    after a backfill into August, before the first rolled day, it reads the days (which read
    raw points there), and so does September, which holds days before that day."""
    store, raw = stores
    zone = store.timezone
    year = (month("2026-01", zone).start_ns, month("2027-01", zone).start_ns)
    sep = (month("2026-09", zone).start_ns, month("2026-10", zone).start_ns)
    seen = statements(store)
    got = store.counter_increase("gpu", "energy_j", *year, group_by=("uuid",))
    del store.execute
    assert any('"gpu_month"' in q for q in seen)
    assert same_increase(got, raw.counter_increase("gpu", "energy_j", *year, group_by=("uuid",)))
    store.write([Point("gpu", TAGS["GPU-3"], {"energy_j": 5.0, "power_w": 50.0}, FIRST - 20 * DAY)])
    for start, end in (year, sep):
        seen = statements(store)
        got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        stats = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("uuid",))
        del store.execute
        assert not any('_month"' in q for q in seen)
        assert same_increase(got, raw.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",)))
        assert same_stats(stats, raw.bucket_stats("gpu", "power_w", start, end, 3600, group_by=("uuid",)))
        assert ("GPU-3",) in stats


def test_a_month_whose_last_day_is_not_rolled_reads_the_days(influx_store):
    store = InfluxStore(influx_store.url, influx_store.database, timezone="Asia/Seoul")
    store.write(POINTS)
    q = quarter("2026Q4", "Asia/Seoul")
    store.maintain(q.end_ns + HOUR)  # the day holding the quarter's end (15:00 UTC) is not closed
    seen = statements(store)
    store.counter_increase("gpu", "energy_j", q.start_ns, q.end_ns, group_by=("uuid",))
    assert not any('_month"' in s for s in seen)
    dec = month("2026-11", "Asia/Seoul")
    store.counter_increase("gpu", "energy_j", q.start_ns, dec.end_ns, group_by=("uuid",))
    assert any('"gpu_month"' in s for s in seen)  # October and November are closed
    store.close()


def test_zones_whose_months_start_inside_an_hour_read_the_days(influx_store):
    """Asia/Kolkata (UTC+5:30): a quarter's hour at 18:00 UTC is one bucket across two months."""
    store = InfluxStore(influx_store.url, influx_store.database, timezone="Asia/Kolkata")
    raw = InfluxStore(influx_store.url, influx_store.database, use_rollups=False)
    store.write(POINTS)
    store.maintain(NOW)
    q = quarter("2026Q4", "Asia/Kolkata")
    seen = statements(store)
    got = store.bucket_stats("gpu", "power_w", q.start_ns, q.end_ns, 3600, group_by=("uuid",))
    assert not any('_month"' in s for s in seen)
    assert same_stats(got, raw.bucket_stats("gpu", "power_w", q.start_ns, q.end_ns, 3600, group_by=("uuid",)))
    store.close()
    raw.close()


# --- upkeep --------------------------------------------------------------------------------

def test_maintain_run_by_run_writes_the_same_months_as_one_run(influxd, stores):
    """Month rows made across many maintain() runs, each resuming from the day before's
    month-to-date points, equal those of one run over everything, float for float."""
    store, _ = stores
    import uuid as uuid_mod

    db = "t_" + uuid_mod.uuid4().hex[:12]
    stepwise = InfluxStore(influxd.url, db, timezone=store.timezone)
    stepwise.write(POINTS)
    for now in range(FIRST + 3 * DAY + HOUR, NOW, 9 * DAY):
        stepwise.maintain(now)
    stepwise.maintain(NOW)
    try:
        assert packed(stepwise) == packed(store)
        one, many = packed(store, "gpu_month_to_date"), packed(stepwise, "gpu_month_to_date")
        assert one and all(many[k] == v for k, v in one.items())
        assert len(packed(store)) == 4 + 4 + 3  # GPU-1 and -2: Sep (from the 29th) to Dec; GPU-3: Oct to Dec
    finally:
        stepwise.execute(f'DROP DATABASE "{db}"')
        stepwise.close()


def test_late_points_update_the_months(stores):
    """A point written late into the last days (within the re-roll window) reaches the
    month-to-date rows at the next maintain(): January so far is what raw points say."""
    store, raw = stores
    t = LAST - 2 * DAY + 5 * HOUR + 7 * S  # 1 January in both zones
    store.write([Point("gpu", TAGS["GPU-1"], {"power_w": 2000.0, "energy_j": 1.0}, t)])  # a peak, and a dip
    store.maintain(NOW + HOUR)
    jan = month("2027-01", store.timezone)
    day = LAST - DAY  # the month so far at the end of 2 January: [January's start, 3 January 00:00 UTC)
    row = of(store, "GPU-1", day, "gpu_month_to_date")
    want = raw.counter_increase("gpu", "energy_j", jan.start_ns, day + DAY, group_by=("uuid",))[("GPU-1",)]
    assert same(float(row["energy_j_inc"]), want[0]) and row["energy_j_rst"] == want[1]
    st = raw.bucket_stats("gpu", "power_w", jan.start_ns, day + DAY, 3600, group_by=("uuid",))[("GPU-1",)]
    assert (row["power_w_hn"], row["power_w_hmax"], row["power_w_hmaxts"]) == (st.buckets, st.peak, st.peak_ns)
    assert st.peak_ns == t - t % HOUR  # the late point's hour is January's peak
    assert same(float(row["power_w_hsum"]), st.total)


def test_month_to_date_is_kept_for_the_days_a_later_run_resumes_from(stores):
    """Only the last reroll_days + 2 days of a run keep their month-to-date packs (a later run
    starts at most reroll_days + 1 days before the end), an empty one too."""
    store, _ = stores
    kept = sorted({t for _, t in packed(store, "gpu_month_to_date")})
    assert kept == [LAST - (store.reroll_days + 1 - k) * DAY for k in range(store.reroll_days + 2)]  # LAST: the last day
    # Days of nothing, then a point on 12 February 2027: 9-11 February are kept, empty (February
    # starts on 31 January 15:00 UTC in Seoul, 1 February 05:00 in New York).
    store.write([Point("gpu", TAGS["GPU-1"], {"power_w": 1.0}, LAST + 40 * DAY)])
    store.maintain(LAST + 41 * DAY + HOUR)
    for day in (LAST + 37 * DAY, LAST + 40 * DAY):
        answer = store.execute(f'SELECT * FROM {source(store, "gpu_month_to_date")} WHERE time = {day} GROUP BY *')[0]
        series = answer["series"]
        empty = [s for s in series if not any(v for t, v in s["tags"].items() if t != "tz")]
        if day == LAST + 37 * DAY:
            assert len(series) == 1 and len(empty) == 1  # the marker alone
        else:
            assert series and not empty


def test_a_replay_far_back_rolls_from_its_months_first_day(stores):
    """Points written for a day long rolled (a spool replay after an outage): maintain() rolls
    from the first day of that month, whose month-to-date the rollups no longer keep, and the
    month's figures include the points."""
    store, raw = stores
    nov = month("2026-11", store.timezone)
    t = nov.start_ns + 11 * DAY + 3 * HOUR + 5 * S
    store.write([Point("gpu", TAGS["GPU-1"], {"power_w": 3000.0, "energy_j": 2.0}, t)])
    seen = statements(store)
    store.maintain(NOW + HOUR)
    del store.execute
    days = sorted({int(q.split("time >= ")[1].split()[0]) // DAY * DAY for q in seen
                   if q.startswith("SELECT ") and 'FROM "gpu" WHERE time >= ' in q and "GROUP BY" not in q})
    assert days[0] == nov.start_ns - nov.start_ns % DAY  # the UTC day the month starts in
    st = store.bucket_stats("gpu", "power_w", nov.start_ns, nov.end_ns, 3600, group_by=("uuid",))
    assert same_stats(st, raw.bucket_stats("gpu", "power_w", nov.start_ns, nov.end_ns, 3600, group_by=("uuid",)))
    assert st[("GPU-1",)].peak_ns == t - t % HOUR
    q = quarter("2026Q4", store.timezone)
    assert same_increase(store.counter_increase("gpu", "energy_j", q.start_ns, q.end_ns, group_by=("uuid",)),
                         raw.counter_increase("gpu", "energy_j", q.start_ns, q.end_ns, group_by=("uuid",)))


def test_a_series_gone_mid_month_keeps_its_month(stores):
    """GPU-3 stops on 16 December: its December holds what it had (the stepwise test above
    resumes inside December after it stopped, so its month so far is carried)."""
    store, raw = stores
    dec = month("2026-12", store.timezone)
    got = store.counter_increase("gpu", "energy_j", dec.start_ns, dec.end_ns, group_by=("uuid",))
    assert ("GPU-3",) in got
    assert same_increase(got, raw.counter_increase("gpu", "energy_j", dec.start_ns, dec.end_ns, group_by=("uuid",)))
