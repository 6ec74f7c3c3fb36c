"""The embedded SQLite store: the shared contract, plus rollups, retention, processes, modes."""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dcim.metrics import Point, PointError, validate_point
from dcim.store.base import Store, StoreError, StoreUnavailable
from dcim.store.sqlite import SqliteStore
from tests.store.contract import (
    HOUR,
    MINUTE,
    S,
    StoreContract,
    _as_dict,
    _assert_close,
    _expected,
    gpu_tags,
    recent_hour_ns,
    sample_by_sample_increase,
)

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400 * S


class TestSqliteContract(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = SqliteStore(tmp_path / "sub" / "dcim.sqlite")
        yield s
        s.close()

    def settle(self, store) -> None:
        store.maintain()


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "dcim.sqlite")
    yield s
    s.close()


def minute_points(site: str, t0: int, minutes: int, *, gpus: int = 2, offset_s: int = 17) -> list[Point]:
    """One point per GPU per minute (the twin's backfill spacing), values known to the test."""
    pts = []
    for g in range(gpus):
        tags = gpu_tags(site, "n1", g)
        for k in range(minutes):
            pts.append(Point("gpu", tags, {"power_w": 100.0 + k + 0.5 * g, "temp_c": 40.0 + (k % 7)},
                             t0 + k * MINUTE + offset_s * S))
    return pts


def check_against_reference(store, points, site, start, end, every_s, aggs=("mean", "max", "min", "first",
                                                                               "last", "sum", "count")):
    for agg in aggs:
        want = _expected(points, ["power_w", "temp_c"], agg, start, end, every_s * S, ("uuid",))
        got = store.query("gpu", ["power_w", "temp_c"], start, end, every_s=every_s, agg=agg,
                          group_by=["uuid"], where={"site": site})
        _assert_close(_as_dict(got), want, f"{agg} every={every_s}")


def test_rollups_and_unrolled_tail_agree_with_reference(store):
    t0 = time.time_ns() // HOUR * HOUR - 4 * HOUR
    first = TestSqliteContract().fleet("s1", t0, span_s=2 * 3600, seed=3)
    store.write(first)
    store.maintain()
    # After the rollup: newer points (the unrolled tail) and a late point far below the watermark.
    later = TestSqliteContract().fleet("s1", t0 + 2 * HOUR, span_s=1800, seed=4)
    late = [Point("gpu", gpu_tags("s1", "node0", 0, "r00"), {"power_w": 999.0, "temp_c": 99.0}, t0 + 30 * MINUTE + 1)]
    store.write(later + late)
    points = first + later + late
    for every_s in (60, 600, 3600):
        check_against_reference(store, points, "s1", t0 + 61 * S, t0 + 3 * HOUR, every_s)
    store.maintain()
    for every_s in (60, 3600):
        check_against_reference(store, points, "s1", t0 + 61 * S, t0 + 3 * HOUR, every_s)


def test_rollup_tables_hold_the_partials(store):
    t0 = time.time_ns() // HOUR * HOUR - 2 * HOUR
    a = gpu_tags("s1", "n1", 0)
    store.write([Point("gpu", a, {"power_w": v}, t0 + i * 10 * S) for i, v in enumerate([3.0, 1.0, 2.0])])
    store.maintain()
    row = store._conn.execute('SELECT "power_w_n", "power_w_sum", "power_w_min", "power_w_max", "power_w_first", '
                              '"power_w_last", "power_w_fts", "power_w_lts" FROM rollup_minute_gpu').fetchone()
    assert row == (3, 6.0, 1.0, 3.0, 3.0, 2.0, t0, t0 + 20 * S)


def test_retention_keeps_rollups_queryable(tmp_path):
    store = SqliteStore(tmp_path / "r.sqlite", raw_retention_days=7, rollup_1m_retention_days=30)
    t0 = 1_700_000_000 * S // HOUR * HOUR
    points = minute_points("s1", t0, 180)
    store.write(points)
    store.maintain(now_ns=t0 + 3 * HOUR)
    end = t0 + 3 * HOUR
    check_against_reference(store, points, "s1", t0, end, 60)
    store.maintain(now_ns=t0 + 8 * DAY)  # raw is gone ...
    assert store._conn.execute("SELECT count(*) FROM raw_gpu").fetchone()[0] == 0
    assert store.query("gpu", ["power_w"], t0, end, every_s=1, agg="count") == []
    check_against_reference(store, points, "s1", t0, end, 60)  # ... 1-minute data is not
    check_against_reference(store, points, "s1", t0, end, 3600)
    # a start inside a minute, below the raw horizon: that minute comes from its rollup
    (s,) = store.query("gpu", ["power_w"], t0 + 30 * S, t0 + 2 * MINUTE, every_s=60, agg="count")
    assert s.values["power_w"] == [2, 2]
    store.maintain(now_ns=t0 + 31 * DAY)  # 1-minute rollups expire, hourly ones stay
    assert store.query("gpu", ["power_w"], t0, end, every_s=60, agg="count") == []
    check_against_reference(store, points, "s1", t0, end, 3600)
    store.close()


def test_backfill_after_rollups_started(store):
    """The twin backfills weeks of 1-minute history while maintain() already runs: every old
    point must reach the rollups before retention deletes its raw row."""
    now = time.time_ns()
    store.write([Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 1.0}, now - MINUTE)])
    store.maintain()
    t0 = now // HOUR * HOUR - 21 * DAY
    points = minute_points("old", t0, 3 * 60)
    store.write(points)
    store.maintain()
    assert store._conn.execute("SELECT count(*) FROM raw_gpu WHERE ts < ?", (now - 8 * DAY,)).fetchone()[0] == 0
    check_against_reference(store, points, "old", t0, t0 + 3 * HOUR, 60)
    check_against_reference(store, points, "old", t0, t0 + 3 * HOUR, 3600)


def test_maintain_runs_from_write(store, monkeypatch):
    calls = []
    monkeypatch.setattr(store, "maintain", lambda now_ns=None: calls.append(now_ns))
    p = Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 1.0})
    store.write([p])
    assert calls == []  # not due yet
    store._next_maintain = time.monotonic() - 1
    store.write([p])
    assert calls == [None]


def test_reader_process_while_writer_writes(tmp_path):
    path = tmp_path / "shared.sqlite"
    writer = SqliteStore(path)
    tags = gpu_tags("s1", "n1", 0)
    t0 = time.time_ns() - HOUR
    writer.write([Point("gpu", tags, {"power_w": 0.0}, t0)])
    reader_code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from dcim.store.sqlite import SqliteStore
        store = SqliteStore({str(path)!r}, readonly=True)
        counts = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (s,) = store.query("gpu", ["power_w"], {t0}, {t0 + HOUR}, agg="count")
            counts.append(s.values["power_w"][0])
            store.latest("gpu")
            open({str(path) + ".reading"!r}, "w").close()  # tell the writer: reading now
            if counts[-1] >= 2001:
                break
        assert counts == sorted(counts), "counts went backwards"
        print(len(set(counts)), counts[-1])
    """)
    proc = subprocess.Popen([sys.executable, "-c", reader_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # Write only once the reader reads: a slow interpreter start must not let the writer
        # finish before the reader's first query.
        flag = Path(str(path) + ".reading")
        deadline = time.monotonic() + 30
        while not flag.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        for k in range(1, 2001):
            writer.write([Point("gpu", tags, {"power_w": float(k)}, t0 + k * S)])
            if k % 500 == 0:
                writer.maintain()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    distinct, last = map(int, out.split())
    assert last == 2001
    assert distinct > 2  # the reader saw the data grow while it was being written
    writer.close()


def test_readonly_cannot_write(tmp_path):
    path = tmp_path / "ro.sqlite"
    with SqliteStore(path) as w:
        w.write([Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 1.0}, 10 * S)])
    ro = SqliteStore(path, readonly=True)
    with pytest.raises(StoreError):
        ro.write([Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 2.0}, 20 * S)])
    with pytest.raises(StoreError):
        ro.maintain()
    assert ro.latest("gpu")[0].fields == {"power_w": 1.0}
    ro.close()
    with pytest.raises(StoreUnavailable):
        SqliteStore(tmp_path / "missing.sqlite", readonly=True)


def test_reopen_persists(tmp_path):
    path = tmp_path / "p.sqlite"
    tags = gpu_tags("s1", "n1", 0)
    with SqliteStore(path) as s:
        s.write([Point("gpu", tags, {"power_w": 1.0, "temp_c": 30.0}, 10 * S)])
    with SqliteStore(path) as s:
        s.write([Point("gpu", tags, {"power_w": 2.0}, 20 * S)])
        (p,) = s.latest("gpu")
        assert p.fields == {"power_w": 2.0, "temp_c": 30.0} and p.time_ns == 20 * S
        (q,) = s.query("gpu", ["power_w"], 0, 30 * S, agg="sum")
        assert q.values["power_w"] == [3.0]


def test_duplicate_time_merges_fields(store):
    tags = gpu_tags("s1", "n1", 0)
    store.write([Point("gpu", tags, {"power_w": 1.0, "temp_c": 30.0}, 10 * S)])
    store.write([Point("gpu", tags, {"power_w": 2.0, "util_pct": 50.0}, 10 * S)])
    (p,) = store.latest("gpu")
    assert p.fields == {"power_w": 2.0, "temp_c": 30.0, "util_pct": 50.0}


def test_strict_rejects_whole_write(store):
    good = Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 1.0}, 10 * S)
    with pytest.raises(PointError):
        store.write([good, Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": "hot"}, 11 * S)])
    with pytest.raises(PointError):
        store.write([good, Point("gpu", {"bogus_tag": "x"}, {"power_w": 1.0}, 11 * S)])
    with pytest.raises(PointError):
        store.write([Point("nope", {}, {"x": 1.0}, 11 * S)])
    assert store.latest("gpu") == []


def test_lenient_skips_and_counts(tmp_path, caplog):
    store = SqliteStore(tmp_path / "l.sqlite", strict=False)
    tags = gpu_tags("s1", "n1", 0)
    bad = [Point("gpu", tags, {"power_w": float("nan")}, 11 * S),
           Point("gpu", tags, {"power_w": float("nan")}, 12 * S),
           Point("gpu", tags, {"mem_used_bytes": 1.5}, 13 * S),
           Point("gpu", {"nope": "x"}, {"power_w": 1.0}, 14 * S)]
    with caplog.at_level("WARNING"):
        store.write([Point("gpu", tags, {"power_w": 1.0}, 10 * S)] + bad)
    assert store.rejected == 4
    assert len([r for r in caplog.records if "invalid points" in r.getMessage()]) == 3  # once per kind
    (p,) = store.latest("gpu")
    assert p.fields == {"power_w": 1.0} and p.time_ns == 10 * S
    store.close()


@pytest.mark.parametrize("value", [1.5, 2, True, False, float("nan"), float("inf"), -float("inf"), "x", None,
                                   10 ** 400, 1 << 62])
@pytest.mark.parametrize("field", ["power_w", "mem_used_bytes", "error", "ok"])
def test_fast_validation_agrees_with_validate_point(tmp_path, value, field):
    store = SqliteStore(tmp_path / "v.sqlite")
    m = "collector" if field in ("error", "ok") else "gpu"
    tags = {"collector": "c", "target": "t"} if m == "collector" else gpu_tags("s1", "n1", 0)
    # warm the fast path with a valid point of the same shape first
    warm = {"power_w": 1.0, "mem_used_bytes": 1, "error": "e", "ok": True}[field]
    store.write([Point(m, tags, {field: warm}, 1 * S)])
    p = Point(m, tags, {field: value}, 2 * S)
    try:
        validate_point(p)
        valid = True
    except PointError:
        valid = False
    if valid and isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        valid = False  # SQLite integers are 64-bit: the store refuses what it cannot keep
    if valid:
        store.write([p])
        (got,) = store.latest(m)
        assert got.time_ns == 2 * S
        if isinstance(value, float) and math.isinf(value):
            assert got.fields[field] == value
    else:
        with pytest.raises(PointError):
            store.write([p])
    store.close()


def test_query_errors(store):
    with pytest.raises(StoreError):
        store.query("gpu", ["no_field"], 0, S)
    with pytest.raises(StoreError):
        store.query("gpu", ["power_w"], 0, S, agg="median")
    with pytest.raises(StoreError):
        store.query("gpu", ["power_w"], 0, S, group_by=["no_tag"])
    with pytest.raises(StoreError):
        store.query("gpu", ["power_w"], 0, S, every_s=0)


def test_string_fields_skip_numeric_aggregates(store):
    c = {"collector": "c", "target": "t"}
    store.write([Point("collector", c, {"error": "boom", "duration_s": 1.0}, 5 * S)])
    (s,) = store.query("collector", ["error", "duration_s"], 0, 10 * S, agg="mean")
    assert s.values == {"duration_s": [1.0]}
    assert store.query("collector", ["error"], 0, 10 * S, agg="max") == []


def test_memory_store():
    with SqliteStore(":memory:") as s:
        s.write([Point("meter", {"site": "s1", "meter": "m1", "role": "it"}, {"power_w": 5.0}, S)])
        assert s.latest("meter")[0].fields == {"power_w": 5.0}


def test_field_first_seen_after_a_rollup_merges_into_the_same_bucket(store):
    t0 = time.time_ns() // HOUR * HOUR - HOUR
    a = gpu_tags("s1", "n1", 0)
    store.write([Point("gpu", a, {"power_w": 10.0}, t0 + 1 * S)])
    store.maintain()
    store.write([Point("gpu", a, {"power_w": 20.0, "temp_c": 50.0}, t0 + 2 * S)])
    store.maintain()
    for every_s in (60, 3600):
        (s,) = store.query("gpu", ["power_w", "temp_c"], t0, t0 + HOUR, every_s=every_s, agg="count")
        assert s.values == {"power_w": [2], "temp_c": [1]}
        (s,) = store.query("gpu", ["power_w", "temp_c"], t0, t0 + HOUR, every_s=every_s, agg="first")
        assert s.values == {"power_w": [10.0], "temp_c": [50.0]}


def test_flags_aggregate_as_numbers(store):
    c = {"collector": "c", "target": "t"}
    flags = [True, False, True, True]
    store.write([Point("collector", c, {"ok": v}, (i + 1) * S) for i, v in enumerate(flags)])
    for agg, want in (("sum", 3), ("count", 4), ("mean", 0.75), ("max", True), ("min", False), ("last", True)):
        (s,) = store.query("collector", ["ok"], 0, 10 * S, agg=agg)
        assert s.values["ok"] == [want] and type(s.values["ok"][0]) is type(want), agg


# ---------------------------------------------------------------- latest() at scale, write fast path


def _latest_reference(points, since_ns=None):
    """Newest value of each field per series at or after since_ns, stamped with the newest time."""
    ref: dict[tuple, dict] = {}
    for p in points:
        if since_ns is not None and p.time_ns < since_ns:
            continue
        key = tuple(sorted(p.tags.items()))
        slot = ref.setdefault(key, {})
        for f, v in p.fields.items():
            if f not in slot or p.time_ns >= slot[f][0]:
                slot[f] = (p.time_ns, v)
    return {k: (max(t for t, _ in slot.values()), {f: v for f, (_, v) in slot.items()}) for k, slot in ref.items()}


def test_latest_many_series_partial_fields_match_reference(store):
    t0 = recent_hour_ns()
    points = []
    for g in range(300):
        tags = gpu_tags("s1", f"n{g // 8}", g % 8, rack=f"r{g // 32:02d}")
        for k in range(4):
            fields = {"power_w": 100.0 + g + k, "util_pct": float(k)}
            if g % 3 == 0 and k == 3:
                del fields["util_pct"]  # newest row lacks a field: its older value stands
            if g % 5 == 0 and k == 0:
                fields["power_limit_w"] = 700.0  # only in the oldest row
            if g % 7 == 0 and k == 2:
                fields["throttle_reasons"] = g  # an int field, in a middle row
            if g % 11 == 0 and k == 3:
                fields = {"temp_c": 55.0}  # the newest row carries another field only
            points.append(Point("gpu", tags, fields, t0 + (k * 10 + g % 4) * S))
    points.append(Point("gpu", gpu_tags("s1", "silent", 0), {"power_w": 1.0}, t0 - 60 * S))
    store.write(points[::-1])  # out of order: the newest write is not the newest point
    store.maintain()
    for since in (None, t0, t0 + 15 * S, t0 + 31 * S, t0 + 40 * S):
        got = {tuple(sorted(p.tags.items())): (p.time_ns, p.fields) for p in store.latest("gpu", since_ns=since)}
        want = _latest_reference(points, since)
        assert got == want, since
        for _, fields in got.values():
            assert all(type(v) is (int if f == "throttle_reasons" else float) for f, v in fields.items())
    ids = [p.tags["uuid"] for p in store.latest("gpu")]
    assert len(ids) == len(set(ids)) == 301
    rack = store.latest("gpu", where={"rack": ["r01", "r03"], "gpu": "2"})
    assert sorted(int(p.tags["host"][1:]) for p in rack) == [4, 5, 6, 7, 12, 13, 14, 15]
    assert all(p.tags["gpu"] == "2" for p in rack)


def test_latest_types_of_flags_and_strings(store):
    c = {"collector": "c", "target": "t"}
    store.write([Point("collector", c, {"ok": True, "error": "", "points": 3}, 1 * S),
                 Point("collector", c, {"ok": False, "duration_s": 2}, 2 * S)])
    (p,) = store.latest("collector")
    assert p.fields == {"ok": False, "error": "", "points": 3, "duration_s": 2.0} and p.time_ns == 2 * S
    assert type(p.fields["ok"]) is bool and type(p.fields["duration_s"]) is float


# Version 1's table prefixes (files written before PRAGMA user_version), by today's name.
V1_PREFIX = {"rollup_minute": "r1m", "rollup_hour": "r1h", "rollup_day": "r1d", "day_hour_stats": "h1d",
             "counter_day": "k1d", "group_hour": "g1h", "group_day": "g1d", "month": "m1mo"}


def as_v1_file(path) -> None:
    """Turn a closed store file of today's layout into the layout files had before user_version
    (version 1's table, index and meta key names, user_version 0): the input of the upgrade."""


    from dcim.metrics import MEASUREMENTS

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN")
    for (index,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE "
                                "'rollup_hour_%_counter'").fetchall():
        con.execute(f'DROP INDEX "{index}"')
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for new, old in V1_PREFIX.items():
            if table.startswith(new + "_") and table[len(new) + 1:] in MEASUREMENTS:
                con.execute(f'ALTER TABLE "{table}" RENAME TO "{old}_{table[len(new) + 1:]}"')
    for m in MEASUREMENTS.values():
        for f, spec in m.fields.items():
            if spec.counter:
                con.execute(f'CREATE INDEX "r1h_{m.name}_{f}_counter" ON r1h_{m.name} '
                            f'(series_id, ts, "{f}_n", "{f}_first", "{f}_last", "{f}_max")')
    con.execute("UPDATE meta SET key = 'r1d_from:' || substr(key, 17) WHERE key LIKE 'day_rollup_from:%'")
    con.execute("UPDATE meta SET key = 'g1_from:' || substr(key, 19) WHERE key LIKE 'group_rollup_from:%'")
    con.execute("PRAGMA user_version = 0")
    con.execute("COMMIT")
    con.close()


def test_latest_on_a_file_from_before_measurement_field(tmp_path):


    path = tmp_path / "old.sqlite"
    with SqliteStore(path) as s:
        s.write([Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 1.0, "temp_c": 30.0}, 1 * S),
                 Point("gpu", gpu_tags("s1", "n1", 0), {"power_w": 2.0}, 2 * S)])
    as_v1_file(path)
    raw = sqlite3.connect(path)
    raw.execute("DROP TABLE measurement_field")
    raw.commit()
    raw.close()
    with pytest.raises(StoreUnavailable, match="writer .* upgrades it"):  # reads know today's layout only
        SqliteStore(path, readonly=True)
    with SqliteStore(path) as s:  # a writer fills the new table from series_field
        assert s.latest("gpu")[0].fields == {"power_w": 2.0, "temp_c": 30.0}
        s.write([Point("gpu", gpu_tags("s1", "n1", 0), {"util_pct": 5.0}, 3 * S)])
        assert s.latest("gpu")[0].fields == {"power_w": 2.0, "temp_c": 30.0, "util_pct": 5.0}


def test_tags_dict_changed_in_place_between_writes(store):
    tags = gpu_tags("s1", "n1", 0)
    store.write([Point("gpu", tags, {"power_w": 1.0}, 1 * S)])
    store.write([Point("gpu", tags, {"power_w": 2.0}, 2 * S)])  # same dict: found by identity
    tags["uuid"], tags["gpu"] = "GPU-other", "1"  # the caller reuses the dict for another GPU
    store.write([Point("gpu", tags, {"power_w": 3.0}, 3 * S)])
    got = {p.tags["uuid"]: (p.fields["power_w"], p.time_ns) for p in store.latest("gpu")}
    assert got == {"GPU-s1-n1-0": (2.0, 2 * S), "GPU-other": (3.0, 3 * S)}


def test_field_order_and_value_subclasses(store):
    import enum

    class Level(enum.IntEnum):
        HIGH = 2

    class Watts(float):
        pass

    tags = gpu_tags("s1", "n1", 0)
    store.write([Point("gpu", tags, {"temp_c": 30.0, "power_w": 1.0}, 1 * S),
                 Point("gpu", tags, {"power_w": Watts(2.0), "temp_c": 31.0, "pstate": Level.HIGH}, 2 * S),
                 Point("gpu", tags, {"pstate": Level.HIGH, "temp_c": 32.0, "power_w": Watts(3.0)}, 3 * S)])
    (p,) = store.latest("gpu")
    assert p.fields == {"power_w": 3.0, "temp_c": 32.0, "pstate": 2} and p.time_ns == 3 * S
    with pytest.raises(PointError):  # still checked once the subclass is known good
        store.write([Point("gpu", tags, {"pstate": Level.HIGH, "temp_c": 33.0, "power_w": Watts("nan")}, 4 * S)])
    with pytest.raises(PointError):
        store.write([Point("gpu", tags, {"temp_c": 33.0, "power_w": 1.0}, 4 * S)] * 40
                    + [Point("gpu", tags, {"power_w": 1.0, "temp_c": 2.5j}, 5 * S)])
    assert store.latest("gpu")[0].time_ns == 3 * S


def test_lenient_batch_keeps_the_valid_rows(tmp_path):
    store = SqliteStore(tmp_path / "l.sqlite", strict=False)
    pts = [Point("gpu", gpu_tags("s1", f"n{i % 10}", 0), {"power_w": float(i), "pstate": i % 3}, (i + 1) * S)
           for i in range(100)]
    store.write(pts[:10])  # the series exist: the rest take the fast path
    bad = {13: {"power_w": float("nan"), "pstate": 1}, 47: {"power_w": 1.0, "pstate": 2.0},
           71: {"power_w": True, "pstate": 1}, 88: {"power_w": 1.0, "pstate": 1 << 70}}
    for i, f in bad.items():
        pts[i] = Point("gpu", pts[i].tags, f, pts[i].time_ns)
    store.write(pts[10:])
    assert store.rejected == 4
    got = {p.tags["host"]: p for p in store.latest("gpu")}
    for host in ("n3", "n7", "n1", "n8"):
        i = max(j for j in range(100) if j % 10 == int(host[1:]) and j not in bad)
        assert got[host].fields == {"power_w": float(i), "pstate": i % 3} and got[host].time_ns == (i + 1) * S
    store.close()


def test_lenient_counts_each_reject_once_when_an_int_overflows(tmp_path):
    store = SqliteStore(tmp_path / "l.sqlite", strict=False)
    tags = gpu_tags("s1", "n1", 0)
    store.write([Point("gpu", tags, {"power_w": 1.0}, 1 * S), Point("gpu", tags, {"power_w": 1.0, "pstate": 1}, 2 * S)])
    store.write([Point("gpu", tags, {"power_w": float("nan")}, 3 * S),  # found by the column check
                 Point("gpu", tags, {"power_w": 2.0, "pstate": 1 << 70}, 4 * S),  # only SQLite finds this
                 Point("gpu", tags, {"power_w": 5.0}, 5 * S)])
    assert store.rejected == 2
    (p,) = store.latest("gpu")
    assert p.fields == {"power_w": 5.0, "pstate": 1} and p.time_ns == 5 * S
    store.close()


def test_duplicate_time_in_one_batch_later_point_wins(store):
    a, b = gpu_tags("s1", "n1", 0), gpu_tags("s1", "n2", 0)
    store.write([Point("gpu", b, {"power_w": 1.0, "temp_c": 30.0}, 10 * S),
                 Point("gpu", a, {"power_w": 5.0}, 10 * S),
                 Point("gpu", b, {"power_w": 2.0, "temp_c": 31.0}, 10 * S)])  # the series exist now
    store.write([Point("gpu", b, {"power_w": 3.0, "temp_c": 32.0}, 20 * S),
                 Point("gpu", a, {"power_w": 6.0}, 20 * S),
                 Point("gpu", b, {"power_w": 4.0, "temp_c": 33.0}, 20 * S),
                 Point("gpu", b, {"util_pct": 9.0}, 20 * S)])
    got = {p.tags["host"]: (p.fields, p.time_ns) for p in store.latest("gpu")}
    assert got == {"n1": ({"power_w": 6.0}, 20 * S), "n2": ({"power_w": 4.0, "temp_c": 33.0, "util_pct": 9.0}, 20 * S)}


def test_gpu_summary_of_the_whole_store(store):
    """Without ``where`` SQLite walks every GPU series in SQL (no series map): the same totals."""
    empty = store.gpu_summary(0x8)
    assert (empty.count, empty.power_w, empty.capped, empty.newest_ns, empty.flagged) == (0, 0.0, 0, None, [])
    t0 = recent_hour_ns()
    a, b = gpu_tags("s1", "n1", 0), gpu_tags("s2", "n9", 3, rack="r07")
    store.write([
        Point("gpu", a, {"power_w": 120.0, "power_limit_w": 450.0, "power_limit_default_w": 700.0}, t0),
        Point("gpu", a, {"power_w": 130.0}, t0 + 5 * S),
        Point("gpu", b, {"power_w": 300.0, "throttle_reasons": 0x40}, t0 + 2 * S),
        # another measurement's series must not count
        Point("pdu", {"site": "s1", "room": "hall1", "rack": "r01", "pdu": "p1", "feed": "A"},
              {"power_w": 5000.0}, t0),
    ])
    got = store.gpu_summary(0x8 | 0x40)
    assert (got.count, got.capped, got.newest_ns) == (2, 1, t0 + 5 * S)
    assert got.power_w == pytest.approx(430.0)
    assert (got.capped_limit_w, got.capped_default_w) == (450.0, 700.0)
    assert [(p.tags, p.fields, p.time_ns) for p in got.flagged] == [(b, {"power_w": 300.0, "throttle_reasons": 0x40},
                                                                     t0 + 2 * S)]


def hourly_points(site: str, t0: int, hours: int, *, gpus: int = 2, seed: int = 5) -> list[Point]:
    """Two samples per GPU per hour, at uneven offsets, some hours without temperature."""
    import random

    rnd = random.Random(seed)
    pts = []
    for g in range(gpus):
        tags = gpu_tags(site, "n1", g)
        for h in range(hours):
            for k in range(2):
                fields = {"power_w": round(rnd.uniform(80, 700), 2)}
                if rnd.random() < 0.7:
                    fields["temp_c"] = round(rnd.uniform(30, 80), 1)
                pts.append(Point("gpu", tags, fields, t0 + h * HOUR + (7 + 1500 * k + rnd.randrange(900)) * S))
    return pts


def test_daily_rollups_serve_days_and_edges_agree_with_reference(tmp_path):
    """Eight days of history read with day buckets and as one bucket, over a range that starts
    and ends at a local midnight (Asia/Seoul, 15:00 UTC): whole UTC days come from the daily
    rollups, the edges from the hourly ones, and the answer equals the reference."""
    store = SqliteStore(tmp_path / "d.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR  # 15:00 UTC = local midnight in Seoul
    points = hourly_points("s1", t0, 8 * 24)
    store.write(points)
    start, end = t0, t0 + 7 * DAY
    check_against_reference(store, points, "s1", start, end, 86400)  # unrolled: raw alone
    store.maintain(now_ns=t0 + 30 * DAY)  # raw and 1-minute rows are gone: rollups alone
    assert store._conn.execute("SELECT count(*) FROM raw_gpu").fetchone()[0] == 0
    plan = store._plan("gpu", start, end, DAY, dict(store._conn.execute("SELECT key, value FROM meta")))
    assert [p[0] for p in plan] == ["rollup_hour", "rollup_day", "rollup_hour"] and plan[1][2] - plan[1][1] == 6 * DAY
    check_against_reference(store, points, "s1", start, end, 86400)
    want = _expected(points, ["power_w", "temp_c"], "mean", start, end, None, ("uuid",))
    got = store.query("gpu", ["power_w", "temp_c"], start, end, agg="mean", group_by=["uuid"], where={"site": "s1"})
    _assert_close(_as_dict(got), want, "whole range")
    store.close()


def test_file_from_before_daily_rollups_reads_old_days_by_hour(tmp_path):
    """A file rolled up by hour only gains daily rollups for the days after its newest hourly
    row; older days keep coming from the hourly rows (the daily table has none of them)."""
    path = tmp_path / "old.sqlite"
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY
    old = hourly_points("s1", t0, 3 * 24, seed=1)
    store.write(old)
    store.maintain(now_ns=t0 + 20 * DAY)
    store.close()
    as_v1_file(path)  # make it look like a file from before the daily level
    with sqlite3.connect(path) as c:
        for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                 "(name LIKE 'r1d_%' OR name LIKE 'h1d_%')").fetchall():
            c.execute(f"DROP TABLE {name}")
        c.execute("DELETE FROM meta WHERE key LIKE 'r1d_from:%'")
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    check_against_reference(store, old, "s1", t0, t0 + 3 * DAY, 86400)  # no daily rows: hourly rows answer
    newer = hourly_points("s1", t0 + 3 * DAY, 3 * 24, seed=2)
    store.write(newer)
    store.maintain(now_ns=t0 + 21 * DAY)
    points = old + newer
    check_against_reference(store, points, "s1", t0, t0 + 6 * DAY, 86400)
    meta = dict(store._conn.execute("SELECT key, value FROM meta"))
    assert meta["day_rollup_from:gpu"] == t0 + 3 * DAY
    assert [p[0] for p in store._plan("gpu", t0, t0 + 6 * DAY, DAY, meta)] == ["rollup_hour", "rollup_day"]
    store.close()


def reference_hour_stats(points, site, start, end):
    """{uuid: (hours with power, Σ hourly means, largest hourly mean, its hour)} from the points."""
    per: dict[tuple, list] = {}
    for p in points:
        if p.tags["site"] == site and start <= p.time_ns < end and "power_w" in p.fields:
            per.setdefault((p.tags["uuid"], p.time_ns - p.time_ns % HOUR), []).append(p.fields["power_w"])
    out: dict[str, dict[int, float]] = {}
    for (uuid, b), vals in per.items():
        out.setdefault(uuid, {})[b] = sum(vals) / len(vals)
    want = {}
    for uuid, hours in out.items():
        top = max(hours.values())
        want[(uuid,)] = (len(hours), sum(hours.values()), top, min(b for b, v in hours.items() if v == top))
    return want


def assert_stats(got, want):
    assert set(got) == set(want)
    for k, (n, total, peak, peak_ns) in want.items():
        st = got[k]
        assert (st.buckets, st.peak_ns) == (n, peak_ns), k
        assert st.total == pytest.approx(total, rel=1e-12) and st.peak == pytest.approx(peak, rel=1e-12), k


def test_hourly_stats_of_whole_days_come_from_the_daily_rows(tmp_path):
    """Eight days with Seoul-midnight edges: whole UTC days are read from the daily rows' hourly
    summaries, and the answer equals the reference computed from the points, before maintain,
    after it, and with a late point waiting inside one of those days."""
    store = SqliteStore(tmp_path / "h.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = hourly_points("s1", t0, 8 * 24, gpus=3)
    store.write(points)
    # hour edges that are no UTC day's (finer rows expire below, and an hour is then the finest)
    start, end = t0 + HOUR, t0 + 7 * DAY - 2 * HOUR

    def check():
        got = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=["uuid"], where={"site": "s1"})
        assert_stats(got, reference_hour_stats(points, "s1", start, end))
        each = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=["rack"], combine="each")
        want = reference_hour_stats(points, "s1", start, end)
        assert each[("r01",)].buckets == sum(w[0] for w in want.values())
        assert each[("r01",)].total == pytest.approx(sum(w[1] for w in want.values()), rel=1e-12)
        assert each[("r01",)].peak == pytest.approx(max(w[2] for w in want.values()), rel=1e-12)

    check()
    store.maintain(now_ns=t0 + 30 * DAY)  # raw is gone: rollups alone
    rows = store._conn.execute("SELECT count(*) FROM day_hour_stats_gpu WHERE field = 'power_w'").fetchone()[0]
    assert rows == 3 * 9  # three GPUs, nine UTC days touched
    check()
    # a late reading inside a whole day, not yet rolled up: the hours are read from r1h instead
    late = Point("gpu", gpu_tags("s1", "n1", 1), {"power_w": 5000.0}, t0 + 3 * DAY + 5 * HOUR + 11 * S)
    store.write([late])
    points.append(late)
    check()
    store.maintain(now_ns=t0 + 30 * DAY)  # rolled up: the day's summary includes it
    check()
    store.close()


@pytest.mark.parametrize("combine", ["sum", "mean"])
def test_group_stats_over_many_days(tmp_path, combine):
    """A rack of three GPUs over eight days: the per-hour sums (or means) of its series,
    summarised, before and after the rollups; the answer equals the reference."""
    store = SqliteStore(tmp_path / "g.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = hourly_points("s1", t0, 8 * 24, gpus=3)
    store.write(points)
    start, end = t0 + HOUR, t0 + 7 * DAY - 2 * HOUR
    per: dict[tuple, list] = {}
    for p in points:
        if start <= p.time_ns < end:
            per.setdefault((p.tags["uuid"], p.time_ns - p.time_ns % HOUR), []).append(p.fields["power_w"])
    by_hour: dict[int, list] = {}
    for (_uuid, b), vals in per.items():
        by_hour.setdefault(b, []).append(sum(vals) / len(vals))
    values = {b: (sum(v) if combine == "sum" else sum(v) / len(v)) for b, v in by_hour.items()}
    top = max(values.values())
    want = {("r01",): (len(values), sum(values.values()), top, min(b for b, v in values.items() if v == top))}
    for settle in (False, True):
        if settle:
            store.maintain(now_ns=t0 + 30 * DAY)
        got = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=["rack"], combine=combine)
        assert_stats(got, want)
    store.close()


def test_file_with_summaries_in_daily_columns_moves_them_to_their_table(tmp_path):
    """The first layout kept the days' hourly summaries in r1d's own columns. A reader of such a
    file reads hours (no h1d table yet); a writer opening it copies them into h1d, and then
    whole days answer from there, equal to the reference."""
    path = tmp_path / "wide.sqlite"
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = hourly_points("s1", t0, 6 * 24, gpus=2)
    store.write(points)
    store.maintain(now_ns=t0 + 30 * DAY)
    store.close()
    as_v1_file(path)
    with sqlite3.connect(path) as c:  # rebuild the first layout from the summaries just made
        for f in ("power_w", "temp_c"):
            for part, kind, col in (("hn", "INTEGER", "n"), ("hsum", "REAL", "sum"), ("hmax", "REAL", "max"),
                                    ("hmaxts", "INTEGER", "maxts")):
                c.execute(f'ALTER TABLE r1d_gpu ADD COLUMN "{f}_{part}" {kind}')
                c.execute(f'UPDATE r1d_gpu SET "{f}_{part}" = (SELECT h.{col} FROM h1d_gpu AS h WHERE h.field = ? '
                          f'AND h.series_id = r1d_gpu.series_id AND h.ts = r1d_gpu.ts)', (f,))
        c.execute("DROP TABLE h1d_gpu")
    start, end = t0 + HOUR, t0 + 6 * DAY - 2 * HOUR
    want = reference_hour_stats(points, "s1", start, end)
    with pytest.raises(StoreUnavailable):  # reads know today's layout only
        SqliteStore(path, readonly=True)
    store = SqliteStore(path)
    assert store._conn.execute("SELECT count(*) FROM day_hour_stats_gpu WHERE field = 'power_w'").fetchone()[0] == 2 * 7
    assert_stats(store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=["uuid"]), want)
    store.close()


def racks_with_gaps(t0: int, days: int, seed: int) -> list[Point]:
    """Four racks of three GPUs, hourly-ish power with a daily shape, a few hot hours on
    random days, GPUs silent for random stretches (days whose group hours only the hours tell)."""
    import random

    rnd = random.Random(seed)
    pts = []
    for r in range(4):
        hot = {rnd.randrange(days * 24) for _ in range(3)}
        for g in range(3):
            tags = gpu_tags("s1", f"n{r}", g, rack=f"r{r:02d}")
            silent = set()
            if rnd.random() < 0.5:
                a = rnd.randrange(days * 24)
                silent = set(range(a, a + rnd.randrange(1, 40)))
            for h in range(days * 24):
                if h in silent:
                    continue
                base = 300 + 200 * ((h % 24) in range(10, 18)) + (250 if h in hot else 0)
                for k in range(2):
                    pts.append(Point("gpu", tags, {"power_w": round(base + rnd.uniform(-60, 60), 1)},
                                     t0 + h * HOUR + (11 + 1700 * k + rnd.randrange(600)) * S))
    return pts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summed_groups_from_daily_bounds_equal_reference(tmp_path, seed):
    """Racks summed hour by hour over ten days with Seoul-midnight edges, GPUs silent for a
    while: after the rollups, whole days come from the daily summaries and only the days that
    can hold a peak are read by the hour; every rack's figures equal the reference."""
    store = SqliteStore(tmp_path / "s.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = racks_with_gaps(t0, 10, seed)
    store.write(points)
    store.maintain(now_ns=t0 + 40 * DAY)
    start, end = t0 + 2 * HOUR, t0 + 10 * DAY - 3 * HOUR
    per: dict[tuple, list] = {}
    for p in points:
        if start <= p.time_ns < end:
            per.setdefault((p.tags["rack"], p.tags["uuid"], p.time_ns - p.time_ns % HOUR), []).append(p.fields["power_w"])
    by_rack: dict[str, dict[int, float]] = {}
    for (rack, _uuid, b), vals in per.items():
        hours = by_rack.setdefault(rack, {})
        hours[b] = hours.get(b, 0.0) + sum(vals) / len(vals)
    want = {}
    for rack, hours in by_rack.items():
        top = max(hours.values())
        want[(rack,)] = (len(hours), sum(hours.values()), top, min(b for b, v in hours.items() if v == top))
    got = store.bucket_stats("gpu", "power_w", start, end, 3600, group_by=["rack"])
    assert_stats(got, want)
    store.close()


RACKS = ("r00", "r'01 랙", "r02")


def rooms_of_racks(t0: int, days: int, seed: int) -> list[Point]:
    """Two rooms, three racks (one named with a quote and Korean), two GPUs each: power and
    utilisation twice an hour, a GPU silent for a stretch, a hot hour per rack (so peaks fall
    on known days)."""
    import random

    rnd = random.Random(seed)
    pts = []
    for r, rack in enumerate(RACKS):
        hot = rnd.randrange(days * 24)
        for g in range(2):
            tags = dict(gpu_tags("s1", f"n{r}", g, rack=rack), room=f"hall{r % 2}")
            a = rnd.randrange(days * 24)
            silent = set(range(a, a + rnd.randrange(1, 30))) if g == 1 else set()
            for h in range(days * 24):
                if h in silent:
                    continue
                for k in range(2):
                    base = 300 + 150 * ((h % 24) in range(9, 19)) + (400 if h == hot else 0)
                    pts.append(Point("gpu", tags, {"power_w": round(base + rnd.uniform(-50, 50), 1),
                                                   "util_pct": float(rnd.randrange(0, 101))},
                                     t0 + h * HOUR + (13 + 1700 * k + rnd.randrange(600)) * S))
    return pts


def reference_group_stats(points, field, tag, combine, start, end, keep=lambda p: True):
    """{(tag value,): (buckets, total, peak, peak hour)} of hourly means per series, summed per
    group and hour (sum) or counted per series-hour (each), computed from the points alone."""
    per: dict[tuple, list] = {}
    for p in points:
        if start <= p.time_ns < end and field in p.fields and keep(p):
            per.setdefault((p.tags[tag], p.tags["uuid"], p.time_ns - p.time_ns % HOUR), []).append(p.fields[field])
    values: dict[str, list[tuple[int, float]]] = {}
    for (value, _uuid, b), vals in per.items():
        values.setdefault(value, []).append((b, sum(vals) / len(vals)))
    want = {}
    for value, series_hours in values.items():
        if combine == "sum":
            hours: dict[int, float] = {}
            for b, v in series_hours:
                hours[b] = hours.get(b, 0.0) + v
            series_hours = list(hours.items())
        top = max(v for _, v in series_hours)
        want[(value,)] = (len(series_hours), sum(v for _, v in series_hours), top,
                          min(b for b, v in series_hours if v == top))
    return want


def tables_read(store, call) -> set[str]:
    """The rollup tables the statements run by *call* name."""
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        store._conn.set_trace_callback(None)
    tables = r"\b(?:FROM|JOIN) ((?:rollup_(?:minute|hour|day)|day_hour_stats|group_(?:hour|day)|raw)_gpu)\b"
    return {t for sql in seen for t in re.findall(tables, sql)}


def bucket_stats_read(store, *args, **kwargs) -> tuple[dict, set[str]]:
    """store.bucket_stats(*args, **kwargs), and the rollup tables its statements name."""
    got: dict = {}
    read = tables_read(store, lambda: got.update(store.bucket_stats(*args, **kwargs)))
    return got, read


def test_group_rollups_answer_rooms_and_racks_equal_reference(tmp_path):
    """Nine days with Seoul-midnight edges: hourly sums per rack, and GPU-hours (each),
    come from the group rollups (a row per group and day, the edge hours from g1h) and equal the
    reference, for power and utilisation, for all groups and for a where naming whole racks."""
    store = SqliteStore(tmp_path / "g.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = rooms_of_racks(t0, 9, seed=4)
    store.write(points)
    store.maintain(now_ns=t0 + 40 * DAY)
    start, end = t0 + 2 * HOUR, t0 + 9 * DAY - 3 * HOUR
    for field in ("power_w", "util_pct"):
        for tag in ("rack",):
            for combine in ("sum", "each"):
                got, read = bucket_stats_read(store, "gpu", field, start, end, 3600, group_by=[tag], combine=combine)
                # raw: the check that no rows wait for maintain()
                assert read == {"group_day_gpu", "group_hour_gpu", "raw_gpu"}, (field, tag, combine, read)
                assert_stats(got, reference_group_stats(points, field, tag, combine, start, end))
    two = {}
    read = tables_read(store, lambda: two.update(store.bucket_stats(
        "gpu", "power_w", start, end, 3600, group_by=["rack"], where={"rack": ["r00", RACKS[1]]})))
    assert "group_day_gpu" in read and "rollup_hour_gpu" not in read
    assert_stats(two, reference_group_stats(points, "power_w", "rack", "sum", start, end,
                                            keep=lambda p: p.tags["rack"] in ("r00", RACKS[1])))
    store.close()


def test_counter_increase_with_hour_edges_reads_a_statement_per_edge(tmp_path):
    """Whole hours at the edges (a Seoul quarter's): each edge is three plain statements over
    r1h (first, last, max per partial day: one bucket), next to the days' one over k1d. Resets
    inside the first partial day, inside the last and at a day's first point; equal to the
    sample-by-sample sum and to the default."""
    store = SqliteStore(tmp_path / "c.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    day0 = 1_780_000_000 * S // DAY * DAY
    resets = {0: day0 + 8 * HOUR, 1: day0 + 3 * DAY + 12 * HOUR, 2: day0 + 2 * DAY}
    points = []
    for g in range(3):
        energy = 1e9 * (g + 1)
        for k in range(4 * 72):
            t = day0 + 2 * HOUR + k * 20 * MINUTE + 7 * S
            energy = 3e3 + k if resets[g] <= t < resets[g] + 20 * MINUTE else energy + 1e5 + 1e3 * (k % 7)
            points.append(Point("gpu", gpu_tags("s1", "n1", g), {"energy_j": energy}, t))
    store.write(points)
    start, end = day0 + 5 * HOUR, day0 + 3 * DAY + 17 * HOUR
    want = sample_by_sample_increase(points, "energy_j", start, end)
    assert sorted(n for _, n in want.values()) == [1, 1, 1]
    for settle in (False, True):
        if settle:
            store.maintain(now_ns=day0 + 30 * DAY)
        seen: list[str] = []
        store._conn.set_trace_callback(seen.append)
        got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
        store._conn.set_trace_callback(None)
        default = Store.counter_increase(store, "gpu", "energy_j", start, end, group_by=("uuid",))
        assert got.keys() == want.keys() == default.keys()
        for key, (inc, n) in want.items():
            assert got[key][1] == n == default[key][1] and math.isclose(got[key][0], inc, rel_tol=1e-12), key
            assert math.isclose(default[key][0], inc, rel_tol=1e-12), key
        days = [q for q in seen if "FROM counter_day_gpu" in q]
        edges = [q for q in seen if "FROM rollup_hour_gpu" in q and "GROUP BY series_id" in q]
        # before maintain(): raw rows wait, the default reads
        hours = [q for q in seen if "rollup_hour_gpu" in q]
        assert (len(days), len(edges)) == ((1, 6) if settle else (0, 0)) and (not settle or hours == edges), seen
        assert not [q for q in seen if "rollup_day_gpu" in q and settle], seen
    store.close()


def _counter_points(day0: int, days: list[int], g: int, drop_at: int | None = None) -> list[Point]:
    """Energy points of GPU *g* every 30 min on *days*, rising 1e5 J a step from an offset that
    grows with the day; from step *drop_at* of the first day on it counts again from near 0
    (a reset), and the next day starts above where it was (a device swap, say)."""
    out = []
    for d in days:
        for k in range(48):
            t = day0 + d * DAY + k * 30 * MINUTE + 11 * S
            dropped = d == days[0] and drop_at is not None and k >= drop_at
            energy = 2e3 * k if dropped else 5e9 * (g + 1) + d * 5e6 + 1e5 * k
            errors = k - drop_at if dropped else 100 * d + k
            out.append(Point("gpu", gpu_tags("s1", "n1", g), {"energy_j": energy, "ecc_corrected": errors}, t))
    return out


def test_counter_days_follow_late_days_and_late_points(tmp_path):
    """k1d after days arrive out of order: a day filling a gap, a day before the first one, a
    late point that becomes a day's last (dropping below the next day's first: a reset at the
    junction). For periods starting on each day: equal to the sample-by-sample sum, for a float
    and an int counter, and the int one stays an int."""
    store = SqliteStore(tmp_path / "k.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    day0 = 1_780_000_000 * S // DAY * DAY
    points = _counter_points(day0, [1, 3, 5], 0) + _counter_points(day0, [1, 2, 3, 4, 5], 1, drop_at=20)
    store.write(points)
    store.maintain(now_ns=day0 + 30 * DAY)
    late = _counter_points(day0, [2, 0], 0) + _counter_points(day0, [4], 1)
    # GPU 1's day 3 ends with a point far above day 4's first: the counter reset across midnight.
    late.append(Point("gpu", gpu_tags("s1", "n1", 1), {"energy_j": 9e12, "ecc_corrected": 99}, day0 + 4 * DAY - 5 * S))
    points += late
    store.write(late)
    store.maintain(now_ns=day0 + 30 * DAY)
    resets = set()
    for field in ("energy_j", "ecc_corrected"):
        for start_day in range(5):
            start, end = day0 + start_day * DAY + 7 * HOUR, day0 + 5 * DAY + 20 * HOUR
            want = sample_by_sample_increase(points, field, start, end)
            got = store.counter_increase("gpu", field, start, end, group_by=("uuid",))
            assert got.keys() == want.keys()
            for key, (inc, n) in want.items():
                assert got[key][1] == n and math.isclose(got[key][0], inc, rel_tol=1e-12), (field, start_day, key)
                resets.add(n)
    assert resets >= {0, 1, 2}
    kinds = {type(v) for (v,) in store._conn.execute("SELECT last FROM counter_day_gpu WHERE field = 'ecc_corrected'")}
    assert kinds == {int}
    store.close()


def test_a_file_from_before_counter_days_gets_them_filled_once(tmp_path):
    """A file without k1d (and its r1h index) gets both on open, from r1d; the increase then
    reads them and equals the sample-by-sample sum."""
    path = tmp_path / "old.sqlite"
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    day0 = 1_780_000_000 * S // DAY * DAY
    points = _counter_points(day0, [0, 1, 2, 4], 0, drop_at=30) + _counter_points(day0, [1, 2, 3], 1)
    store.write(points)
    store.maintain(now_ns=day0 + 30 * DAY)
    store.close()
    as_v1_file(path)
    with sqlite3.connect(path) as c:
        c.execute("DROP TABLE k1d_gpu")
        c.execute('DROP INDEX "r1h_gpu_energy_j_counter"')
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    start, end = day0 + 3 * HOUR, day0 + 4 * DAY + 21 * HOUR
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",))
    assert [q for q in seen if "FROM counter_day_gpu" in q]
    want = sample_by_sample_increase(points, "energy_j", start, end)
    assert got.keys() == want.keys()
    for key, (inc, n) in want.items():
        assert got[key][1] == n and math.isclose(got[key][0], inc, rel_tol=1e-12), key
    indexes = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "rollup_hour_gpu_energy_j_counter" in indexes
    store.close()


def test_groups_of_whole_racks_sum_the_racks_hourly_rows(tmp_path):
    """A room's hourly power, and a tenant's (no grouping, a where naming its racks), are the
    sums of their racks' g1h rows hour by hour (no series' hours read), equal to the reference.
    A where keeping part of a rack, or GPU-hours (each) per room, read the series instead."""
    store = SqliteStore(tmp_path / "w.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = rooms_of_racks(t0, 9, seed=5)
    store.write(points)
    store.maintain(now_ns=t0 + 40 * DAY)
    start, end = t0 + 2 * HOUR, t0 + 9 * DAY - 3 * HOUR

    def read(**kw):
        got = {}
        tables = tables_read(store, lambda: got.update(store.bucket_stats("gpu", "power_w", start, end, 3600, **kw)))
        return got, tables

    got, tables = read(group_by=["room"])
    assert tables == {"group_hour_gpu", "raw_gpu"}, tables  # raw: the check that no rows wait for maintain()
    assert_stats(got, reference_group_stats(points, "power_w", "room", "sum", start, end))
    mine = ("r00", RACKS[1])
    got, tables = read(where={"rack": list(mine)})
    assert tables == {"group_hour_gpu", "raw_gpu"}, tables
    want = reference_group_stats(points, "power_w", "site", "sum", start, end, keep=lambda p: p.tags["rack"] in mine)
    assert_stats({("s1",): got[()]}, want)
    got, tables = read(where={"rack": list(mine), "host": ["n0", "n1", "n2", "n3"]})  # every host: still whole
    assert "group_hour_gpu" in tables and "rollup_hour_gpu" not in tables
    one = points[0].tags["uuid"]  # one GPU of its rack's two
    got, tables = read(where={"uuid": one})
    assert "group_hour_gpu" not in tables
    assert_stats({("s1",): got[()]}, reference_group_stats(points, "power_w", "site", "sum", start, end,
                                                           keep=lambda p: p.tags["uuid"] == one))
    got, tables = read(group_by=["room"], combine="each")
    assert "group_hour_gpu" not in tables
    assert_stats(got, reference_group_stats(points, "power_w", "room", "each", start, end))
    store.close()


def test_group_rollups_follow_late_points_new_series_and_cut_groups(tmp_path):
    """A late reading inside a rolled day and a GPU added to a rack mid-range: until maintain()
    the raw rows wait and the hours answer; after it the group rollups include both. A where
    that keeps only part of a rack (one host of two) cannot use them and reads the hours."""
    store = SqliteStore(tmp_path / "late.sqlite", raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY - 9 * HOUR
    points = rooms_of_racks(t0, 6, seed=9)
    store.write(points)
    store.maintain(now_ns=t0 + 40 * DAY)
    start, end = t0, t0 + 6 * DAY
    newcomer = dict(gpu_tags("s1", "n9", 0, rack=RACKS[1]), room="hall1")
    late = [Point("gpu", gpu_tags("s1", "n0", 0, rack="r00") | {"room": "hall0"},
                  {"power_w": 9000.0, "util_pct": 100.0}, t0 + 2 * DAY + 7 * HOUR + 5 * S)]
    late += [Point("gpu", newcomer, {"power_w": 450.0 + h, "util_pct": 50.0}, t0 + (4 * 24 + h) * HOUR + 99 * S)
             for h in range(30)]
    store.write(late)
    points += late

    def check(expect_groups: bool):
        for combine in ("sum", "each"):
            got, read = bucket_stats_read(store, "gpu", "power_w", start, end, 3600, group_by=["rack"], combine=combine)
            assert ("group_day_gpu" in read) == expect_groups, (combine, read)
            want = reference_group_stats(points, "power_w", "rack", combine, start, end)
            assert_stats(got, want)
            if combine == "sum":  # the data are as meant: the late reading makes rack r00's peak hour
                assert want[("r00",)][3] == t0 + 2 * DAY + 7 * HOUR

    check(expect_groups=False)
    store.maintain(now_ns=t0 + 40 * DAY)
    check(expect_groups=True)
    one_host = {}
    read = tables_read(store, lambda: one_host.update(store.bucket_stats(
        "gpu", "power_w", start, end, 3600, group_by=["rack"], where={"host": ["n0", "n9"]})))
    assert "group_day_gpu" not in read
    assert_stats(one_host, reference_group_stats(points, "power_w", "rack", "sum", start, end,
                                                 keep=lambda p: p.tags["host"] in ("n0", "n9")))
    store.close()


def test_file_from_before_group_rollups_reads_older_days_by_hour(tmp_path):
    """A file rolled up before the group rollups existed gets them for the days after its newest
    hourly row: a range reaching back before that reads the hours, one inside it the groups, and
    both equal the reference."""
    path = tmp_path / "old.sqlite"
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    t0 = 1_780_000_000 * S // DAY * DAY
    points = rooms_of_racks(t0, 6, seed=3)
    old = [p for p in points if p.time_ns < t0 + 3 * DAY]
    store.write(old)
    store.maintain(now_ns=t0 + 40 * DAY)
    store.close()
    as_v1_file(path)
    with sqlite3.connect(path) as c:  # make it look like a file from before the group rollups
        for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                 "(name LIKE 'g1h_%' OR name LIKE 'g1d_%')").fetchall():
            c.execute(f"DROP TABLE {name}")
        c.execute("DELETE FROM meta WHERE key LIKE 'g1_from:%'")
    store = SqliteStore(path, raw_retention_days=1, rollup_1m_retention_days=1)
    assert dict(store._conn.execute("SELECT key, value FROM meta"))["group_rollup_from:gpu"] == t0 + 3 * DAY
    store.write([p for p in points if p.time_ns >= t0 + 3 * DAY])
    store.maintain(now_ns=t0 + 40 * DAY)
    for start, end, groups in ((t0, t0 + 6 * DAY, False), (t0 + 3 * DAY, t0 + 6 * DAY - HOUR, True)):
        got, read = bucket_stats_read(store, "gpu", "util_pct", start, end, 3600, group_by=["rack"], combine="each")
        assert ("group_day_gpu" in read) == groups, (start, read)
        assert_stats(got, reference_group_stats(points, "util_pct", "rack", "each", start, end))
    store.close()
