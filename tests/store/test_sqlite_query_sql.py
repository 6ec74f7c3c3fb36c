"""SqliteStore.query()'s SQL aggregation (_query_sql) against the Python merge it replaced
(kept for first/last over groups of several series) and against a reference computed here:
many series, groups spanning many series, rollups plus an unrolled raw tail, partial edges,
expired finer levels, int / bool / str fields, a read-only store."""

from __future__ import annotations

import random

import pytest

from dcim.metrics import Point
from dcim.store.sqlite import SqliteStore
from tests.store.contract import HOUR, MINUTE, S, _as_dict, _assert_close, _expected, gpu_tags, recent_hour_ns

AGGS = ("mean", "sum", "min", "max", "count", "first", "last")
GROUPS = ((), ("rack",), ("uuid",), ("rack", "host"))
EVERY = (None, 7, 60, 600, 3600, 86_400)


def _points(t0: int, hours: int, rng: random.Random) -> list[Point]:
    pts = []
    for r in range(3):
        for h in range(3):
            for g in range(2):
                tags = gpu_tags("s1", f"r{r}h{h}", g, rack=f"r{r}")
                t = t0 + rng.randrange(0, 10 * MINUTE)
                while t < t0 + hours * HOUR:
                    fields = {}
                    if rng.random() < 0.9:
                        fields["power_w"] = round(rng.uniform(50, 700), 3)
                    if rng.random() < 0.7:
                        fields["mem_used_bytes"] = rng.randrange(0, 1 << 40)
                    if not fields:
                        fields["temp_c"] = 40.0
                    pts.append(Point("gpu", tags, fields, t))
                    t += rng.randrange(1, 25) * MINUTE + rng.randrange(0, S)
    for c in range(4):
        t = t0
        while t < t0 + hours * HOUR:
            fields = {"ok": rng.random() < 0.6, "points": rng.randrange(0, 1000)}
            if rng.random() < 0.5:
                fields["error"] = rng.choice(["timeout", "refused", "bad reply"])
            pts.append(Point("collector", {"collector": f"c{c % 2}", "target": f"t{c}"}, fields, t))
            t += rng.randrange(5, 90) * MINUTE
    return pts


def _python_merge(store, *args, **kw):
    """The same query through the Python merge (_query_sql declined)."""
    orig = store._query_sql
    store._query_sql = lambda *a, **k: None
    try:
        return store.query(*args, **kw)
    finally:
        store._query_sql = orig


def _compare(store, points, start, end, check_reference=True):
    for measurement, fields in (("gpu", ["power_w", "mem_used_bytes"]), ("collector", ["ok", "error", "points"])):
        for agg in AGGS:
            for group_by in GROUPS if measurement == "gpu" else ((), ("collector",)):
                for every_s in EVERY:
                    got = store.query(measurement, fields, start, end, every_s=every_s, agg=agg, group_by=group_by)
                    slow = _python_merge(store, measurement, fields, start, end, every_s=every_s, agg=agg,
                                         group_by=group_by)
                    where = f"{measurement} {agg} {group_by} every={every_s}"
                    assert [s.tags for s in got] == [s.tags for s in slow], where
                    kept = [f for f in fields if f in (slow[0].values if slow else got[0].values if got else fields)]
                    _assert_close(_as_dict(got), _as_dict(slow), where)
                    for a, b in zip(got, slow):
                        assert a.times_ns == b.times_ns, where
                        for f in kept:
                            assert [type(v) for v in a.values[f]] == [type(v) for v in b.values[f]], (where, f)
                    if check_reference:
                        mine = [p for p in points if p.measurement == measurement]
                        qf = [f for f in kept if f in got[0].values] if got else kept
                        want = _expected(mine, qf, agg, start, end, None if every_s is None else every_s * S,
                                         group_by)
                        _assert_close(_as_dict(got), want, where)


@pytest.fixture
def filled(tmp_path):
    rng = random.Random(11)
    t0 = recent_hour_ns(60)  # 60 hours ago: rollups, raw and 1 m all still there
    path = tmp_path / "q.sqlite"
    store = SqliteStore(path)
    old = _points(t0, 40, rng)
    store.write(old)
    store.maintain()
    # Rows merged into no rollup yet: new ones and late ones inside the rolled-up range.
    tail = _points(t0 + 3 * HOUR + 17 * MINUTE, 50, random.Random(5))
    tail = [p for p in tail if p.time_ns not in {q.time_ns for q in old}]
    store.write(tail)
    yield store, path, t0, old + tail
    store.close()


def test_sql_matches_python_merge_and_reference(filled):
    store, _, t0, points = filled
    _compare(store, points, t0, t0 + 55 * HOUR)  # aligned
    _compare(store, points, t0 + 13 * MINUTE + 7 * S + 3, t0 + 47 * HOUR + 31 * MINUTE)  # partial edges


def test_sql_after_full_maintain_and_read_only(filled):
    store, path, t0, points = filled
    store.maintain()
    _compare(store, points, t0 - HOUR, t0 + 60 * HOUR)
    with SqliteStore(path, readonly=True) as ro:
        _compare(ro, points, t0 + 5 * MINUTE, t0 + 30 * HOUR + 1)
        # The temp table of a group query twice in a row, and with a where filter.
        for _ in range(2):
            got = ro.query("gpu", ["power_w"], t0, t0 + 40 * HOUR, every_s=3600, group_by=("rack",),
                           where={"host": ["r0h0", "r1h2", "r2h1"]})
            mine = [p for p in points if p.measurement == "gpu" and p.tags["host"] in ("r0h0", "r1h2", "r2h1")]
            _assert_close(_as_dict(got), _expected(mine, ["power_w"], "mean", t0, t0 + 40 * HOUR, HOUR, ("rack",)),
                          "ro where")


def test_sql_after_retention(filled):
    """Raw and 1 m rows gone: edges widen to hours; both paths must still agree."""
    store, _, t0, points = filled
    store.maintain(now_ns=t0 + 400 * 86_400 * S)
    _compare(store, points, t0 + 13 * MINUTE, t0 + 47 * HOUR + 31 * MINUTE, check_reference=False)


def test_many_series_group_by(tmp_path):
    """A group of many series per rack (the report's GPU rows), vs a reference computed here."""
    t0 = recent_hour_ns(30)
    rng = random.Random(3)
    pts = []
    for r in range(4):
        for h in range(8):
            for g in range(8):
                tags = gpu_tags("s1", f"r{r}-h{h}", g, rack=f"r{r}")
                pts += [Point("gpu", tags, {"power_w": round(rng.uniform(80, 700), 2), "util_pct": float(rng.randrange(101))},
                              t0 + k * HOUR + rng.randrange(0, HOUR)) for k in range(24)]
    with SqliteStore(tmp_path / "m.sqlite") as store:
        store.write(pts)
        store.maintain()
        for agg in ("mean", "sum", "min", "max", "count"):
            for every_s in (3600, 86_400, None):
                got = store.query("gpu", ["power_w", "util_pct"], t0, t0 + 24 * HOUR, every_s=every_s, agg=agg,
                                  group_by=("rack",))
                want = _expected(pts, ["power_w", "util_pct"], agg, t0, t0 + 24 * HOUR,
                                 None if every_s is None else every_s * S, ("rack",))
                _assert_close(_as_dict(got), want, f"{agg} {every_s}")
                assert [s.tags["rack"] for s in got] == ["r0", "r1", "r2", "r3"]
