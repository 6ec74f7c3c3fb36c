"""InfluxStore's daily rollups (dcim.store.influx.rollup) against the real influxd.

A few GPUs over five UTC days, with partial days at both ends, a missing hour, a missing day,
an hour without one field, equal hourly peaks and series sharing timestamps. Every read is
compared with the same read on raw points (a second store on the same database with
``use_rollups=False``) and, for one grouping, with a reference computed here from the points.
"""

from __future__ import annotations

import calendar
import math

import pytest

from dcim.metrics import Point
from dcim.store.base import BucketStats, StoreError, StoreUnavailable, stats_of_buckets
from dcim.store.influx import InfluxStore
from dcim.store.influx import rollup as influx_rollup
from dcim.store.influx.layout import RETENTION_POLICY, STATE, read_state, source

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
DAY = 86400 * S
D0 = calendar.timegm((2026, 9, 1, 0, 0, 0)) * S  # a UTC day start
START = D0 + 13 * HOUR + 10 * MIN  # data from the middle of day 0 ...
END = D0 + 4 * DAY + 7 * HOUR  # ... to the middle of day 4
NOW = D0 + 5 * DAY + HOUR  # days 0-4 are closed
TAGS = {uuid: {"site": "s1", "room": "h1", "rack": rack, "host": host, "gpu": gpu, "uuid": uuid, "model": "H100"}
        for uuid, rack, host, gpu in (("GPU-1", "a", "n1", "0"), ("GPU-2", "a", "n1", "1"), ("GPU-3", "b", "n2", "0"))}
FIELDS = ["power_w", "pstate", "mem_used_bytes", "util_pct"]
PEAK_HOURS = (D0 + DAY + 10 * HOUR, D0 + DAY + 14 * HOUR, D0 + 3 * DAY + 10 * HOUR)


def make_points() -> list[Point]:
    """Every 10 minutes with a few seconds' jitter, the same times for every GPU."""
    points = []
    k = 0
    t = START
    while t < END:
        ts = t + (k * 7919 % 50) * S + k % 1000  # odd offsets, nanoseconds included
        for n, (uuid, tags) in enumerate(TAGS.items()):
            hour = ts - ts % HOUR
            if uuid == "GPU-1" and D0 + DAY + 5 * HOUR <= ts < D0 + DAY + 6 * HOUR:
                continue  # an hour without data
            if uuid == "GPU-2" and D0 + 2 * DAY <= ts < D0 + 3 * DAY:
                continue  # a day without data
            fields = {"pstate": (k + n) % 3, "mem_used_bytes": (k * 104729 + n * 7) % (80 << 30) + (1 << 35),
                      "util_pct": float((k * 37 + n * 11) % 101)}
            if not (uuid == "GPU-3" and D0 + 3 * DAY + 8 * HOUR <= ts < D0 + 3 * DAY + 10 * HOUR):
                # power absent for two hours of GPU-3; GPU-1 peaks at 900 W in three hours (a tie)
                fields["power_w"] = 900.0 if uuid == "GPU-1" and hour in PEAK_HOURS else \
                    round(100.0 + (k * 7.31 + n * 113.7) % 600.0, 3)
            points.append(Point("gpu", tags, fields, ts))
        k += 1
        t += 10 * MIN
    return points


POINTS = make_points()


@pytest.fixture
def stores(influx_store):
    """(the store with rollups after maintain(NOW), a store on the same database reading raw only)."""
    influx_store.write(POINTS)
    raw = InfluxStore(influx_store.url, influx_store.database, use_rollups=False)
    influx_store.maintain(NOW)
    yield influx_store, raw
    raw.close()


def same(a, b) -> bool:
    """Equal, with floats to 1e-12 relative (sums come out of another summation order) and
    ints staying ints."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return a == b and type(a) is type(b)


def same_series(got, want) -> bool:
    if [s.tags for s in got] != [s.tags for s in want] or [s.times_ns for s in got] != [s.times_ns for s in want]:
        return False
    return all(g.values.keys() == w.values.keys() and
               all(len(g.values[f]) == len(w.values[f]) and all(map(same, g.values[f], w.values[f])) for f in w.values)
               for g, w in zip(got, want))


def same_stats(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        got[k].buckets == want[k].buckets and same(got[k].total, want[k].total) and got[k].peak == want[k].peak
        and got[k].peak_ns == want[k].peak_ns for k in want)


def statements(store) -> list[str]:
    """Record the InfluxQL the store sends from now on."""
    seen = []
    real = store.execute
    store.execute = lambda q, **kw: (seen.append(q), real(q, **kw))[1]
    return seen


# --- what maintain() writes ----------------------------------------------------------------

def test_daily_rows_hold_the_days_figures_with_the_fields_types(stores):
    store, _ = stores
    day = D0 + DAY
    mine = [p for p in POINTS if p.tags["uuid"] == "GPU-1" and day <= p.time_ns < day + DAY]
    [series] = store.execute(f"SELECT * FROM {source(store, 'gpu_1d')} WHERE uuid = 'GPU-1' AND time = {day}")[0]["series"]
    row = dict(zip(series["columns"], series["values"][0]))
    for f in FIELDS:
        samples = [(p.time_ns, p.fields[f]) for p in mine if f in p.fields]
        hours: dict[int, list] = {}
        for t, v in samples:
            hours.setdefault(t - t % HOUR, []).append(v)
        means = {h: sum(v) / len(v) for h, v in hours.items()}
        peak = max(means.values())
        assert row[f"{f}_n"] == len(samples) and row[f"{f}_sum"] == pytest.approx(sum(v for _, v in samples), rel=1e-12)
        assert (row[f"{f}_min"], row[f"{f}_max"]) == (min(v for _, v in samples), max(v for _, v in samples))
        assert (row[f"{f}_fts"], row[f"{f}_first"]) == samples[0] and (row[f"{f}_lts"], row[f"{f}_last"]) == samples[-1]
        assert row[f"{f}_hn"] == 23  # one hour of the day without data
        assert row[f"{f}_hsum"] == pytest.approx(sum(means.values()), rel=1e-12)
        assert row[f"{f}_hmax"] == peak and row[f"{f}_hmaxts"] == min(h for h, m in means.items() if m == peak)
    assert row["power_w_hmax"] == 900.0 and row["power_w_hmaxts"] == PEAK_HOURS[0]  # the earlier of two equal hours
    # Types as the contract's: int fields stay int (sums too), hourly means are floats.
    keys = store.execute(f"SHOW FIELD KEYS FROM {source(store, 'gpu_1d')}")[0]["series"][0]["values"]
    types = {name: kind for name, kind in keys}
    for f, kind in (("pstate", "integer"), ("mem_used_bytes", "integer"), ("power_w", "float"), ("util_pct", "float")):
        assert {p: types[f"{f}_{p}"] for p in ("sum", "min", "max", "first", "last")} == dict.fromkeys(
            ("sum", "min", "max", "first", "last"), kind)
        assert {p: types[f"{f}_{p}"] for p in ("n", "fts", "lts", "hn", "hmaxts", "hsum", "hmax")} == {
            "n": "integer", "fts": "integer", "lts": "integer", "hn": "integer", "hmaxts": "integer",
            "hsum": "float", "hmax": "float"}
    # Every series carried every field on day 1 except GPU-2 (no data on day 2 only): three rows.
    assert len(store.execute(f"SELECT pstate_n FROM {source(store, 'gpu_1d')} WHERE time = {day} GROUP BY *")[0]["series"]) == 3
    day2_of_gpu2 = f"SELECT * FROM {source(store, 'gpu_1d')} WHERE uuid = 'GPU-2' AND time = {D0 + 2 * DAY}"
    assert store.execute(day2_of_gpu2)[0].get("series") is None


def hourly_means(field: str) -> dict[str, dict[int, float]]:
    """Per GPU, its hourly means of *field* over the points written (the reference)."""
    hours: dict[str, dict[int, list]] = {}
    for p in POINTS:
        if field in p.fields:
            hours.setdefault(p.tags["uuid"], {}).setdefault(p.time_ns - p.time_ns % HOUR, []).append(p.fields[field])
    return {u: {h: sum(v) / len(v) for h, v in hs.items()} for u, hs in hours.items()}


@pytest.mark.parametrize("field", ["power_w", "util_pct"])
def test_group_rows_per_tag_value(stores, field):
    """gpu_1d_by: per tag value and for all GPUs, each day's hourly sums of their hourly means
    summarised, and their series-hours (how many, the largest mean); power and utilisation
    have them, other fields none."""
    store, _ = stores
    means = hourly_means(field)
    day = D0 + DAY
    src = source(store, "gpu_1d_by")
    got = {}
    for series in store.execute(f"SELECT * FROM {src} WHERE time = {day} GROUP BY *")[0]["series"]:
        [row] = series["values"]
        got[tuple(sorted((k, v) for k, v in series["tags"].items() if v))] = dict(zip(series["columns"], row))
    groups = {(("by", "*"),): list(TAGS)}
    for tag in ("site", "room", "rack", "host", "gpu", "uuid", "model"):
        for u, tags in TAGS.items():
            groups.setdefault(tuple(sorted((("by", tag), (tag, tags[tag])))), []).append(u)
    assert got.keys() == groups.keys()
    for key, members in groups.items():
        hours: dict[int, float] = {}
        series_hours = []  # (mean, hour)
        for u in members:
            for h, m in means[u].items():
                if day <= h < day + DAY:
                    hours[h] = hours.get(h, 0.0) + m
                    series_hours.append((m, h))
        peak = max(hours.values())
        top = max(m for m, _ in series_hours)
        row = got[key]
        assert (row[f"{field}_n"], row[f"{field}_maxts"]) == (len(hours), min(h for h, v in hours.items() if v == peak))
        assert same(float(row[f"{field}_sum"]), sum(hours.values())) and same(float(row[f"{field}_max"]), peak), key
        assert row[f"{field}_sn"] == len(series_hours), key
        assert float(row[f"{field}_top"]) == top and row[f"{field}_topts"] == min(h for m, h in series_hours if m == top)
        assert not any(k.startswith(("pstate", "mem_used")) for k in row if row[k] is not None)


@pytest.mark.parametrize("field", ["power_w", "util_pct"])
def test_hourly_group_rows_per_rack(stores, field):
    """gpu_1h_by: per rack and hour, the sum of its GPUs' hourly means, how many had one and the
    largest; racks only (GROUP_ROLLUP_TAGS), and only the grouped fields."""
    store, _ = stores
    got = {}
    for series in store.execute(f"SELECT * FROM {source(store, 'gpu_1h_by')} GROUP BY *")[0]["series"]:
        for row in series["values"]:
            r = dict(zip(series["columns"], row))
            assert not any(k.startswith(("pstate", "mem_used")) for k in r)
            if r[f"{field}_sum"] is not None:
                got[(series["tags"]["by"], series["tags"]["rack"], r["time"])] = r
    want: dict[tuple, list[float]] = {}
    for u, ms in hourly_means(field).items():
        for h, m in ms.items():
            want.setdefault(("rack", TAGS[u]["rack"], h), []).append(m)
    assert got.keys() == want.keys()
    for k, ms in want.items():
        r = got[k]
        assert same(float(r[f"{field}_sum"]), sum(ms)) and float(r[f"{field}_top"]) == max(ms), k
        assert r[f"{field}_sn"] == len(ms), k


# --- query() ---------------------------------------------------------------------------------

RANGES = [(START, END), (D0, D0 + 5 * DAY), (D0 + DAY + 3 * HOUR, D0 + 3 * DAY + 1)]


@pytest.mark.parametrize("agg", ["first", "last", "max", "min", "sum", "count", "mean"])
def test_query_whole_days_match_raw(stores, agg):
    store, raw = stores
    seen = statements(store)
    for start, end in RANGES:
        for every_s in (86400, 2 * 86400):
            for group_by in (("uuid",), ("rack",), ()):
                for where in (None, {"uuid": ["GPU-1", "GPU-3"]}):
                    args = ("gpu", FIELDS, start, end)
                    kw = dict(every_s=every_s, agg=agg, group_by=group_by, where=where)
                    got, want = store.query(*args, **kw), raw.query(*args, **kw)
                    assert want and same_series(got, want), (start, end, every_s, group_by, where)
    assert any("gpu_1d" in q for q in seen)  # the days came from the rollups


def test_query_daily_counters_match_a_reference(stores):
    """The report's daily counter reads (first, last, max per UTC day), against the points."""
    store, _ = stores
    for agg, pick in (("first", lambda s: s[0][1]), ("last", lambda s: s[-1][1]), ("max", lambda s: max(v for _, v in s)),
                      ("mean", lambda s: sum(v for _, v in s) / len(s))):
        got = {s.tags["uuid"]: dict(zip(s.times_ns, s.values["util_pct"]))
               for s in store.query("gpu", ["util_pct"], START, END, every_s=86400, agg=agg, group_by=("uuid",))}
        want: dict[str, dict] = {}
        for p in POINTS:
            want.setdefault(p.tags["uuid"], {}).setdefault(p.time_ns - p.time_ns % DAY, []).append(
                (p.time_ns, p.fields["util_pct"]))
        want = {u: {d: pick(sorted(s)) for d, s in days.items()} for u, days in want.items()}
        assert got.keys() == want.keys() and all(
            got[u].keys() == want[u].keys() and all(same(got[u][d], want[u][d]) for d in want[u]) for u in want), agg


def test_counter_days_read_the_daily_rows_once_and_match_raw(stores):
    """counter_days over rolled days: one read of the daily rows (and raw points for the edges),
    the same days and figures as three raw reads, for groups of one GPU, of two and of all. The
    times of the first and last points are read only where a group's day holds several GPUs."""
    store, raw = stores
    for start, end in RANGES + [(D0 + DAY, D0 + 3 * DAY)]:  # the last one: rolled days only
        for field in ("util_pct", "mem_used_bytes"):
            for group_by in (("uuid",), ("rack",), ()):
                for where in (None, {"uuid": ["GPU-1", "GPU-3"]}):
                    kw = dict(group_by=group_by, where=where)
                    seen = statements(store)
                    got = store.counter_days("gpu", field, start, end, **kw)
                    rolled = [q for q in seen if "gpu_1d" in q]
                    want = raw.counter_days("gpu", field, start, end, **kw)
                    assert want and got == want, (start, end, field, group_by, where)
                    assert all(type(v) is type(w) for g, c in got.items() for v, w in zip(c.firsts, want[g].firsts))
                    assert "GROUP BY time" not in " ".join(rolled)
                    timed = [q for q in rolled if "_fts" in q]
                    # Whole days inside the range are the rolled ones: did a group's day hold several GPUs?
                    holders: dict[tuple, set] = {}
                    for p in POINTS:
                        day = p.time_ns - p.time_ns % DAY
                        if start <= day and day + DAY <= end and field in p.fields and \
                                (where is None or p.tags["uuid"] in where["uuid"]):
                            holders.setdefault((tuple(p.tags[t] for t in group_by), day), set()).add(p.tags["uuid"])
                    shared = any(len(u) > 1 for u in holders.values())
                    assert (len(rolled), len(timed)) == ((2, 1) if shared else (1, 0)), (group_by, where)


def counter_points() -> list[Point]:
    """energy_j of three GPUs every 20 min over START..END: GPU-1 resets at the first point of
    day 2 (a junction), GPU-3 inside day 3, GPU-2 has no point on day 2 (its junction spans it)
    and GPU-4 starts on day 3 (added mid-range)."""
    points, energy = [], {"GPU-1": 5e8, "GPU-2": 7e8, "GPU-3": 2e6, "GPU-4": 10.0}
    t = START
    while t < END:
        for n, uuid in enumerate(energy):
            tags = TAGS.get(uuid, {**TAGS["GPU-3"], "uuid": uuid, "gpu": "1"})
            if (uuid == "GPU-2" and D0 + 2 * DAY <= t < D0 + 3 * DAY) or (uuid == "GPU-4" and t < D0 + 3 * DAY):
                continue
            if uuid == "GPU-1" and D0 + 2 * DAY <= t < D0 + 2 * DAY + 20 * MIN:
                energy[uuid] = 1234.5
            elif uuid == "GPU-3" and D0 + 3 * DAY + 9 * HOUR <= t < D0 + 3 * DAY + 9 * HOUR + 20 * MIN:
                energy[uuid] = 99.0
            else:
                energy[uuid] += 1000.0 + (t // MIN * 7919 + n * 104729) % 90000 / 7
            points.append(Point("gpu", tags, {"energy_j": round(energy[uuid], 4)}, t + n * S + 17))
        t += 20 * MIN
    return points


COUNTER_RANGES = RANGES + [(D0 + 2 * DAY, D0 + 4 * DAY), (D0 + 3 * DAY, D0 + 4 * DAY), (D0 + 2 * DAY + 5 * HOUR, END)]


def test_counter_increase_from_the_days_matches_raw_and_the_points(stores):
    """Over rolled days a counter's increase is one aggregate row per series (with the junctions
    maintain() keeps); it equals the raw default and the sample-by-sample sum, resets at a day's
    first point and inside a day, a day without points and a GPU added mid-range included."""
    store, raw = stores
    points = counter_points()
    store.write(points)
    store.maintain(NOW)
    seen = statements(store)
    for start, end in COUNTER_RANGES:
        got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        want = raw.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        ref: dict[tuple, list] = {}
        last: dict[tuple, float] = {}
        for p in sorted(points, key=lambda p: p.time_ns):
            if start <= p.time_ns < end:
                key, v = (p.tags["uuid"],), p.fields["energy_j"]
                acc = ref.setdefault(key, [0.0, 0])
                if key in last:
                    acc[0] += v - last[key] if v >= last[key] else v
                    acc[1] += v < last[key]
                last[key] = v
        assert got.keys() == want.keys() == ref.keys(), (start, end)
        for key in ref:
            assert got[key][1] == want[key][1] == ref[key][1], (start, end, key)
            assert same(got[key][0], want[key][0]) and math.isclose(got[key][0], ref[key][0], rel_tol=1e-12), (start, end, key)
    rolled = [q for q in seen if "gpu_1d" in q]
    assert len(rolled) == len(COUNTER_RANGES) and all("SUM(" in q and "GROUP BY time" not in q for q in rolled)
    assert sum(r for _, r in store.counter_increase("gpu", "energy_j", START, END, group_by=("uuid",)).values()) == 2


def test_counter_increase_after_a_late_point_at_a_junction(stores):
    """A late point that becomes a day's first changes that day's junction: the re-roll keeps
    reads equal to raw."""
    store, raw = stores
    store.write(counter_points())
    store.maintain(NOW)
    store.write([Point("gpu", TAGS["GPU-2"], {"energy_j": 1.0}, D0 + 3 * DAY + 1)])  # a reset at day 3's start
    store.maintain(NOW)
    for start, end in COUNTER_RANGES:
        got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        want = raw.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        assert got.keys() == want.keys() and all(
            got[k][1] == want[k][1] and same(got[k][0], want[k][0]) for k in want), (start, end)


def test_counter_increase_of_groups_of_several_series_falls_back(stores):
    store, raw = stores
    store.write(counter_points())
    store.maintain(NOW)
    seen = statements(store)
    got = store.counter_increase("gpu", "energy_j", START, END, group_by=("rack",))
    assert got == raw.counter_increase("gpu", "energy_j", START, END, group_by=("rack",))
    # The aggregate read found two GPUs in a rack; the days were then read for the default.
    assert any("energy_j_jinc" in q for q in seen) and any("energy_j_first" in q and "jinc" not in q for q in seen)


def test_bools_and_finer_buckets_read_raw(stores):
    store, raw = stores
    tags = {"collector": "snmp", "target": "pdu-1"}
    store.write([Point("collector", tags, {"ok": k % 3 > 0, "points": k, "duration_s": k / 10}, START + k * HOUR)
                 for k in range(80)])
    store.maintain(NOW)
    seen = statements(store)
    for m, fields, every_s, agg in (("gpu", ["power_w"], 3600, "mean"), ("collector", ["ok", "points"], 86400, "last")):
        kw = dict(every_s=every_s, agg=agg)
        want = raw.query(m, fields, START, END, **kw)
        assert want and same_series(store.query(m, fields, START, END, **kw), want)
    assert not any("_1d" in q for q in seen)
    # Only the numeric fields are rolled.
    keys = [k for k, _ in store.execute(f"SHOW FIELD KEYS FROM {source(store, 'collector_1d')}")[0]["series"][0]["values"]]
    assert {k.split("_")[0] for k in keys} == {"duration", "points"}


# --- bucket_stats() --------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["power_w", "pstate", "util_pct"])
def test_bucket_stats_match_raw_and_a_reference(stores, field):
    store, raw = stores
    seen = statements(store)
    for start, end in RANGES:
        for group_by, combine in ((("uuid",), "sum"), (("uuid",), "mean"), (("rack",), "each"), ((), "each"),
                                  (("rack",), "sum"), ((), "mean")):
            args = ("gpu", field, start, end, 3600)
            kw = dict(group_by=group_by, combine=combine)
            got, want = store.bucket_stats(*args, **kw), raw.bucket_stats(*args, **kw)
            assert want and same_stats(got, want), (start, end, group_by, combine)
    # Two statements (sums, peaks) per call: power and utilisation per rack and over all GPUs,
    # summed or each, from the group rows; the rest from the series' rows (multi-series means
    # and pstate sums then fall back to raw hours).
    grouped = 4 if field in ("power_w", "util_pct") else 0
    assert sum("gpu_1d_by" in q for q in seen) == 2 * grouped * len(RANGES)
    assert sum("gpu_1d" in q for q in seen) == 2 * 6 * len(RANGES)
    # Per rack (sum, each), the whole hours of the edges from the hourly group rows, two
    # statements per edge: both edges of RANGES[0], the first of RANGES[2] (its end edge is 1 ns).
    assert sum("gpu_1h_by" in q for q in seen) == (2 * 2 * 3 if grouped else 0)
    means = hourly_means(field)
    want = {(u,): stats_of_buckets({h: [m] for h, m in ms.items()}, "sum") for u, ms in means.items()}
    got = store.bucket_stats("gpu", field, START, END, 3600, group_by=("uuid",))
    assert same_stats(got, want)
    if field == "power_w":  # three equal peak hours on two days: the earliest
        assert got[("GPU-1",)].peak == 900.0 and got[("GPU-1",)].peak_ns == PEAK_HOURS[0]
    # Per rack, the sum of its GPUs' hourly means (rack a: GPU-1 and GPU-2, one missing an hour,
    # the other a day); over all GPUs, their sum (the group of every series, by = "*") and mean.
    for group_by, combine in ((("rack",), "sum"), ((), "sum"), ((), "mean")):
        seen = statements(store)
        per_group: dict[tuple, dict[int, list]] = {}
        for u, ms in means.items():
            g = tuple(TAGS[u][t] for t in group_by)
            for h, m in ms.items():
                per_group.setdefault(g, {}).setdefault(h, []).append(m)
        want = {g: stats_of_buckets(hs, combine) for g, hs in per_group.items()}
        got = store.bucket_stats("gpu", field, START, END, 3600, group_by=group_by, combine=combine)
        assert got.keys() == want.keys() and all(
            got[g].buckets == want[g].buckets and same(got[g].total, want[g].total) and same(got[g].peak, want[g].peak)
            and got[g].peak_ns == want[g].peak_ns for g in want), (group_by, combine)
        if combine == "sum" and field == "power_w":
            assert any("gpu_1d_by" in q and ("'*'" in q) == (group_by == ()) for q in seen)


def test_days_rolled_without_hourly_group_rows_read_their_edges_raw(stores):
    """Days rolled by a version without m_1h_by (the state's by_hour_from_ns is later) read their
    edge hours raw; the later days' edges read the hourly group rows. Both equal raw."""
    store, raw = stores
    rolled = store.execute(f"SELECT LAST(to_ns) FROM {source(store, STATE)}")[0]["series"][0]["values"][0]
    store.write([Point(STATE, {"measurement": "gpu"}, {"by_hour_from_ns": D0 + 3 * DAY}, rolled[0])],
                retention_policy=store.rollup_policy)
    store._rollup_state = None  # read the state again now
    seen = statements(store)
    for combine in ("sum", "each"):
        got = store.bucket_stats("gpu", "power_w", START, END, 3600, group_by=("rack",), combine=combine)
        want = raw.bucket_stats("gpu", "power_w", START, END, 3600, group_by=("rack",), combine=combine)
        assert got.keys() == want.keys() and all(
            got[g].buckets == want[g].buckets and same(got[g].total, want[g].total) and same(got[g].peak, want[g].peak)
            and got[g].peak_ns == want[g].peak_ns for g in want), combine
    hourly = [q for q in seen if "gpu_1h_by" in q]
    assert len(hourly) == 4 and all(f"time >= {D0 + 4 * DAY} " in q for q in hourly)


def test_maintain_adds_hourly_group_rows_from_its_first_run_on(influx_store):
    """A state written before by_hour_from_ns existed: the next maintain() rolls its re-roll
    window with hourly group rows and records the window's first day."""
    influx_store.write(POINTS)
    influx_store.maintain(NOW)
    influx_store.execute(f"DROP MEASUREMENT {STATE}")
    influx_store.write([Point(STATE, {"measurement": "gpu"}, {"from_ns": D0, "to_ns": D0 + 5 * DAY}, D0 + 4 * DAY)],
                       retention_policy=influx_store.rollup_policy)
    influx_store.maintain(NOW)
    assert read_state(influx_store)["gpu"][:3] == (D0, D0 + 5 * DAY, D0 + 2 * DAY)  # reroll_days=2 before day 4


def test_summed_groups_read_group_rows_only_where_the_groups_stay_whole(stores):
    """A where that picks groups, or names every value a tag has, leaves the groups whole: the
    group rows answer. One that drops a series inside a group reads raw hours. All equal raw."""
    store, raw = stores
    for where, grouped in (({"rack": "a"}, True), ({"uuid": ["GPU-1", "GPU-2", "GPU-3"]}, True),
                           ({"uuid": ["GPU-1", "GPU-3"]}, False), ({"uuid": [f"GPU-{k}" for k in range(1, 40)]}, True)):
        seen = statements(store)
        for start, end in RANGES:
            args = ("gpu", "power_w", start, end, 3600)
            got = store.bucket_stats(*args, group_by=("rack",), where=where)
            want = raw.bucket_stats(*args, group_by=("rack",), where=where)
            assert want and got.keys() == want.keys() and all(
                got[g].buckets == want[g].buckets and same(got[g].total, want[g].total) and same(got[g].peak, want[g].peak)
                and got[g].peak_ns == want[g].peak_ns for g in want), where
        assert any("gpu_1d_by" in q for q in seen) == grouped, where


def test_a_group_of_whole_racks_sums_their_hourly_rows(stores):
    """No grouping and a where naming racks (a tenant's): the racks' hourly group rows added up
    hour by hour, where the range is whole rolled hours; else (a where inside a rack, a range off
    the hour) raw. All equal raw."""
    store, raw = stores
    hours = (D0 + 14 * HOUR, D0 + 4 * DAY + 6 * HOUR)
    for (start, end), where, hourly in ((hours, {"rack": "a"}, True), (hours, {"rack": ["a", "b"]}, True),
                                        (hours, {"rack": "a", "uuid": ["GPU-1", "GPU-2", "GPU-3"]}, True),
                                        (hours, {"rack": "a", "uuid": "GPU-1"}, False),
                                        ((START, END), {"rack": "a"}, False)):
        seen = statements(store)
        got = store.bucket_stats("gpu", "power_w", start, end, 3600, where=where)
        want = raw.bucket_stats("gpu", "power_w", start, end, 3600, where=where)
        assert want and got.keys() == want.keys() == {()} and got[()].buckets == want[()].buckets, where
        assert same(got[()].total, want[()].total) and same(got[()].peak, want[()].peak), where
        assert got[()].peak_ns == want[()].peak_ns, where
        assert any("gpu_1h_by" in q for q in seen) == hourly, where


def test_bucket_stats_each_adds_up_every_series(stores):
    store, _ = stores
    per_gpu = store.bucket_stats("gpu", "util_pct", START, END, 3600, group_by=("uuid",))
    by_rack = store.bucket_stats("gpu", "util_pct", START, END, 3600, group_by=("rack",), combine="each")
    a = [per_gpu[("GPU-1",)], per_gpu[("GPU-2",)]]
    assert by_rack[("a",)].buckets == sum(s.buckets for s in a)
    assert by_rack[("a",)].total == pytest.approx(sum(s.total for s in a), rel=1e-12)
    assert isinstance(by_rack[("a",)], BucketStats) and by_rack[("b",)] == per_gpu[("GPU-3",)]


# --- maintain() --------------------------------------------------------------------------------

def state(store) -> dict:
    series = store.execute(f"SELECT LAST(from_ns), LAST(to_ns) FROM {source(store, STATE)} GROUP BY \"measurement\"")[0]["series"]
    return {s["tags"]["measurement"]: tuple(s["values"][0][1:]) for s in series}


def test_maintain_rolls_closed_days_only_and_again_cheaply(influx_store):
    influx_store.write(POINTS)
    influx_store.maintain(D0 + 4 * DAY + 5 * MIN)  # day 3 ended 5 min ago: within the grace, not closed
    assert state(influx_store) == {"gpu": (D0, D0 + 3 * DAY)}
    influx_store.maintain(D0 + 5 * DAY + 11 * MIN)
    assert state(influx_store) == {"gpu": (D0, D0 + 5 * DAY)}
    days = influx_store.execute(
        f"SELECT count(pstate_n) FROM {source(influx_store, 'gpu_1d')} GROUP BY time(1d) fill(none)")[0]["series"][0]
    assert [t for t, _ in days["values"]] == [D0 + d * DAY for d in range(5)]
    seen = statements(influx_store)
    influx_store.maintain(D0 + 5 * DAY + 12 * MIN)  # again: only the re-roll window
    # The days read: the raw reads of maintain (plain SELECTs of the GPUs' points).
    rolled = sorted({int(q.split("time >= ")[1].split()[0]) // DAY * DAY for q in seen
                     if q.startswith("SELECT ") and 'FROM "gpu" WHERE time >= ' in q and "GROUP BY" not in q})
    assert rolled == [D0 + 2 * DAY, D0 + 3 * DAY, D0 + 4 * DAY]


def test_a_measurement_that_fails_to_roll_leaves_the_others_rolled(influx_store, caplog):
    """The server times out on the GPUs' day queries: the PDUs still roll, maintain() raises
    naming gpu (its days are owed), and the next run rolls them."""
    pdu = {"site": "s1", "room": "h1", "rack": "a", "pdu": "p1", "feed": "A"}
    influx_store.write(POINTS + [Point("pdu", pdu, {"power_w": 1000.0 + k}, START + k * HOUR) for k in range(60)])
    real = influx_store.execute

    def execute(q, **kw):
        if 'FROM "gpu" WHERE time >= ' in q:  # the day's points
            raise StoreUnavailable("InfluxDB: unavailable after 6 attempt(s): TimeoutError: timed out")
        return real(q, **kw)

    influx_store.execute = execute
    with pytest.raises(StoreError, match="gpu"):
        influx_store.maintain(NOW)
    assert "rollups of gpu failed" in caplog.text
    assert set(read_state(influx_store)) == {"pdu"}
    influx_store.execute = real
    influx_store.maintain(NOW)
    assert set(read_state(influx_store)) == {"pdu", "gpu"}


def test_rollup_points_go_in_requests_of_bounded_size(influx_store, monkeypatch):
    """With FIELDS_PER_WRITE small, a day's rollup points go in many writes, none holding much
    more than that many field values, and the rollups answer as raw does."""
    monkeypatch.setattr(influx_rollup, "FIELDS_PER_WRITE", 60)
    influx_store.write(POINTS)
    sizes = []
    real = influx_store.write

    def write(points, **kw):
        if kw.get("retention_policy") == influx_store.rollup_policy:
            sizes.append(sum(len(p.fields) for p in points))
        return real(points, **kw)

    influx_store.write = write
    influx_store.maintain(NOW)
    influx_store.write = real
    widest = max(len(p.fields) for p in POINTS) * 12 + 4  # a daily row: 12 parts per field, counters 4 more
    assert len(sizes) > 5 * 3 and max(sizes) < 60 + widest
    raw = InfluxStore(influx_store.url, influx_store.database, use_rollups=False)
    try:
        for group_by in (("uuid",), ("rack",)):
            got = influx_store.bucket_stats("gpu", "power_w", START, END, 3600, group_by=group_by)
            assert same_stats(got, raw.bucket_stats("gpu", "power_w", START, END, 3600, group_by=group_by))
    finally:
        raw.close()


def test_nothing_to_roll(influx_store):
    influx_store.maintain(NOW)  # an empty database
    influx_store.write([Point("gpu", TAGS["GPU-1"], {"power_w": 1.0}, NOW - HOUR)])
    influx_store.maintain(NOW)  # data in today only: nothing closed
    assert influx_store.execute("SHOW MEASUREMENTS")[0]["series"][0]["values"] == [["gpu"]]


def test_rollups_live_in_their_own_retention_policy(stores):
    """maintain() makes the long-shard policy and writes there; a reader that never ran
    maintain() finds it; the default policy holds raw points only."""
    store, raw = stores
    [series] = store.execute(f"SHOW RETENTION POLICIES ON {store.database}")[0]["series"]
    policies = {row[0]: dict(zip(series["columns"], row)) for row in series["values"]}
    assert policies[RETENTION_POLICY]["shardGroupDuration"] == "8736h0m0s" and policies["autogen"]["default"]
    assert store.execute("SELECT count(pstate_n) FROM gpu_1d")[0].get("series") is None
    reader = InfluxStore(store.url, store.database)
    try:
        seen = statements(reader)
        kw = dict(every_s=86400, agg="max", group_by=("uuid",))
        assert same_series(reader.query("gpu", FIELDS, START, END, **kw), raw.query("gpu", FIELDS, START, END, **kw))
        assert any(f'"{RETENTION_POLICY}"."gpu_1d"' in q for q in seen)
    finally:
        reader.close()


def test_where_the_policy_cannot_be_made_rollups_use_the_default_one(influx_store):
    """2.x and 3.x have no CREATE RETENTION POLICY: the rollups go to the default policy (here
    a 1.x server taken for 2.x), and reads from them still equal raw."""
    influx_store.ensure_database()
    influx_store.version = "2.7.1"
    influx_store.write(POINTS)
    influx_store.maintain(NOW)
    [series] = influx_store.execute(f"SHOW RETENTION POLICIES ON {influx_store.database}")[0]["series"]
    assert [row[0] for row in series["values"]] == ["autogen"]
    assert influx_store.execute("SELECT count(pstate_n) FROM gpu_1d")[0]["series"]
    raw = InfluxStore(influx_store.url, influx_store.database, use_rollups=False)
    try:
        seen = statements(influx_store)
        for agg in ("first", "mean"):
            kw = dict(every_s=86400, agg=agg, group_by=("rack",))
            assert same_series(influx_store.query("gpu", FIELDS, START, END, **kw), raw.query("gpu", FIELDS, START, END, **kw))
        assert any('FROM "gpu_1d"' in q for q in seen)
    finally:
        raw.close()


def test_late_points_rerolled_within_the_window_only(stores):
    """A point replayed late into one of the last reroll_days + 1 rolled days is picked up by
    the next maintain(); so is an older one this store wrote itself (a spool replay in the
    process that maintains). An older one another process wrote stays out of the rollups (a
    documented limit): rollup-served reads of its day differ from raw by that point."""
    store, raw = stores
    late_recent = Point("gpu", TAGS["GPU-2"], {"util_pct": 55.5, "pstate": 2}, D0 + 4 * DAY + 20 * HOUR + 3)
    late_old = Point("gpu", TAGS["GPU-2"], {"util_pct": 66.5, "pstate": 1}, D0 + DAY + 2 * HOUR + 5)
    late_elsewhere = Point("gpu", TAGS["GPU-1"], {"util_pct": 77.5, "pstate": 0}, D0 + 20 * HOUR + 5)
    kw = dict(every_s=86400, agg="count", group_by=("uuid",))

    def missing() -> dict:
        """{(uuid, day): raw points the rollups lack}"""
        got = store.query("gpu", ["util_pct"], D0, D0 + 5 * DAY, **kw)
        want = raw.query("gpu", ["util_pct"], D0, D0 + 5 * DAY, **kw)
        assert [s.times_ns for s in got] == [s.times_ns for s in want]
        return {(g.tags["uuid"], t): w - c for g, r in zip(got, want)
                for t, c, w in zip(g.times_ns, g.values["util_pct"], r.values["util_pct"]) if c != w}

    store.write([late_recent, late_old])
    store.maintain(NOW)
    assert missing() == {}  # the two this store wrote are in
    raw.write([late_elsewhere])
    store.maintain(NOW + HOUR)
    assert missing() == {("GPU-1", D0): 1}  # the other process's is not
    # The re-rolled day equals raw in every figure, hourly ones included.
    for agg in ("first", "last", "max", "mean"):
        assert same_series(store.query("gpu", ["util_pct", "pstate"], D0 + 4 * DAY, D0 + 5 * DAY, every_s=86400, agg=agg),
                           raw.query("gpu", ["util_pct", "pstate"], D0 + 4 * DAY, D0 + 5 * DAY, every_s=86400, agg=agg))
    a = store.bucket_stats("gpu", "util_pct", D0 + 2 * DAY, D0 + 5 * DAY, 3600, group_by=("uuid",))
    b = raw.bucket_stats("gpu", "util_pct", D0 + 2 * DAY, D0 + 5 * DAY, 3600, group_by=("uuid",))
    assert same_stats(a, b)


def test_days_before_the_first_rolled_day_read_raw(stores):
    """History backfilled before the first rolled day is no rollup's: it reads raw, exactly."""
    store, raw = stores
    store.write([Point("gpu", TAGS["GPU-3"], {"util_pct": 12.0, "pstate": 0}, D0 - 2 * DAY + k * HOUR) for k in range(30)])
    store.maintain(NOW)
    for agg in ("first", "count", "mean"):
        kw = dict(every_s=86400, agg=agg, group_by=("uuid",))
        assert same_series(store.query("gpu", ["util_pct"], D0 - 3 * DAY, END, **kw),
                           raw.query("gpu", ["util_pct"], D0 - 3 * DAY, END, **kw))
    assert same_stats(store.bucket_stats("gpu", "util_pct", D0 - 3 * DAY, END, 3600, group_by=("uuid",)),
                      raw.bucket_stats("gpu", "util_pct", D0 - 3 * DAY, END, 3600, group_by=("uuid",)))
