"""Names, SQL snippets and small helpers the SQLite store's modules share."""

from __future__ import annotations

import logging
import operator
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dcim.store.partials as partials
from dcim.store.base import (
    GROUP_ROLLUP_TAGS,
    StoreError,
    StoreUnavailable,
)
from dcim.store.timegrid import DAY_NS as NS_PER_DAY
from dcim.store.timegrid import HOUR_NS, MINUTE_NS

log = logging.getLogger(__name__)

MAINTAIN_EVERY_S = 30.0  # write() runs maintain() at most this often

# Partial-aggregate columns kept per field in a rollup table.
_PARTS = ("n", "sum", "min", "max", "fts", "first", "lts", "last")
# Per numeric field, series and UTC day, ``day_hour_stats_<m>`` keeps the day's hourly buckets summarised:
# hours with a value (n), the sum of the hourly means, the largest hourly mean and that hour's
# start. A quarter's hourly statistics (bucket_stats) then read 92 rows per series instead of
# 2,208. A table of its own, keyed by field first: a fleet's GPU utilisation is one contiguous
# run of short rows, not a column of rows ~240 columns wide.
_SQL_TYPE = {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT"}
# Aggregates that make no sense for strings: string fields are left out of their results.
_NUMERIC_AGGS = frozenset({"mean", "max", "min", "sum"})
# Coarsest first: a query reads each range from the coarsest level whose buckets fit it. Days
# serve the report's daily counters and whole-quarter aggregates at 1/24 of the hourly rows.
_LEVELS = (("rollup_day", NS_PER_DAY), ("rollup_hour", HOUR_NS), ("rollup_minute", MINUTE_NS))
# Grouping tags of group_hour/group_day (see the layout above): the report's rack rows. Not rooms:
# maintain() recomputes a touched group-hour from all its series, and a room holds thousands
# (a backfill GPU by GPU would re-read a room's hours once per chunk).
GROUP_TAGS = GROUP_ROLLUP_TAGS
ROWS_PER_INSERT = 32  # x (2 + fields) parameters stays far below SQLite's 32766
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bucket_sql(col: str, every_ns: int | None, start_ns: int) -> str:
    """SQL for the epoch-aligned bucket start of *col* (SQLite's % truncates, hence the dance)."""
    if every_ns is None:
        return str(int(start_ns))
    e = int(every_ns)
    return f"({col} - ((({col} % {e}) + {e}) % {e}))"


def _counter_inc_sql(first: str, last: str, top: str) -> str:
    """SQL for ``counters.bucket_span``'s increase inside a bucket of (first, last, max)."""
    return f"CASE WHEN {last} < {top} THEN ({top} - {first}) + {last} ELSE {top} - {first} END"


def _touched_days_sql(m: str) -> str:
    """SQL for the (sid, day) pairs, UTC days, of *m*'s raw rows with rid in (?1, ?2]."""
    return (f"SELECT DISTINCT series_id AS sid, {_bucket_sql('ts', NS_PER_DAY, 0)} AS day FROM raw_{m} "
            f"WHERE rid > ?1 AND rid <= ?2")


_KIND_CAST: dict[type, Callable[[Any], Any]] = {bool: bool, float: float, int: int, str: lambda v: v}
_first = operator.itemgetter(0)
# Merge two partials (n, v) of the same bucket: the counts add, the values merge as
# dcim.store.partials does for both stores (a count has no value).
_Merge = Callable[[tuple[int, Any], int, Any], tuple[int, Any]]


def _merge_of(agg: str) -> _Merge:
    def merge(cur: tuple[int, Any], n: int, v: Any) -> tuple[int, Any]:
        return cur[0] + n, partials.merge(agg, cur[1], v)

    return merge


_MERGE: dict[str, _Merge] = {agg: _merge_of(agg) for agg in ("mean", "sum", "min", "max")}
_MERGE["count"] = lambda cur, n, v: (cur[0] + n, None)


def _means_sql(parts: list[str]) -> str:
    """(sid, b, v): each series' mean per bucket from the partial sums of *parts* ('' if none)."""
    if len(parts) == 1:  # one piece: a (series, bucket) appears once, no merge needed
        return f"SELECT sid, b, (1.0 * s) / n AS v FROM ({parts[0]})"
    if parts:
        return f"SELECT sid, b, total(s) / sum(n) AS v FROM ({' UNION ALL '.join(parts)}) GROUP BY 1, 2"
    return ""


def _raw_waits(conn: sqlite3.Connection, m: str, meta: dict, start_ns: int, end_ns: int) -> bool:
    """True if raw rows of [start_ns, end_ns) wait for maintain() (above the rolled watermark):
    the rollups do not hold those days whole yet."""
    return conn.execute(f"SELECT 1 FROM raw_{m} WHERE rid > ? AND +ts >= ? AND +ts < ? LIMIT 1",
                        (meta.get(f"rolled:{m}", 0), start_ns, end_ns)).fetchone() is not None


def _load_groups(conn: sqlite3.Connection, group_of: dict[int, tuple], groups: list[tuple]) -> None:
    """Fill temp.dcim_query_group: series id -> the number of its group in *groups* (sorted),
    for queries whose groups hold several series."""
    gid_of = {g: i for i, g in enumerate(groups)}
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS dcim_query_group (sid INTEGER PRIMARY KEY, gid INTEGER NOT NULL)")
    conn.execute("DELETE FROM temp.dcim_query_group")
    conn.executemany("INSERT INTO temp.dcim_query_group VALUES (?, ?)", [(sid, gid_of[g]) for sid, g in group_of.items()])


def _since(since_ns: int | None) -> int:
    """A *since_ns* bound as an integer SQLite can compare (no bound: the smallest int64)."""
    return _INT_MIN if since_ns is None else int(since_ns)


def _create_private(path: Path) -> None:
    """Create the store file 0600 if it is new (an empty file is an empty database): the site's
    telemetry is not for every local user, and SQLite gives its -wal and -shm files the mode of
    the database file. OSError (a path that cannot be created) goes to the caller."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (key, int(value)))


# The file's state, not the data's: a writer spools and retries (and counts a drop where the
# spool cannot take the points either, e.g. the same full disk).
_UNAVAILABLE = ("locked", "busy", "unable to open", "disk is full", "readonly", "disk i/o error")


def _store_error(e: BaseException) -> StoreError:
    msg = str(e)
    if isinstance(e, sqlite3.OperationalError) and any(k in msg.lower() for k in _UNAVAILABLE):
        return StoreUnavailable(f"SQLite store {msg}")
    return StoreError(f"SQLite: {msg}")
