"""A tiny in-memory Store for the dashboard tests (used when dcim.store.sqlite is not available).

It implements the Store contract literally: epoch-aligned buckets, aggregates over present
values only, series sorted by tag values, latest = newest value of each field per series.
"""

from __future__ import annotations

import threading

from dcim.metrics import Point, validate_point
from dcim.store.base import Series, Store, matches


def _agg(values: list, agg: str):
    if not values:
        return None
    if agg == "mean":
        return sum(values) / len(values)
    if agg == "max":
        return max(values)
    if agg == "min":
        return min(values)
    if agg == "sum":
        return sum(values)
    if agg == "count":
        return len(values)
    if agg == "first":
        return values[0]
    if agg == "last":
        return values[-1]
    raise ValueError(agg)


class MemoryStore(Store):
    def __init__(self):
        self.points: list[Point] = []
        self._lock = threading.Lock()

    def write(self, points):
        for p in points:
            validate_point(p)
        with self._lock:
            self.points.extend(points)
            self.points.sort(key=lambda p: p.time_ns)

    def query(self, measurement, fields, start_ns, end_ns, *, every_s=None, agg="mean", group_by=(), where=None):
        with self._lock:
            pts = [p for p in self.points if p.measurement == measurement and start_ns <= p.time_ns < end_ns
                   and matches(p.tags, where)]
        step = int(every_s * 1e9) if every_s else None
        groups: dict[tuple, dict[int, dict[str, list]]] = {}
        for p in pts:
            key = tuple(p.tags.get(g, "") for g in group_by)
            bucket = (p.time_ns // step) * step if step else start_ns
            slot = groups.setdefault(key, {}).setdefault(bucket, {f: [] for f in fields})
            for f in fields:
                v = p.fields.get(f)
                if v is not None and not isinstance(v, str):
                    slot[f].append(float(v))
        out = []
        for key in sorted(groups):
            s = Series(tags=dict(zip(group_by, key)), values={f: [] for f in fields})
            for bucket in sorted(groups[key]):
                vals = {f: _agg(groups[key][bucket][f], agg) for f in fields}
                if all(v is None for v in vals.values()):
                    continue
                s.times_ns.append(bucket)
                for f in fields:
                    s.values[f].append(vals[f])
            out.append(s)
        return out

    def latest(self, measurement, *, where=None, since_ns=None):
        newest: dict[tuple, tuple[dict, dict, int]] = {}
        with self._lock:
            pts = [p for p in self.points if p.measurement == measurement and matches(p.tags, where)
                   and (since_ns is None or p.time_ns >= since_ns)]
        for p in pts:  # sorted by time: later overwrites
            key = tuple(sorted(p.tags.items()))
            tags, fields, t = newest.setdefault(key, (dict(p.tags), {}, 0))
            fields.update(p.fields)
            newest[key] = (tags, fields, max(t, p.time_ns))
        return [Point(measurement, tags, fields, t) for tags, fields, t in newest.values()]
