"""write(): points validated column-wise per batch, upserted per shape in one transaction."""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Mapping, Sequence, Set
from itertools import chain

from dcim.metrics import MEASUREMENTS, Point, PointError, validate_point
from dcim.store.sqlite.common import _INT_MAX, _INT_MIN, ROWS_PER_INSERT, _first, _q
from dcim.store.sqlite.state import SqliteState

log = logging.getLogger(__name__)


class _Shape:
    """Points of one measurement carrying one set of fields: their insert statements, the
    field order of their rows (the metric contract's), and per field the exact value types
    known valid."""

    __slots__ = ("m", "names", "keys", "width", "get", "sql", "sql_multi", "ok", "nan_cols", "seen")

    def __init__(self, m: str, names: tuple[str, ...]):
        specs = MEASUREMENTS[m].fields
        cols = ", ".join(_q(n) for n in names)
        self.m = m
        self.names = names
        self.keys = frozenset(names)
        self.width = 2 + len(names)  # a row: series_id, ts, values in *names* order
        self.get: Callable[[Mapping[str, object]], tuple]
        if len(names) == 1:
            def get_one(fields: Mapping[str, object], _n: str = names[0]) -> tuple:
                return (fields[_n],)

            self.get = get_one
        else:
            self.get = operator.itemgetter(*names)  # fields dict -> values tuple, in names order
        # Duplicate (series, time): fields of the newer write win, fields it lacks are kept.
        row = f"(?, ?{', ?' * len(names)})"
        upsert = " ON CONFLICT (series_id, ts) DO UPDATE SET " + ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names)
        self.sql = f"INSERT INTO raw_{m} (series_id, ts, {cols}) VALUES {row}{upsert}"
        rows = ", ".join([row] * ROWS_PER_INSERT)
        self.sql_multi = f"INSERT INTO raw_{m} (series_id, ts, {cols}) VALUES {rows}{upsert}"
        # Per field, the exact types whose values pass validate_point (NaN aside); grows with
        # the types validate_point is seen to accept (subclasses of int or float, say).
        self.ok = [set(_OK_TYPES[specs[n].kind]) for n in names]
        # Columns whose NaNs must be caught: a NaN (or inf - inf, which only costs a trip to
        # validate_point) poisons their sum.
        self.nan_cols = tuple(j for j, n in enumerate(names) if specs[n].kind is float)
        self.seen: set[int] = set()  # series ids whose series_field rows list these fields

    def columns_ok(self, flat: list) -> bool:
        """Every value of the rows in *flat* has a type known valid, and no float field is NaN.
        Column-wise (C loops). May raise OverflowError (an int too big for a float sum)."""
        w = self.width
        for j, ok in enumerate(self.ok):
            col = flat[2 + j::w]
            if not ok.issuperset(map(type, col)):
                return False
        for j in self.nan_cols:
            total = sum(flat[2 + j::w])
            if total != total:
                return False
        return True

    @staticmethod
    def ints_fit(values: tuple) -> bool:
        """SQLite integers are 64-bit: validate_point has no bound, the store needs one."""
        return all(_INT_MIN <= v <= _INT_MAX for v in values if isinstance(v, int))


_OK_TYPES = {float: (float, int), int: (int,), bool: (bool,), str: (str,)}


class Writing(SqliteState):
    """write(): points validated column-wise per batch, upserted per shape in one transaction."""

    def _checked_shape(self, p: Point) -> _Shape:
        validate_point(p)  # raises for an unknown measurement or field, or no fields
        m = p.measurement
        key = (m, frozenset(p.fields))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = _Shape(m, tuple(f for f in MEASUREMENTS[m].fields if f in key[1]))
        return shape

    def _reject(self, error: PointError) -> None:
        if self.strict:
            raise error
        self.rejected += 1
        kind = str(error).split(" got ")[0]
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            log.warning("skipping invalid points (logged once per kind, counted in rejected): %s", error)

    def _accept_slow(self, p: Point, shape: _Shape) -> bool:
        """validate_point (and the 64-bit bound) decide; remember the value types accepted."""
        try:
            validate_point(p)
            if not shape.ints_fit(shape.get(p.fields)):
                raise PointError(f"{p.measurement}: integer outside the 64-bit range, got {p.fields!r}")
        except PointError as e:
            self._reject(e)
            return False
        for ok, v in zip(shape.ok, shape.get(p.fields)):
            ok.add(type(v))
        return True

    def write(self, points: Sequence[Point]) -> None:
        """Store *points* in one transaction. Raises PointError (strict) before anything is stored.
        A point at the same series and time as a stored one merges into it: its fields win."""
        if not points:
            return
        rejected = self.rejected
        try:
            self._write(points, careful=False)
        except OverflowError:
            # An int beyond 64 bits reached SQLite (or was too big for a float sum): the
            # transaction rolled back; redo the write checking every point on the slow path.
            self.rejected = rejected  # the redo counts the rejects again
            self._write(points, careful=True)
        if time.monotonic() >= self._next_maintain:
            self.maintain()

    def _write(self, points: Sequence[Point], careful: bool) -> None:
        shapes, fast, by_obj = self._shapes, self._series_fast, self._series_by_obj
        # Per shape: its rows (series_id, ts, values...), and the points behind them.
        flats: dict[_Shape, list[tuple]] = {}
        pts_of: dict[_Shape, list[Point]] = {}
        pending: list[tuple[tuple, _Shape, Point]] = []  # points of series not cached yet
        last_m: str | None = None
        last_keys: Set[str] | None = None
        # Bound in the first iteration: its measurement is never last_m (None).
        shape: _Shape
        flat: list[tuple]
        plist: list[Point]
        sid: int | None
        for p in points:
            fields, m = p.fields, p.measurement
            if m is not last_m or fields.keys() != last_keys:  # batches mostly repeat one shape
                known = shapes.get((m, frozenset(fields)))
                if known is None:
                    try:
                        known = self._checked_shape(p)
                    except PointError as e:
                        self._reject(e)
                        last_m = None
                        continue
                shape = known
                last_m, last_keys = m, shape.keys
                if shape in flats:
                    flat, plist = flats[shape], pts_of[shape]
                else:
                    flat, plist = flats[shape], pts_of[shape] = [], []
            tags = p.tags
            # Collectors keep one tags dict per series: find its id by the dict's identity,
            # checked against a copy of its contents (the dict may have been changed since).
            hit = by_obj.get(id(tags))
            if hit is not None and hit[0] is tags and hit[1] == m and hit[2] == tags:
                sid = hit[3]
            else:
                tkey = (m, tuple(tags.items()))
                sid = fast.get(tkey)
                if sid is None:
                    pending.append((tkey, shape, p))
                    continue
                if len(by_obj) >= self._by_obj_max:
                    by_obj.clear()  # callers building a new dict per point: keep it bounded
                by_obj[id(tags)] = (tags, m, dict(tags), sid)
            flat.append((sid, p.time_ns, *shape.get(fields)))
            plist.append(p)
        for shape, rows in flats.items():
            if careful or not shape.columns_ok(list(chain.from_iterable(rows))):
                flats[shape] = [r for r, p in zip(rows, pts_of[shape]) if self._accept_slow(p, shape)]
        # Points of new series: checked one by one (tags too), given ids in the transaction.
        pending = [x for x in pending if self._accept_slow(x[2], x[1])]
        if not pending and not any(flats.values()):
            return
        new_seen: list[tuple[int, _Shape]] = []
        with self._write_txn() as conn:
            if pending:
                self._refresh_series()  # once: the write lock keeps other writers out from here on
            for tkey, shape, p in pending:
                sid = fast.get(tkey)
                if sid is None:
                    sid = fast[tkey] = self._series_id(p.measurement, p.tags, refreshed=True)
                flats.setdefault(shape, []).append((sid, p.time_ns, *shape.get(p.fields)))
            for shape, rows in flats.items():
                # Series by series (a stable sort: a series' rows keep their order, so the later
                # of two at one time still wins): neighbouring (series_id, ts) index entries go in
                # together, ~20 % less SQLite work than the collectors' time-major order.
                rows.sort(key=_first)
                values = list(chain.from_iterable(rows))
                w = shape.width
                n = len(values) // w
                whole = (n - n % ROWS_PER_INSERT) * w
                step = ROWS_PER_INSERT * w
                if whole:
                    conn.executemany(shape.sql_multi, [values[i:i + step] for i in range(0, whole, step)])
                if whole < len(values):
                    conn.executemany(shape.sql, [values[i:i + w] for i in range(whole, len(values), w)])
                new_seen += [(new_sid, shape) for new_sid in set(values[0::w]).difference(shape.seen)]
            if new_seen:
                conn.executemany("INSERT OR IGNORE INTO series_field (series_id, field) VALUES (?, ?)",
                                 [(sid, f) for sid, shape in new_seen for f in shape.names])
                conn.executemany("INSERT OR IGNORE INTO measurement_field (measurement, field) VALUES (?, ?)",
                                 {(shape.m, f) for _, shape in new_seen for f in shape.names})
        for sid, shape in new_seen:
            shape.seen.add(sid)
