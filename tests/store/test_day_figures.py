"""day_figures against a plain-Python reference: per series, per field, per hour, per group."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from dcim.store.day_figures import HOUR_NS, DayPoints, field_day, group_day, group_hours

DAY_NS = 1_780_000_000 * 1_000_000_000 // (24 * HOUR_NS) * (24 * HOUR_NS)


def _points(seed: int) -> tuple[DayPoints, list[tuple[int, int, dict]]]:
    """Shuffled points of 7 series: a float field with ties and gaps, an int field on some."""
    rnd = random.Random(seed)
    rows = []
    for s in range(7):
        hours = rnd.sample(range(24), rnd.randint(1, 24))
        for h in hours:
            for _ in range(rnd.randint(1, 4)):
                t = DAY_NS + h * HOUR_NS + rnd.randrange(HOUR_NS)
                fields = {}
                if rnd.random() < 0.9:
                    fields["power_w"] = float(rnd.choice([100, 250.5, 700, rnd.uniform(0, 700)]))
                if s % 2 == 0 and rnd.random() < 0.8:
                    fields["errors"] = rnd.randint(-5, 2**40)
                rows.append((s, t, fields))
    rnd.shuffle(rows)
    series = np.array([r[0] for r in rows], dtype=np.int64)
    time_ns = np.array([r[1] for r in rows], dtype=np.int64)
    power = np.array([r[2].get("power_w", math.nan) for r in rows])
    errors = np.array([r[2].get("errors", 0) for r in rows], dtype=np.int64)
    points = DayPoints(DAY_NS, [(f"g{s}",) for s in range(7)], series, time_ns,
                       {"power_w": power, "errors": errors},
                       {"power_w": ~np.isnan(power), "errors": np.array(["errors" in r[2] for r in rows])})
    return points, rows


def _reference(rows, field):
    """Per series: its values in time order, and its hourly means (sum added in order / n)."""
    out = {}
    for s, t, fields in sorted(rows, key=lambda r: (r[0], r[1])):
        if field in fields:
            out.setdefault(s, []).append((t, fields[field]))
    means = {}
    for s, vals in out.items():
        by_hour = {}
        for t, v in vals:
            by_hour.setdefault((t - DAY_NS) // HOUR_NS, []).append(v)
        means[s] = {h: float(sum(vs)) / len(vs) if isinstance(vs[0], int)
                    else _seq_sum(vs) / len(vs) for h, vs in sorted(by_hour.items())}
    return out, means


def _seq_sum(values):
    total = 0.0
    for v in values:
        total += v
    return total


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("field", ["power_w", "errors"])
def test_field_day_matches_a_point_by_point_reference(seed, field):
    points, rows = _points(seed)
    day = field_day(points, field)
    ref, means = _reference(rows, field)
    assert list(day.series) == sorted(ref)
    for i, s in enumerate(day.series):
        vals = ref[s]
        values = [v for _, v in vals]
        assert day.n[i] == len(vals)
        assert day.sum[i] == (sum(values) if field == "errors" else _seq_sum(values))
        assert (day.min[i], day.max[i]) == (min(values), max(values))
        assert (day.first[i], day.fts[i]) == (vals[0][1], vals[0][0])
        assert (day.last[i], day.lts[i]) == (vals[-1][1], vals[-1][0])
        hm = means[s]
        assert day.hn[i] == len(hm)
        assert day.hsum[i] == _seq_sum(list(hm.values()))
        peak = max(hm.values())
        assert day.hmax[i] == peak
        assert day.hmaxts[i] == DAY_NS + min(h for h, m in hm.items() if m == peak) * HOUR_NS
        mine = {int(h): m for j, h, m in zip(day.hour_series, day.hour, day.hour_mean) if j == i}
        assert mine == hm


def test_a_field_no_point_carries_gives_none():
    points, _ = _points(0)
    points.valid["errors"][:] = False
    assert field_day(points, "errors") is None


@pytest.mark.parametrize("seed", range(4))
def test_group_hours_and_day_add_series_means_per_group(seed):
    points, rows = _points(seed)
    day = field_day(points, "power_w")
    _, means = _reference(rows, "power_w")
    group_of = np.array([0, 1, 0, 2, 1, 0, 2])  # seven series into three groups; group 3 empty
    hours = group_hours(day, group_of, 4)
    summary = group_day(hours, DAY_NS)
    expected_groups = sorted({int(group_of[s]) for s in means})
    assert list(summary.groups) == expected_groups
    for i, g in enumerate(summary.groups):
        per_hour = {}
        for s in sorted(means):
            if group_of[s] == g:
                for h, m in means[s].items():
                    per_hour.setdefault(h, []).append(m)
        for h in range(24):
            got = (hours.sum[g, h], hours.count[g, h], hours.top[g, h])
            vals = per_hour.get(h, [])
            assert got == (_seq_sum(vals), len(vals), max(vals) if vals else -math.inf)
        sums = {h: _seq_sum(v) for h, v in sorted(per_hour.items())}
        assert summary.n[i] == len(sums)
        assert summary.sum[i] == _seq_sum(list(sums.values()))
        peak = max(sums.values())
        assert summary.max[i] == peak
        assert summary.maxts[i] == DAY_NS + min(h for h, v in sums.items() if v == peak) * HOUR_NS
        assert summary.sn[i] == sum(len(v) for v in per_hour.values())
        top = max(max(v) for v in per_hour.values())
        assert summary.top[i] == top
        assert summary.topts[i] == DAY_NS + min(h for h, v in per_hour.items() if top in v) * HOUR_NS
    assert not hours.count[3].any()
