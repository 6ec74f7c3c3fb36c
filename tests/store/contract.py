"""The store contract: what every Store backend must do, tested the same way for each.

A backend's test module subclasses ``StoreContract`` and provides:

- a ``store`` fixture yielding an open, empty-or-shared Store;
- optionally ``settle(self, store)``: bring the backend to its "steady" state (SQLite rolls
  up; InfluxDB has nothing to do). Query checks run before *and* after settle, so results
  must not depend on background work.

Every test writes its data under a site name unique to the test, and filters on it, so the
suite also works against a shared database. Expected values are computed here, from the data
the test generated, never from the backend. Times are UTC nanoseconds.
"""

from __future__ import annotations

import math
import random
import time
import uuid

import pytest

from dcim.metrics import Point
from dcim.store.base import AGGREGATES, StoreError

S = 1_000_000_000
MINUTE = 60 * S
HOUR = 3600 * S
DAY = 86400 * S


def recent_hour_ns(hours_back: int = 3) -> int:
    """An hour boundary a few hours ago: recent enough to sit inside every raw retention."""
    now = time.time_ns()
    return now - now % HOUR - hours_back * HOUR


def sample_by_sample_increase(points, field: str, start: int, end: int) -> dict[tuple, tuple[float, int]]:
    """Per GPU (uuid,): the counter's increase over [start, end) as the sum of the steps between
    consecutive points, a drop counting as the new value (a reset), and the resets counted."""
    want: dict[tuple, tuple[float, int]] = {}
    last: dict[tuple, float] = {}
    for p in sorted(points, key=lambda p: p.time_ns):
        if start <= p.time_ns < end:
            key, v = (p.tags["uuid"],), p.fields[field]
            inc, resets = want.get(key, (0.0, 0))
            if key in last:
                inc, resets = (inc + v - last[key], resets) if v >= last[key] else (inc + v, resets + 1)
            want[key], last[key] = (inc, resets), v
    return want


def gpu_tags(site: str, host: str, gpu: int, rack: str = "r01") -> dict[str, str]:
    return {"site": site, "room": "hall1", "rack": rack, "host": host, "gpu": str(gpu),
            "uuid": f"GPU-{site}-{host}-{gpu}", "model": "H100"}


def _aggregate(agg: str, samples: list[tuple[int, object]]):
    """Reference aggregate of (time_ns, value) samples, written independently of any store."""
    if not samples:
        return None
    values = [v for _, v in samples]
    if agg == "mean":
        return sum(values) / len(values)
    if agg == "sum":
        return sum(values)
    if agg == "count":
        return len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    ordered = sorted(samples, key=lambda s: s[0])
    return ordered[0][1] if agg == "first" else ordered[-1][1]


def _expected(points: list[Point], fields: list[str], agg: str, start_ns: int, end_ns: int,
              every_ns: int | None, group_by: tuple[str, ...]) -> dict[tuple, dict[int, dict[str, object]]]:
    """{group tag values: {bucket start: {field: value or None}}}, empty buckets left out."""
    samples: dict[tuple, dict[int, dict[str, list]]] = {}
    for p in points:
        if not start_ns <= p.time_ns < end_ns:
            continue
        g = tuple(p.tags.get(t, "") for t in group_by)
        b = start_ns if every_ns is None else p.time_ns - p.time_ns % every_ns
        for f in fields:
            if f in p.fields:
                samples.setdefault(g, {}).setdefault(b, {}).setdefault(f, []).append((p.time_ns, p.fields[f]))
    return {g: {b: {f: _aggregate(agg, by_field.get(f, [])) for f in fields} for b, by_field in buckets.items()}
            for g, buckets in samples.items()}


def _as_dict(series_list) -> dict[tuple, dict[int, dict[str, object]]]:
    out = {}
    for s in series_list:
        rows = {}
        for i, t in enumerate(s.times_ns):
            rows[t] = {f: vals[i] for f, vals in s.values.items()}
        out[tuple(s.tags.values())] = rows
    return out


def _assert_close(got, want, where: str) -> None:
    assert got.keys() == want.keys(), f"{where}: groups {sorted(got)} != {sorted(want)}"
    for g in want:
        assert sorted(got[g]) == sorted(want[g]), f"{where} {g}: bucket times differ"
        for b in want[g]:
            for f, w in want[g][b].items():
                v = got[g][b].get(f)
                if w is None:
                    assert v is None, f"{where} {g} {b} {f}: expected no value, got {v!r}"
                elif isinstance(w, float):
                    assert v == pytest.approx(w, rel=1e-9, abs=1e-9), f"{where} {g} {b} {f}"
                else:
                    assert v == w, f"{where} {g} {b} {f}: {v!r} != {w!r}"


class StoreContract:
    """Backend-agnostic tests. Subclasses provide the ``store`` fixture and may override settle()."""

    def settle(self, store) -> None:
        """Bring the store to its steady state (rollups, compaction). Default: flush only."""
        store.flush()

    # ---------------------------------------------------------------- helpers

    @pytest.fixture
    def site(self) -> str:
        return "t" + uuid.uuid4().hex[:10]

    def put(self, store, points: list[Point]) -> None:
        store.write(points)
        store.flush()

    def check_both_states(self, store, check) -> None:
        """Run *check* before and after settle(): answers must not depend on it."""
        check("before settle")
        self.settle(store)
        check("after settle")

    def fleet(self, site: str, t0: int, *, hosts: int = 2, gpus: int = 2, step_s: int = 7,
              span_s: int = 5400, seed: int = 1) -> list[Point]:
        """GPU points every *step_s* from t0 + 13 s, some readings missing (absent, not 0)."""
        rnd = random.Random(seed)
        points = []
        for h in range(hosts):
            for g in range(gpus):
                tags = gpu_tags(site, f"node{h}", g, rack=f"r{h % 2:02d}")
                for k in range(span_s // step_s):
                    fields = {"power_w": round(rnd.uniform(80.0, 700.0), 3),
                              "mem_used_bytes": rnd.randrange(0, 80 << 30)}
                    if rnd.random() < 0.8:  # temperature sometimes unsupported/missing
                        fields["temp_c"] = round(rnd.uniform(25.0, 85.0), 2)
                    points.append(Point("gpu", tags, fields, t0 + 13 * S + k * step_s * S + rnd.randrange(S)))
        return points

    # ---------------------------------------------------------------- latest

    def test_write_then_latest(self, store, site):
        t0 = recent_hour_ns()
        a, b = gpu_tags(site, "n1", 0), gpu_tags(site, "n1", 1)
        self.put(store, [
            Point("gpu", a, {"power_w": 100.0, "temp_c": 40.0}, t0),
            Point("gpu", a, {"power_w": 150.0, "temp_c": 41.5}, t0 + 5 * S),
            Point("gpu", b, {"power_w": 300.0, "temp_c": 60.0}, t0 + 2 * S),
        ])
        got = {p.tags["uuid"]: p for p in store.latest("gpu", where={"site": site})}
        assert set(got) == {a["uuid"], b["uuid"]}
        assert got[a["uuid"]].fields == {"power_w": 150.0, "temp_c": 41.5}
        assert got[a["uuid"]].time_ns == t0 + 5 * S
        assert got[a["uuid"]].tags == a
        assert got[a["uuid"]].measurement == "gpu"
        assert got[b["uuid"]].fields == {"power_w": 300.0, "temp_c": 60.0}
        assert got[b["uuid"]].time_ns == t0 + 2 * S

    def test_latest_takes_newest_of_each_field(self, store, site):
        t0 = recent_hour_ns()
        a = gpu_tags(site, "n1", 0)
        self.put(store, [
            Point("gpu", a, {"power_limit_w": 700.0, "power_w": 100.0}, t0),
            Point("gpu", a, {"power_w": 120.0, "temp_c": 50.0}, t0 + 10 * S),
            Point("gpu", a, {"power_w": 130.0}, t0 + 20 * S),
        ])
        (p,) = store.latest("gpu", where={"site": site})
        assert p.fields == {"power_limit_w": 700.0, "power_w": 130.0, "temp_c": 50.0}
        assert p.time_ns == t0 + 20 * S

    def test_latest_where_str_and_list(self, store, site):
        t0 = recent_hour_ns()
        tags = [gpu_tags(site, f"n{i}", 0) for i in range(3)]
        self.put(store, [Point("gpu", t, {"power_w": 10.0 * i}, t0 + i * S) for i, t in enumerate(tags)])
        one = store.latest("gpu", where={"site": site, "host": "n1"})
        assert [p.tags["host"] for p in one] == ["n1"]
        assert one[0].fields == {"power_w": 10.0}
        two = store.latest("gpu", where={"site": site, "host": ["n0", "n2"]})
        assert sorted(p.tags["host"] for p in two) == ["n0", "n2"]
        assert store.latest("gpu", where={"site": site, "host": []}) == []
        assert store.latest("gpu", where={"site": site, "host": "nope"}) == []

    def test_latest_since_ns(self, store, site):
        t0 = recent_hour_ns()
        old, fresh = gpu_tags(site, "old", 0), gpu_tags(site, "fresh", 0)
        self.put(store, [
            Point("gpu", old, {"power_w": 1.0}, t0),
            Point("gpu", fresh, {"power_w": 2.0, "temp_c": 30.0}, t0),
            Point("gpu", fresh, {"power_w": 3.0}, t0 + 60 * S),
        ])
        got = store.latest("gpu", where={"site": site}, since_ns=t0 + 30 * S)
        assert [p.tags["host"] for p in got] == ["fresh"]
        # temp_c was only seen before since_ns: it is not part of the answer
        assert got[0].fields == {"power_w": 3.0}
        assert got[0].time_ns == t0 + 60 * S
        # since_ns is inclusive
        assert len(store.latest("gpu", where={"site": site}, since_ns=t0 + 60 * S)) == 1
        assert store.latest("gpu", where={"site": site}, since_ns=t0 + 60 * S + 1) == []

    def test_gpu_summary(self, store, site):
        t0 = recent_hour_ns()
        a, b, c, d, old = (gpu_tags(site, "n1", i) for i in range(5))
        self.put(store, [
            # capped (500 < 700), throttling for a masked reason (0x20)
            Point("gpu", a, {"power_w": 400.0, "power_limit_w": 500.0, "power_limit_default_w": 700.0,
                             "throttle_reasons": 0x20 | 0x1}, t0 + 10 * S),
            # at its default, throttling for an unmasked reason only (0x4)
            Point("gpu", b, {"power_w": 650.0, "power_limit_w": 700.0, "power_limit_default_w": 700.0,
                             "throttle_reasons": 0x4}, t0 + 20 * S),
            # within the margin of its default: not a cap; no power reading
            Point("gpu", c, {"power_limit_w": 699.7, "power_limit_default_w": 700.0}, t0 + 5 * S),
            # the newest row lacks the limits: the earlier ones count (latest()'s look-back)
            Point("gpu", d, {"power_w": 90.0, "power_limit_w": 300.0, "power_limit_default_w": 700.0,
                             "throttle_reasons": 0x8}, t0),
            Point("gpu", d, {"power_w": 100.0, "throttle_reasons": 0}, t0 + 30 * S),
            # seen only before since_ns in the second check
            Point("gpu", old, {"power_w": 1000.0, "power_limit_w": 200.0, "power_limit_default_w": 700.0,
                               "throttle_reasons": 0x8}, t0 - 60 * S),
        ])
        mask = 0x8 | 0x20

        def check(when):
            got = store.gpu_summary(mask, where={"site": site})
            assert got.count == 5, when
            assert got.power_w == pytest.approx(400.0 + 650.0 + 100.0 + 1000.0), when
            assert got.capped == 3, when  # a, d, old
            assert got.capped_limit_w == pytest.approx(500.0 + 300.0 + 200.0), when
            assert got.capped_default_w == pytest.approx(2100.0), when
            assert got.newest_ns == t0 + 30 * S, when
            assert sorted(p.tags["uuid"] for p in got.flagged) == sorted([a["uuid"], old["uuid"]]), when
            flagged_a = next(p for p in got.flagged if p.tags == a)
            assert flagged_a.fields["throttle_reasons"] == 0x21 and flagged_a.time_ns == t0 + 10 * S, when

            recent = store.gpu_summary(mask, where={"site": site}, since_ns=t0)
            assert recent.count == 4 and recent.capped == 2, when
            assert recent.power_w == pytest.approx(1150.0), when
            assert [p.tags["uuid"] for p in recent.flagged] == [a["uuid"]], when
            none = store.gpu_summary(mask, where={"site": site, "host": "nope"})
            assert (none.count, none.capped, none.power_w, none.newest_ns, none.flagged) == (0, 0, 0.0, None, []), when

        self.check_both_states(store, check)

    @pytest.mark.parametrize("combine", ["sum", "mean", "each"])
    @pytest.mark.parametrize("every_s", [600, 3600])
    def test_bucket_stats_match_reference(self, store, site, combine, every_s):
        t0 = recent_hour_ns(4)
        points = self.fleet(site, t0, hosts=3, gpus=2, step_s=50, span_s=3 * 3600, seed=11)
        self.put(store, points)
        start, end = t0 + 1234 * S, t0 + 3 * HOUR + 77 * S  # edges inside buckets
        step = every_s * S

        def reference(field, group_by):
            per_series: dict[tuple, dict[int, list]] = {}
            for p in points:
                if start <= p.time_ns < end and field in p.fields:
                    key = (p.tags["uuid"], p.time_ns - p.time_ns % step)
                    per_series.setdefault(key, []).append(p.fields[field])
            rack_of = {p.tags["uuid"]: p.tags for p in points}
            if combine == "each":  # every series on its own, then added up per group
                mine: dict[tuple, dict[str, dict[int, float]]] = {}
                for (uuid, b), vals in per_series.items():
                    g = tuple(rack_of[uuid][t] for t in group_by)
                    mine.setdefault(g, {}).setdefault(uuid, {})[b] = sum(vals) / len(vals)
                want = {}
                for g, by_uuid in mine.items():
                    values = [(v, b) for buckets in by_uuid.values() for b, v in buckets.items()]
                    top = max(v for v, _ in values)
                    want[g] = (len(values), sum(v for v, _ in values), top, min(b for v, b in values if v == top))
                return want
            per_group: dict[tuple, dict[int, list]] = {}
            for (uuid, b), vals in per_series.items():
                g = tuple(rack_of[uuid][t] for t in group_by)
                per_group.setdefault(g, {}).setdefault(b, []).append(sum(vals) / len(vals))
            want = {}
            for g, buckets in per_group.items():
                values = {b: (sum(v) if combine == "sum" else sum(v) / len(v)) for b, v in buckets.items()}
                top = max(values.values())
                want[g] = (len(values), sum(values.values()), top, min(b for b, v in values.items() if v == top))
            return want

        def check(when):
            for field, group_by in (("power_w", ("rack",)), ("temp_c", ("uuid",)), ("power_w", ())):
                got = store.bucket_stats("gpu", field, start, end, every_s, group_by=group_by,
                                         where={"site": site}, combine=combine)
                want = reference(field, group_by)
                assert set(got) == set(want), (when, field, group_by, sorted(got), sorted(want))
                for g, (n, total, peak, peak_ns) in want.items():
                    st = got[g]
                    assert st.buckets == n, (when, field, g)
                    assert st.total == pytest.approx(total, rel=1e-9), (when, field, g)
                    assert st.peak == pytest.approx(peak, rel=1e-9), (when, field, g)
                    assert st.peak_ns == peak_ns, (when, field, g)
            assert store.bucket_stats("gpu", "power_w", start, end, every_s, where={"site": site, "host": "nope"}) == {}

        self.check_both_states(store, check)

    def test_missing_fields_are_absent(self, store, site):
        t0 = recent_hour_ns()
        a = gpu_tags(site, "n1", 0)
        self.put(store, [Point("gpu", a, {"power_w": 200.0}, t0 + 1 * S),
                         Point("gpu", a, {"power_w": 220.0}, t0 + 2 * S)])
        (p,) = store.latest("gpu", where={"site": site})
        assert p.fields == {"power_w": 200.0 + 20.0}
        assert "temp_c" not in p.fields

        def check(state):
            for agg in ("mean", "max", "count", "last"):
                (s,) = store.query("gpu", ["power_w", "temp_c"], t0, t0 + MINUTE, agg=agg, where={"site": site})
                assert s.values["temp_c"] == [None], f"{state} {agg}"
                assert s.values["power_w"][0] is not None

        self.check_both_states(store, check)

    # ---------------------------------------------------------------- types and time

    def test_value_kinds_round_trip(self, store, site):
        t0 = recent_hour_ns()
        g = gpu_tags(site, "n1", 0)
        c = {"collector": f"snmp-{site}", "target": "pdu1"}
        o = {"site": site, "host": "n1", "uuid": g["uuid"], "action": "cap"}
        u = {"site": site, "ups": "ups1"}
        self.put(store, [
            Point("gpu", g, {"power_w": 300.0, "mem_used_bytes": 81_920_000_123, "throttle_reasons": 4}, t0),
            Point("collector", c, {"ok": False, "error": "timeout after 2 s", "points": 0, "duration_s": 2.5}, t0),
            Point("optimizer", o, {"reason": "rack r01 over budget: 12.5 kW", "mode": "advise",
                                   "power_limit_w": 450.0}, t0),
            Point("ups", u, {"on_battery": True, "load_pct": 40.0}, t0),
        ])
        (gp,) = store.latest("gpu", where={"site": site})
        assert gp.fields == {"power_w": 300.0, "mem_used_bytes": 81_920_000_123, "throttle_reasons": 4}
        assert type(gp.fields["power_w"]) is float
        assert type(gp.fields["mem_used_bytes"]) is int and type(gp.fields["throttle_reasons"]) is int
        (cp,) = store.latest("collector", where={"collector": c["collector"]})
        assert cp.fields == {"ok": False, "error": "timeout after 2 s", "points": 0, "duration_s": 2.5}
        assert type(cp.fields["ok"]) is bool and type(cp.fields["points"]) is int
        (op,) = store.latest("optimizer", where={"site": site})
        assert op.fields["reason"] == "rack r01 over budget: 12.5 kW" and op.fields["mode"] == "advise"
        (up,) = store.latest("ups", where={"site": site})
        assert up.fields["on_battery"] is True

        def check(state):
            for agg in ("first", "last"):
                (s,) = store.query("collector", ["ok", "error"], t0, t0 + S, agg=agg,
                                   where={"collector": c["collector"]})
                assert s.values == {"ok": [False], "error": ["timeout after 2 s"]}, state
                assert type(s.values["ok"][0]) is bool, state
                (s,) = store.query("gpu", ["mem_used_bytes"], t0, t0 + S, agg=agg, where={"site": site})
                assert s.values["mem_used_bytes"] == [81_920_000_123] and type(s.values["mem_used_bytes"][0]) is int
            (s,) = store.query("optimizer", ["reason"], t0, t0 + S, agg="count", where={"site": site})
            assert s.values["reason"] == [1], state

        self.check_both_states(store, check)

    def test_times_keep_nanoseconds(self, store, site):
        t0 = recent_hour_ns() + 123_456_789
        a = gpu_tags(site, "n1", 0)
        self.put(store, [Point("gpu", a, {"power_w": 1.0}, t0), Point("gpu", a, {"power_w": 2.0}, t0 + 1)])
        (p,) = store.latest("gpu", where={"site": site})
        assert p.time_ns == t0 + 1 and p.fields == {"power_w": 2.0}

        def check(state):
            (s,) = store.query("gpu", ["power_w"], t0, t0 + 2, agg="count", where={"site": site})
            assert s.values["power_w"] == [2], state
            (s,) = store.query("gpu", ["power_w"], t0 + 1, t0 + 2, agg="first", where={"site": site})
            assert s.values["power_w"] == [2.0] and s.times_ns == [t0 + 1], state
            assert store.query("gpu", ["power_w"], t0 - 10, t0, agg="count", where={"site": site}) == []

        self.check_both_states(store, check)

    # ---------------------------------------------------------------- query

    @pytest.mark.parametrize("agg", AGGREGATES)
    @pytest.mark.parametrize("every_s", [None, 60, 300, 3600])
    def test_aggregates_match_reference(self, store, site, agg, every_s):
        t0 = recent_hour_ns(3)
        points = self.fleet(site, t0, span_s=2 * 3600 + 600)
        self.put(store, points)
        # An unaligned range, cutting into the first and last buckets.
        start, end = t0 + 95 * S + 123, t0 + 2 * HOUR + 317 * S
        fields = ["power_w", "temp_c", "mem_used_bytes"]
        want = _expected(points, fields, agg, start, end, None if every_s is None else every_s * S, ("uuid",))

        def check(state):
            got = store.query("gpu", fields, start, end, every_s=every_s, agg=agg, group_by=["uuid"],
                              where={"site": site})
            _assert_close(_as_dict(got), want, f"{state} {agg} every={every_s}")
            if agg == "count" or agg == "sum":
                for s in got:
                    assert all(type(v) is int for v in s.values["mem_used_bytes"] if v is not None)

        self.check_both_states(store, check)

    def counters(self, site: str) -> tuple[list[Point], int, int]:
        """Four GPUs' energy_j every 20 min for 3.5 days ending a day ago (odd nanoseconds): one
        resets inside a day, one at the first point of a day; and a range cutting into the
        first and last days."""
        rnd = random.Random(7)
        day0 = recent_hour_ns(0) // DAY * DAY - 4 * DAY
        points = []
        for h in range(2):
            for g in range(2):
                tags = gpu_tags(site, f"node{h}", g, rack=f"r{h:02d}")
                energy = rnd.uniform(0, 1e9)
                for k in range(3 * 72 + 40):
                    t = day0 + 2 * HOUR + k * 20 * MINUTE + rnd.randrange(S)
                    if (h, g, k) in ((1, 0, 100), (0, 1, 138)):  # k = 138: the first point of day 2
                        energy = 5e3 + k
                    else:
                        energy += rnd.uniform(1e5, 9e5)
                    points.append(Point("gpu", tags, {"energy_j": round(energy, 3)}, t))
        return points, day0 + 5 * HOUR + 7 * S, day0 + 3 * DAY + 17 * HOUR

    @pytest.mark.parametrize("group_by", [("uuid",), ("rack",), ()])
    def test_counter_days_match_reference(self, store, site, group_by):
        """A counter's first, last and max per UTC day, over a range cutting into its first and
        last days; groups of one GPU, of two, of all."""
        points, start, end = self.counters(site)
        self.put(store, points)
        samples: dict[tuple, dict[int, list]] = {}
        for p in sorted(points, key=lambda p: p.time_ns):
            if start <= p.time_ns < end:
                key = tuple(p.tags[t] for t in group_by)
                samples.setdefault(key, {}).setdefault(p.time_ns - p.time_ns % DAY, []).append(p.fields["energy_j"])
        want = {k: (sorted(days), [days[d][0] for d in sorted(days)], [days[d][-1] for d in sorted(days)],
                    [max(days[d]) for d in sorted(days)]) for k, days in samples.items()}
        assert any(max(v) > v[-1] for days in samples.values() for v in days.values())  # the reset is inside

        def check(state):
            got = store.counter_days("gpu", "energy_j", start, end, group_by=group_by, where={"site": site})
            assert {k: (c.times_ns, c.firsts, c.lasts, c.maxes) for k, c in got.items()} == want, state

        self.check_both_states(store, check)

    def test_counter_increase_matches_the_sample_by_sample_sum(self, store, site):
        """Per GPU: the sum of increases between consecutive points, a drop counting as the new
        value (a reset inside a day and one at a day's first point), and the resets counted."""
        points, start, end = self.counters(site)
        self.put(store, points)
        want = sample_by_sample_increase(points, "energy_j", start, end)
        assert sorted(r for _, r in want.values()) == [0, 0, 1, 1]

        def check(state):
            got = store.counter_increase("gpu", "energy_j", start, end, group_by=("uuid",), where={"site": site})
            assert got.keys() == want.keys(), state
            for key, (inc, resets) in want.items():
                assert got[key][1] == resets and math.isclose(got[key][0], inc, rel_tol=1e-9), (state, key)

        self.check_both_states(store, check)

    def test_where_str_and_list(self, store, site):
        t0 = recent_hour_ns()
        points = self.fleet(site, t0, hosts=3, gpus=1, span_s=600)
        self.put(store, points)
        end = t0 + HOUR

        def total(hosts):
            return sum(p.fields["power_w"] for p in points if p.tags["host"] in hosts)

        def check(state):
            (s,) = store.query("gpu", ["power_w"], t0, end, agg="sum", where={"site": site, "host": "node1"})
            assert s.values["power_w"][0] == pytest.approx(total({"node1"})), state
            (s,) = store.query("gpu", ["power_w"], t0, end, agg="sum", where={"site": site, "host": ["node0", "node2"]})
            assert s.values["power_w"][0] == pytest.approx(total({"node0", "node2"})), state
            assert store.query("gpu", ["power_w"], t0, end, where={"site": site, "host": "node9"}) == []

        self.check_both_states(store, check)

    def test_group_by_two_tags_sorted(self, store, site):
        t0 = recent_hour_ns()
        points = []
        # Written in an unsorted order on purpose.
        for host, rack in (("n3", "r02"), ("n1", "r01"), ("n2", "r02"), ("n0", "r01")):
            for g in (1, 0):
                for k in range(5):
                    points.append(Point("gpu", gpu_tags(site, host, g, rack), {"power_w": 100.0 + k + g}, t0 + k * S))
        self.put(store, points)
        want = _expected(points, ["power_w"], "max", t0, t0 + MINUTE, 60 * S, ("rack", "host"))

        def check(state):
            got = store.query("gpu", ["power_w"], t0, t0 + MINUTE, every_s=60, agg="max",
                              group_by=["rack", "host"], where={"site": site})
            assert [s.tags for s in got] == [{"rack": r, "host": h} for r, h in sorted(want)], state
            _assert_close(_as_dict(got), want, state)
            assert all(s.values["power_w"] == [104.0 + 1] for s in got), state

        self.check_both_states(store, check)

    def test_no_group_by_merges_series(self, store, site):
        t0 = recent_hour_ns()
        points = self.fleet(site, t0, span_s=900)
        self.put(store, points)
        want = _expected(points, ["power_w"], "mean", t0, t0 + HOUR, 60 * S, ())

        def check(state):
            got = store.query("gpu", ["power_w"], t0, t0 + HOUR, every_s=60, where={"site": site})
            assert len(got) == 1 and got[0].tags == {}, state
            _assert_close(_as_dict(got), want, state)

        self.check_both_states(store, check)

    def test_buckets_align_to_epoch_and_skip_empty(self, store, site):
        t0 = recent_hour_ns()
        a = gpu_tags(site, "n1", 0)
        # data at +10 s, +70 s, +250 s: the 120 s and 180 s minute buckets stay empty
        self.put(store, [Point("gpu", a, {"power_w": 1.0}, t0 + 10 * S),
                         Point("gpu", a, {"power_w": 2.0}, t0 + 70 * S),
                         Point("gpu", a, {"power_w": 4.0}, t0 + 250 * S)])

        def check(state):
            (s,) = store.query("gpu", ["power_w"], t0 + 5 * S, t0 + 300 * S, every_s=60, agg="sum",
                               where={"site": site})
            assert s.times_ns == [t0, t0 + 60 * S, t0 + 240 * S], state
            assert s.values["power_w"] == [1.0, 2.0, 4.0], state
            # a start inside a bucket: the bucket keeps its aligned start, earlier data is left out
            (s,) = store.query("gpu", ["power_w"], t0 + 30 * S, t0 + 300 * S, every_s=120, agg="count",
                               where={"site": site})
            assert s.times_ns == [t0, t0 + 240 * S] and s.values["power_w"] == [1, 1], state

        self.check_both_states(store, check)

    def test_empty_results(self, store, site):
        t0 = recent_hour_ns()
        self.put(store, [Point("gpu", gpu_tags(site, "n1", 0), {"power_w": 1.0}, t0)])
        assert store.query("gpu", ["power_w"], t0 + S, t0 + HOUR, every_s=60, where={"site": site}) == []
        assert store.query("gpu", ["power_w"], t0, t0 + HOUR, where={"site": site + "x"}) == []
        assert store.query("gpu", ["temp_c"], t0, t0 + HOUR, agg="count", where={"site": site}) == []
        assert store.latest("gpu", where={"site": site + "x"}) == []
        assert store.latest("meter", where={"site": site}) == []

    def test_unknown_measurement_is_an_error(self, store):
        with pytest.raises(StoreError):
            store.query("no_such_measurement", ["power_w"], 0, 10 * S)
        with pytest.raises(StoreError):
            store.latest("no_such_measurement")

    def test_every_s_finer_than_a_minute(self, store, site):
        t0 = recent_hour_ns()
        points = self.fleet(site, t0, hosts=1, gpus=1, step_s=3, span_s=300)
        self.put(store, points)
        want = _expected(points, ["power_w"], "last", t0, t0 + 300 * S, 10 * S, ())

        def check(state):
            got = store.query("gpu", ["power_w"], t0, t0 + 300 * S, every_s=10, agg="last", where={"site": site})
            _assert_close(_as_dict(got), want, state)
            assert all(t % (10 * S) == 0 for t in got[0].times_ns)

        self.check_both_states(store, check)

    def test_duplicate_point_is_one_point(self, store, site):
        t0 = recent_hour_ns()
        a = gpu_tags(site, "n1", 0)
        self.put(store, [Point("gpu", a, {"power_w": 5.0}, t0)])
        self.put(store, [Point("gpu", a, {"power_w": 5.0}, t0)])  # e.g. replayed from a spool

        def check(state):
            (s,) = store.query("gpu", ["power_w"], t0, t0 + S, agg="count", where={"site": site})
            assert s.values["power_w"] == [1], state

        self.check_both_states(store, check)
        assert not math.isnan(store.latest("gpu", where={"site": site})[0].fields["power_w"])
