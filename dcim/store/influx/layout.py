"""The InfluxDB rollups' layout (see ``rollup``): names, constants, the state of what is rolled,
and small helpers the rollup writer and readers share."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

import dcim.store.month_figures as month_figures
from dcim.metrics import Measurement
from dcim.store.base import StoreError
from dcim.store.influx.influxql import quote_ident

if TYPE_CHECKING:
    from dcim.store.influx.client import InfluxClient

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
DAY_NS = 86_400 * NS_PER_S
GRACE_NS = 600 * NS_PER_S  # a day is closed 10 min after its end: points in flight have landed
SUFFIX = "_1d"
GROUP_SUFFIX = "_1d_by"
HOURLY_GROUP_SUFFIX = "_1h_by"
MONTH_SUFFIX = "_month"
MTD_SUFFIX = "_month_to_date"
ZONE_TAG = "tz"  # the zone whose calendar a month row follows
KEPT_FIELD = "kept"  # the field of a month-to-date marker: the day was kept, with no series
# The month rows' layout: 2, a point per series and month (InfluxQL and Grafana read them).
# Rows of another layout (1: JSON packs of 32 series) are ignored until maintain() rewrites them.
MONTH_LAYOUT = 2
ALL_SERIES = "*"  # the by tag of the group of every series
STATE = "dcim_rollup"
RETENTION_POLICY = "dcim_rollups"
SHARD_DURATION = "52w"
STATE_TTL_S = 600.0  # a reader re-reads which days are rolled at most this often
HOURS_PER_DAY = 24
# Raw points per request while reading a day to roll: bounds the JSON one answer carries (a
# day of 32,000 GPUs sampled hourly is 768,000 points: 6 hours per request).
POINTS_PER_REQUEST = 200_000
# Field values per write of rollup points: a day of 32,000 GPUs' daily rows (40 fields each) in
# requests of the store's 10,000 points timed out on a loaded 1.6 server (HTTP 500 "timeout":
# its 10 s write timeout), and the store gave up after its retries.
FIELDS_PER_WRITE = 100_000


def rollup_name(measurement: str) -> str:
    return measurement + SUFFIX


def group_rollup_name(measurement: str) -> str:
    return measurement + GROUP_SUFFIX


def hourly_group_rollup_name(measurement: str) -> str:
    return measurement + HOURLY_GROUP_SUFFIX


def month_rollup_name(measurement: str) -> str:
    return measurement + MONTH_SUFFIX


def mtd_rollup_name(measurement: str) -> str:
    return measurement + MTD_SUFFIX


def numeric_fields(spec: Measurement) -> list[str]:
    """The fields of *spec* that get rollups: int and float (bool and str have no sum or mean)."""
    return [f.name for f in spec.fields.values() if f.kind in (int, float)]


def floor_ns(ts: int, step: int) -> int:
    return ts - ts % step


def ceil_ns(ts: int, step: int) -> int:
    return -floor_ns(-ts, step)


def series_key(tags: dict | None) -> tuple:
    """A series' identity from an answer's tags: InfluxDB reports a tag the series lacks as ""."""
    return tuple(sorted((k, v) for k, v in (tags or {}).items() if v != ""))


def _cast(kind: type, value):
    """JSON numbers back to the field's type (InfluxDB writes 300.0 as ``300``)."""
    if value is None:
        return None
    return int(value) if kind is int else float(value)


def rows_of(series: dict) -> tuple[dict[str, int], list[list]]:
    return {c: i for i, c in enumerate(series["columns"])}, series.get("values") or []


# --- where the rollups live -----------------------------------------------------------------

def find_policy(client: InfluxClient, create: bool) -> str | None:
    """RETENTION_POLICY if the database has it (created here when *create* and the server is
    1.x or unknown), else None: the database's default policy."""
    try:
        answer = client.execute(f"SHOW RETENTION POLICIES ON {quote_ident(client.database)}")
        names = {row[0] for s in answer[0].get("series", []) for row in s.get("values") or []}
    except StoreError as exc:  # 3.x has no such statement: the default policy it is
        log.debug("InfluxDB %s: no retention policies to list (%s)", client.url, exc)
        return None
    if RETENTION_POLICY in names:
        return RETENTION_POLICY
    if not create or client.flavour not in (1, None):
        return None
    try:
        client.execute(f"CREATE RETENTION POLICY {quote_ident(RETENTION_POLICY)} ON {quote_ident(client.database)} "
                      f"DURATION INF REPLICATION 1 SHARD DURATION {SHARD_DURATION}")
    except StoreError as exc:  # warned once per client, not at every maintain()
        (log.debug if client.rollup_policy_warned else log.warning)(
            "InfluxDB %s: cannot create retention policy %r for the rollups (%s); they go to the default "
            "policy, whose short shards make reports slower", client.url, RETENTION_POLICY, exc)
        client.rollup_policy_warned = True
        return None
    return RETENTION_POLICY


def source(client: InfluxClient, name: str) -> str:
    """*name* (a rollup measurement or STATE) as a FROM clause, in the rollups' policy."""
    policy = client.rollup_policy
    if policy is None:
        return quote_ident(name)
    return f"{quote_ident(client.database)}.{quote_ident(policy)}.{quote_ident(name)}"


# --- which days are rolled -----------------------------------------------------------------

class Rolled(NamedTuple):
    """The days [from_ns, to_ns) a measurement's rollups hold, the first of them with hourly
    group rows (None: none has them), and the zone of the month rows with the start of the
    first month they hold whole (None: no month rows)."""
    from_ns: int
    to_ns: int
    by_hour_from_ns: int | None = None
    mo_zone: str | None = None
    mo_from_ns: int | None = None
    mo_layout: int | None = None  # MONTH_LAYOUT of the month rows (None: the JSON packs before it)


def read_state(client: InfluxClient) -> dict[str, Rolled]:
    """{measurement: Rolled}: the days its rollups hold."""
    # One statement per field: LAST() of several fields reports the newest row of each, and the
    # fields added later (by_hour_from_ns, mo_*) are absent from older rows.
    q = ";".join(f'SELECT LAST({quote_ident(f)}) AS v FROM {source(client, STATE)} GROUP BY "measurement"'
                 for f in Rolled._fields)
    found: dict[str, dict[str, Any]] = {}  # {measurement: {Rolled field: its int, or str for mo_zone}}
    for f, result in zip(Rolled._fields, client.execute(q)):
        for series in result.get("series", []):
            for row in series.get("values") or []:
                if row[1] is not None:
                    value = row[1] if f == "mo_zone" else int(row[1])
                    found.setdefault((series.get("tags") or {}).get("measurement", ""), {})[f] = value
    return {m: Rolled(**v) for m, v in found.items() if "from_ns" in v and "to_ns" in v}


def rolled_days(state: dict[str, Rolled], measurement: str, start_ns: int,
                end_ns: int) -> tuple[int, int] | None:
    """The whole UTC days [a, b) inside [start_ns, end_ns) that the rollups hold, or None."""
    span = state.get(measurement)
    if span is None:
        return None
    a = max(ceil_ns(start_ns, DAY_NS), span[0])
    b = min(floor_ns(end_ns, DAY_NS), span[1])
    return (a, b) if a < b else None


def rolled_months(rolled: Rolled | None, zone: str, start_ns: int, end_ns: int) -> bool:
    """True where [start_ns, end_ns) is whole local months of *zone* (one or more) that the
    month rows can hold: rows for this zone, the UTC day holding the last month's end rolled,
    and every month starting on a whole UTC hour. (Whether they hold the first months too, see
    months_held.)"""
    if rolled is None or rolled.mo_zone != zone or rolled.mo_from_ns is None or rolled.mo_layout != MONTH_LAYOUT:
        return False
    starts = month_figures.month_starts(zone, start_ns, end_ns)
    return (len(starts) >= 2 and starts[0] == start_ns and starts[-1] == end_ns
            and floor_ns(end_ns, DAY_NS) + DAY_NS <= rolled.to_ns and all(t % HOUR_NS == 0 for t in starts))


def months_held(rolled: Rolled, start_ns: int) -> bool | None:
    """For a read of months from *start_ns* (see rolled_months): True if the month rows hold
    them all; None if they do only where no raw point lies in [start_ns, from_ns) (before the
    first rolled day, which reads raw elsewhere: a backfill may have written there; the first
    run's months hold all the rollups saw from their month's start); False if not."""
    if rolled.mo_from_ns is None:  # no month rows (rolled_months says False first)
        return False
    if start_ns >= rolled.from_ns:
        return start_ns >= rolled.mo_from_ns
    return None if rolled.mo_from_ns <= rolled.from_ns else False


# --- maintain ------------------------------------------------------------------------------
