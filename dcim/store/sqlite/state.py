"""What the SQLite store's parts share: the state SqliteStore's __init__ sets up, and the methods
one part calls on another, declared once so the type checker sees each part against them.

Each part (Writing, Rollups, Queries, ...) is a mixin of SqliteStore and reads ``self``'s
connection, locks and series caches. The annotations here create no attributes (SqliteStore's
__init__ assigns them) and the method stubs exist only for the type checker, so at run time the
methods resolve exactly as SqliteStore's bases define them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

import dcim.store.counters as counters
from dcim.store.base import BucketStats, Store, Where

if TYPE_CHECKING:
    from dcim.store.sqlite.write import _Shape

# A piece of a range a read covers: (source table family, start ns, end ns, min rid: the raw rows
# above the rolled watermark only, or None); see Queries._plan_pieces.
Piece = tuple[str, int, int, int | None]
G = TypeVar("G", bound=Hashable)  # a group's key: its tag values, or a series id


class SqliteState(Store):
    """The SQLite store's state and cross-part methods (see the module's docstring)."""

    timezone: str  # the calendar of the month rows: the site's
    path: str
    readonly: bool
    strict: bool
    raw_retention_ns: int
    rollup_1m_retention_ns: int
    rejected: int  # invalid points skipped (strict=False)
    busy_timeout_ms: int
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _months_lock: threading.Lock  # one month upkeep at a time (see _maintain_months)
    _month_conn: sqlite3.Connection | None
    _next_maintain: float  # time.monotonic() of write()'s next maintain()
    _logged_kinds: set[str]
    _uncommitted_series: list[tuple[str, str]]  # series created in the open write transaction
    _series_by_key: dict[tuple[str, str], int]  # (measurement, canonical tags) -> id
    _series_fast: dict[tuple[str, tuple[tuple[str, str], ...]], int]  # (measurement, tuple(tags.items())) -> id
    # id(tags dict) -> (that dict, measurement, copy of its items, series id): see Writing._write
    _series_by_obj: dict[int, tuple[dict[str, str], str, dict[str, str], int]]
    _by_obj_max: int
    _series_rows: dict[int, tuple[str, dict[str, str]]]  # id -> (measurement, tags)
    _sids_of: dict[str, list[int]]  # measurement -> its series ids
    _series_max_id: int
    _series_max_of: dict[str, int]  # read-only: measurement -> highest id loaded
    _shapes: dict[tuple[str, frozenset[str]], _Shape]  # (measurement, field names) -> shape

    if TYPE_CHECKING:
        # SqliteStore
        def _read_txn(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _write_txn(self) -> AbstractContextManager[sqlite3.Connection]: ...

        # SeriesCache
        def _refresh_series(self) -> None: ...
        def _series_of(self, m: str) -> None: ...
        def _series_id(self, m: str, tags: dict[str, str], refreshed: bool = False) -> int: ...
        def _forget_uncommitted_series(self) -> None: ...

        # LatestReads
        @staticmethod
        def _carried(conn: sqlite3.Connection, m: str) -> tuple[str, ...]: ...

        # Queries
        def _pieces(self, conn: sqlite3.Connection, m: str, start_ns: int, end_ns: int, every_ns: int | None,
                    group_by: tuple[str, ...], where: Where | None
                    ) -> tuple[dict[int, tuple[str, ...]], list[Piece], str, dict[str, int]]: ...
        def _plan_pieces(self, conn: sqlite3.Connection, m: str, start_ns: int, end_ns: int, every_ns: int | None,
                         meta: dict[str, int]) -> list[Piece]: ...

        # MonthRows
        def _maintain_months(self, m: str, now_ns: int, touched: list[tuple[int, int]]) -> None: ...
        def _month_results(self, conn: sqlite3.Connection, m: str, start_ns: int, end_ns: int,
                           counter_fields: list[str], hour_fields: list[str], group_of: dict[int, tuple[str, ...]],
                           sid_filter: str, meta: dict[str, int], combine: str
                           ) -> tuple[dict[str, dict[tuple, tuple[float, int]]],
                                      dict[str, dict[tuple, BucketStats]]] | None: ...

        # CounterReads
        def _counter_spans(self, conn: sqlite3.Connection, m: str, field: str, start_ns: int, end_ns: int, a: int,
                           b: int, sid_filter: str) -> dict[int, list[counters.CounterSpan]]: ...

        # BucketStatistics
        @classmethod
        def _series_means(cls, m: str, field: str, pieces: list[Piece], every_ns: int, start_ns: int,
                          sid_filter: str) -> tuple[list[str], list[str]]: ...
        @staticmethod
        def _series_stats(conn: sqlite3.Connection, means: list[str], days: list[str], group_of: dict[int, G],
                          groups: list[G], combine: str) -> dict[G, BucketStats]: ...
