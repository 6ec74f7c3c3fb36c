"""InfluxStore.query()'s column-wise JSON -> Series conversion against the value-by-value one
it replaced, on crafted answers (no server): JSON ints in float columns, floats in int ones,
bool and str values, absent columns, empty buckets, one bucket for the whole range."""

from __future__ import annotations

import random

import pytest

from dcim.store.base import Series
from dcim.store.influx import InfluxStore, _coerce


def _reference(answers, measurement, fields, agg, group_by, every_s, start_ns):
    merged: dict[tuple, Series] = {}
    for series in (s for answer in answers for s in answer):
        tags = {t: (series.get("tags") or {}).get(t, "") for t in group_by}
        index = {c: i for i, c in enumerate(series["columns"])}
        key = tuple(tags[t] for t in group_by)
        result = merged.get(key)
        if result is None:
            result = merged[key] = Series(tags=tags, values={f: [] for f in fields})
        for row in series["values"]:
            values = [row[index[f]] if f in index else None for f in fields]
            if all(v is None for v in values):
                continue
            result.times_ns.append(int(row[0]) if every_s is not None else int(start_ns))
            for f, v in zip(fields, values):
                result.values[f].append(_coerce(measurement, f, v, agg))
    return [merged[k] for k in sorted(merged) if merged[k].times_ns]


def _answer(rng, columns, groups, n_rows, pick, tag):
    out = []
    for g in groups:
        rows = []
        for k in range(n_rows):
            rows.append([1_000 * k] + [pick(c) for c in columns])
        out.append({"name": "m", "tags": {tag: g} if g is not None else None,
                    "columns": ["time"] + columns, "values": rows})
    return out


@pytest.mark.parametrize("every_s", [None, 1.0])
@pytest.mark.parametrize("measurement,fields,agg", [
    ("gpu", ["power_w", "mem_used_bytes"], "mean"),
    ("gpu", ["power_w", "mem_used_bytes"], "max"),
    ("gpu", ["power_w", "mem_used_bytes", "temp_c"], "count"),
    ("collector", ["ok", "error", "points", "duration_s"], "last"),
    ("collector", ["ok", "error", "points", "duration_s"], "first"),
])
def test_column_wise_conversion_matches_value_by_value(monkeypatch, measurement, fields, agg, every_s):
    rng = random.Random(hash((measurement, agg, every_s)) & 0xFFFF)
    choices = [None, 0, 1, 300, 2.5, 300.0, -7, 1e20, True, False, "timeout"]

    def pick(column):
        if rng.random() < 0.3:
            return None
        if column in ("power_w", "temp_c", "duration_s", "mem_used_bytes", "points") and rng.random() < 0.8:
            return rng.choice([3, 300, 2.25, 7.0, 81_920_000_123, 1.5e3])
        return rng.choice(choices)

    group_by = ("rack",) if measurement == "gpu" else ("collector",)
    present = fields[:-1] if len(fields) > 2 else fields  # one asked field absent from the answer
    answers = [_answer(rng, present, ["r1", "r2", None], 40, pick, group_by[0]) for _ in range(3)]
    answers[1][0]["values"] = []  # a group with no rows in one slice
    store = InfluxStore("http://127.0.0.1:9", "db", parallel_queries=1)
    monkeypatch.setattr(store, "ensure_database", lambda: None)
    calls = iter(answers)
    # parallel_queries=1: one statement per query, so serve one answer per query.
    monkeypatch.setattr(store, "execute", lambda statement, **kw: [{"series": next(calls)}])
    got = []
    for _ in answers:
        got += store.query(measurement, fields, 0, 10**9, every_s=every_s, agg=agg, group_by=group_by)
    want = []
    for a in answers:
        want += _reference([a], measurement, fields, agg, group_by, every_s, 0)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.tags == w.tags and g.times_ns == w.times_ns
        assert g.values == w.values
        for f in fields:
            assert [type(v) for v in g.values[f]] == [type(v) for v in w.values[f]], f
