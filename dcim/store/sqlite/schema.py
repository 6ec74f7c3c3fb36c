"""The SQLite store's tables, and the migrations that bring an older file to them once.

The file's layout version is ``PRAGMA user_version``. A writer opening a file upgrades it in
one transaction, step by step (0 → 1 → 2), then creates whatever the metric contract added
since (tables of new measurements, columns of new fields). A read-only open of a file from
an older version is refused until a writer has upgraded it: reads know one layout only.

- version 0: files from before ``user_version`` (their layout version sat in ``meta``),
  including those from before the daily level, its hourly summaries, the counter days, the
  group rollups or ``measurement_field``: ``_catch_up_v1`` brings them to the full first layout
  (filling what can be derived, recording from which day the new levels hold whole days).
- version 1 → 2: tables named for what they hold (``r1h_gpu`` → ``rollup_hour_gpu``, ``k1d_``
  → ``counter_day_``, ``g1h_`` → ``group_hour_``…), meta keys likewise.
"""

from __future__ import annotations

import sqlite3

import dcim.store.month_figures as month_figures
from dcim.metrics import MEASUREMENTS
from dcim.store.base import StoreError, StoreUnavailable
from dcim.store.sqlite.common import (
    _INT_MIN,
    _LEVELS,
    _PARTS,
    _SQL_TYPE,
    _counter_inc_sql,
    _q,
)
from dcim.store.timegrid import DAY_NS, floor_ns

LATEST_VERSION = 2
LEGACY_SCHEMA_VERSION = 1  # meta's schema_version, still written for older readers to refuse cleanly

# Version 1's table prefixes and their names from version 2 on.
V2_NAMES = {"r1m": "rollup_minute", "r1h": "rollup_hour", "r1d": "rollup_day", "h1d": "day_hour_stats",
            "k1d": "counter_day", "g1h": "group_hour", "g1d": "group_day", "m1mo": "month"}
V2_META_KEYS = {"r1d_from:": "day_rollup_from:", "g1_from:": "group_rollup_from:"}


def user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def check_readable(conn: sqlite3.Connection, path: str) -> None:
    """A read-only open: the file must be a dcim store at the latest layout."""
    version = user_version(conn)
    if version == LATEST_VERSION:
        return
    if version > LATEST_VERSION:
        raise StoreError(f"{path}: SQLite store layout version {version}, newer than this dcim reads "
                         f"({LATEST_VERSION}): upgrade dcim")
    if not _table_exists(conn, "meta"):
        raise StoreError(f"{path} is not a dcim SQLite store (no meta table)")
    raise StoreUnavailable(f"{path}: SQLite store layout version {version}, older than {LATEST_VERSION}; "
                           f"a writer (dcim collect, dcim up) upgrades it when it opens the file")


def upgrade(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file to the latest layout; the caller holds a write transaction."""
    version = user_version(conn)
    if version > LATEST_VERSION:
        raise StoreError(f"{path}: SQLite store layout version {version}, newer than this dcim writes "
                         f"({LATEST_VERSION}): upgrade dcim")
    if version == 0 and _table_exists(conn, "meta"):
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != LEGACY_SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {row and row[0]}, expected {LEGACY_SCHEMA_VERSION}")
        _catch_up_v1(conn)
        version = 1
    if version == 1:
        _rename_v2(conn)
    create_latest(conn)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")


def create_latest(conn: sqlite3.Connection) -> None:
    """The latest layout's tables (see the package's docstring), created where missing, and
    columns for fields the metric contract added since the file was made."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (LEGACY_SCHEMA_VERSION,))
    conn.execute("CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, measurement TEXT NOT NULL, "
                 "tags TEXT NOT NULL, UNIQUE (measurement, tags))")
    # Which fields each series ever carried, so latest() looks back only for those; and their
    # union per measurement: which columns latest() and maintain() read.
    conn.execute("CREATE TABLE IF NOT EXISTS series_field (series_id INTEGER NOT NULL, field TEXT NOT NULL, "
                 "PRIMARY KEY (series_id, field)) WITHOUT ROWID")
    conn.execute("CREATE TABLE IF NOT EXISTS measurement_field (measurement TEXT NOT NULL, field TEXT NOT NULL, "
                 "PRIMARY KEY (measurement, field)) WITHOUT ROWID")
    for m in MEASUREMENTS.values():
        _create_measurement(conn, m)


def _create_measurement(conn: sqlite3.Connection, m) -> None:
    name = m.name
    raw_cols = [(f, _SQL_TYPE[s.kind]) for f, s in m.fields.items()]
    conn.execute(f"CREATE TABLE IF NOT EXISTS raw_{name} (rid INTEGER PRIMARY KEY, series_id INTEGER NOT NULL, "
                 f"ts INTEGER NOT NULL" + "".join(f", {_q(f)} {t}" for f, t in raw_cols) + ")")
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS raw_{name}_sts ON raw_{name} (series_id, ts)")
    _add_missing_columns(conn, f"raw_{name}", raw_cols)
    roll_cols = [(f"{f}_{p}", _SQL_TYPE[s.kind] if p not in ("n", "fts", "lts") else "INTEGER")
                 for f, s in m.fields.items() for p in _PARTS]
    for level, _ in _LEVELS:
        table = f"{level}_{name}"
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (series_id INTEGER NOT NULL, ts INTEGER NOT NULL"
                     + "".join(f", {_q(f)} {t}" for f, t in roll_cols) + ", PRIMARY KEY (series_id, ts)) WITHOUT ROWID")
        _add_missing_columns(conn, table, roll_cols)
    conn.execute(f"CREATE TABLE IF NOT EXISTS group_hour_{name} (field TEXT NOT NULL, tag TEXT NOT NULL, "
                 f"value TEXT NOT NULL, ts INTEGER NOT NULL, n INTEGER NOT NULL, sum REAL NOT NULL, "
                 f"top REAL NOT NULL, PRIMARY KEY (field, tag, value, ts)) WITHOUT ROWID")
    conn.execute(f"CREATE TABLE IF NOT EXISTS group_day_{name} (field TEXT NOT NULL, tag TEXT NOT NULL, "
                 f"value TEXT NOT NULL, ts INTEGER NOT NULL, hours INTEGER NOT NULL, n INTEGER NOT NULL, "
                 f"sum REAL NOT NULL, max REAL NOT NULL, maxts INTEGER NOT NULL, top REAL NOT NULL, "
                 f"topts INTEGER NOT NULL, PRIMARY KEY (field, tag, value, ts)) WITHOUT ROWID")
    conn.execute(f"CREATE TABLE IF NOT EXISTS day_hour_stats_{name} (field TEXT NOT NULL, "
                 f"series_id INTEGER NOT NULL, ts INTEGER NOT NULL, n INTEGER NOT NULL, sum REAL NOT NULL, "
                 f"max REAL NOT NULL, maxts INTEGER NOT NULL, PRIMARY KEY (field, series_id, ts)) WITHOUT ROWID")
    counter_fields = [f for f, spec in m.fields.items() if spec.counter]
    if counter_fields:
        # Value columns without a type: an int counter (ECC errors) stays an int.
        conn.execute(f"CREATE TABLE IF NOT EXISTS counter_day_{name} (field TEXT NOT NULL, "
                     f"series_id INTEGER NOT NULL, ts INTEGER NOT NULL, first NOT NULL, last NOT NULL, "
                     f"inc NOT NULL, resets INTEGER NOT NULL, prev, pts INTEGER, "
                     f"PRIMARY KEY (field, series_id, ts)) WITHOUT ROWID")
        for f in counter_fields:
            cols = ", ".join(_q(f"{f}_{p}") for p in ("n", "first", "last", "max"))
            conn.execute(f"CREATE INDEX IF NOT EXISTS {_q(f'rollup_hour_{name}_{f}_counter')} ON rollup_hour_{name} "
                         f"(series_id, ts, {cols})")
    if any(month_figures.month_fields(m)):
        conn.execute(f"CREATE TABLE IF NOT EXISTS month_{name} (zone TEXT NOT NULL, field TEXT NOT NULL, "
                     f"series_id INTEGER NOT NULL, ts INTEGER NOT NULL, n INTEGER, sum REAL, max REAL, "
                     f"maxts INTEGER, first, last, inc REAL, resets INTEGER, "
                     f"PRIMARY KEY (zone, field, series_id, ts)) WITHOUT ROWID")


def _add_missing_columns(conn: sqlite3.Connection, table: str, cols: list[tuple[str, str]]) -> None:
    """Fields added to the metric contract after the file was created become new columns."""
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    for name, sql_type in cols:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {_q(name)} {sql_type}")


# ---------------------------------------------------------------- version 1 → 2

def _rename_v2(conn: sqlite3.Connection) -> None:
    """Tables and meta keys named for what they hold. The counter indexes are dropped (an
    index keeps its name across a table rename) and built again under the new name."""
    for (index,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'r1h\\_%\\_counter' "
                                 "ESCAPE '\\'").fetchall():
        conn.execute(f"DROP INDEX {_q(index)}")
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        prefix, sep, measurement = table.partition("_")
        if sep and prefix in V2_NAMES and measurement in MEASUREMENTS:
            conn.execute(f"ALTER TABLE {_q(table)} RENAME TO {_q(V2_NAMES[prefix] + '_' + measurement)}")
    for old, new in V2_META_KEYS.items():
        conn.execute("UPDATE meta SET key = ? || substr(key, ?) WHERE substr(key, 1, ?) = ?",
                     (new, len(old) + 1, len(old), old))


# ---------------------------------------------------------------- version 0 → 1

def _catch_up_v1(conn: sqlite3.Connection) -> None:
    """A file from before user_version: the full first layout (version 1's names), as the
    code of that time kept it up to date at every open. What can be derived is filled:
    measurement_field from series_field, the counter days from r1d, the hourly summaries from
    r1d's own columns (their first home); where a level is new, meta records the first day
    it holds whole (r1d_from, g1_from), and reads use older levels before it."""
    c = conn
    fresh_fields = not _table_exists(c, "measurement_field")
    c.execute("CREATE TABLE IF NOT EXISTS series_field (series_id INTEGER NOT NULL, field TEXT NOT NULL, "
              "PRIMARY KEY (series_id, field)) WITHOUT ROWID")
    c.execute("CREATE TABLE IF NOT EXISTS measurement_field (measurement TEXT NOT NULL, field TEXT NOT NULL, "
              "PRIMARY KEY (measurement, field)) WITHOUT ROWID")
    if fresh_fields:
        c.execute("INSERT OR IGNORE INTO measurement_field (measurement, field) SELECT DISTINCT s.measurement, "
                  "sf.field FROM series_field AS sf JOIN series AS s ON s.id = sf.series_id")
    for m in MEASUREMENTS.values():
        if _table_exists(c, f"r1h_{m.name}"):
            _catch_up_measurement_v1(c, m)


def _catch_up_measurement_v1(c: sqlite3.Connection, m) -> None:
    name = m.name
    roll_cols = [(f"{f}_{p}", _SQL_TYPE[s.kind] if p not in ("n", "fts", "lts") else "INTEGER")
                 for f, s in m.fields.items() for p in _PARTS]
    have_r1d, have_h1d = _table_exists(c, f"r1d_{name}"), _table_exists(c, f"h1d_{name}")
    old_cols = [r[1][:-3] for r in c.execute(f"PRAGMA table_info(r1d_{name})") if r[1].endswith("_hn")]
    if not have_h1d and not old_cols:
        older = f"r1d_{name}" if have_r1d else f"r1h_{name}"
        newest = c.execute(f"SELECT max(ts) FROM {older}").fetchone()[0]
        since = _INT_MIN if newest is None else floor_ns(newest, DAY_NS) + DAY_NS
        c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"r1d_from:{name}", since))
    for level in ("r1d", "r1h", "r1m"):
        c.execute(f"CREATE TABLE IF NOT EXISTS {level}_{name} (series_id INTEGER NOT NULL, ts INTEGER NOT NULL"
                  + "".join(f", {_q(f)} {t}" for f, t in roll_cols) + ", PRIMARY KEY (series_id, ts)) WITHOUT ROWID")
        _add_missing_columns(c, f"{level}_{name}", roll_cols)
    if not _table_exists(c, f"g1d_{name}"):  # groups hold only days rolled from now on
        newest = c.execute(f"SELECT max(ts) FROM r1h_{name}").fetchone()[0]
        since = _INT_MIN if newest is None else floor_ns(newest, DAY_NS) + DAY_NS
        c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"g1_from:{name}", since))
    c.execute(f"CREATE TABLE IF NOT EXISTS h1d_{name} (field TEXT NOT NULL, series_id INTEGER NOT NULL, "
              f"ts INTEGER NOT NULL, n INTEGER NOT NULL, sum REAL NOT NULL, max REAL NOT NULL, "
              f"maxts INTEGER NOT NULL, PRIMARY KEY (field, series_id, ts)) WITHOUT ROWID")
    if not have_h1d:
        for f in old_cols:
            c.execute(f"INSERT INTO h1d_{name} SELECT ?, series_id, ts, {_q(f + '_hn')}, {_q(f + '_hsum')}, "
                      f"{_q(f + '_hmax')}, {_q(f + '_hmaxts')} FROM r1d_{name} WHERE {_q(f + '_hn')} > 0", (f,))
    counter_fields = [f for f, spec in m.fields.items() if spec.counter]
    if counter_fields and not _table_exists(c, f"k1d_{name}"):
        c.execute(f"CREATE TABLE k1d_{name} (field TEXT NOT NULL, series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
                  f"first NOT NULL, last NOT NULL, inc NOT NULL, resets INTEGER NOT NULL, prev, pts INTEGER, "
                  f"PRIMARY KEY (field, series_id, ts)) WITHOUT ROWID")
        for f in counter_fields:
            n, first, last, top = (_q(f"{f}_{p}") for p in ("n", "first", "last", "max"))
            c.execute(f"INSERT INTO k1d_{name} SELECT ?, series_id, ts, {first}, {last}, "
                      f"{_counter_inc_sql(first, last, top)}, {last} < {top}, lag({last}) OVER w, lag(ts) OVER w "
                      f"FROM r1d_{name} WHERE {n} > 0 WINDOW w AS (PARTITION BY series_id ORDER BY ts)", (f,))
