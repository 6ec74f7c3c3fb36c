"""InfluxStore: the Store interface on InfluxDB, reading the daily and month rollups where they
hold the answer (``rollup``, ``rollup_reads``), raw points elsewhere."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence

import dcim.store.influx.layout as layout
import dcim.store.month_figures as month_figures
from dcim.metrics import Point
from dcim.store.base import (
    Aggregate,
    BucketStats,
    Combine,
    CounterDays,
    Series,
    Store,
    StoreError,
    Where,
    check_bucket_stats,
    check_query,
    check_tags,
    measurement_spec,
)
from dcim.store.influx.client import InfluxClient
from dcim.store.influx.influxql import (
    _NEVER,
    _NUMERIC_AGGS,
    coerce,
    quote_ident,
    where_clause,
)
from dcim.store.influx.rollup import DailyRollups
from dcim.store.influx.rollup_reads import RollupReads

log = logging.getLogger(__name__)


class InfluxStore(InfluxClient, Store):
    """The store on an InfluxDB server (1.x, 2.x or 3.x) via its v1 HTTP API.

    *timeout_s* bounds one HTTP exchange; *backoff_s* is the first retry delay, doubled per
    attempt up to *max_backoff_s*; *precision* (ns, us, ms, s) is the timestamp unit written.
    *use_rollups*: read the daily rollups maintain() writes where they give the raw answer
    (``dcim.store.influx.rollup``); *reroll_days*: how many days before the newest rolled one
    maintain() rolls again, for late points; *timezone*: the IANA zone whose calendar months
    the month rollups follow (the site's: its reports are quarters and months of that zone).
    """

    def __init__(self, url: str, database: str, *, use_rollups: bool = True, reroll_days: int = 2, **client):
        super().__init__(url, database, **client)
        self.use_rollups = use_rollups
        self.reroll_days = reroll_days
        # Which days the rollups hold, per measurement (rollup.read_state), and when read.
        self._rollup_state: dict[str, layout.Rolled] | None = None
        self._rollup_state_at = 0.0
        self._rollups = DailyRollups(self, reroll_days)  # they write and read through this client
        self._rollup_reads = RollupReads(self)

    @classmethod
    def from_settings(cls, settings, timezone: str = "UTC") -> InfluxStore:
        """From :class:`dcim.config.InfluxSettings` and the site's *timezone*; secrets are read
        here, never logged."""
        from dcim.config import read_secret

        return cls(settings.url, settings.database, auth=settings.auth, username=settings.username,
                   password=read_secret(settings.password, "store.influxdb.password"),
                   token=read_secret(settings.token, "store.influxdb.token"),
                   batch_size=settings.batch_size, gzip=settings.gzip, timeout_s=settings.timeout_s,
                   max_retries=settings.max_retries, create_database=settings.create_database,
                   timezone=timezone)

    # --- reading --------------------------------------------------------------------------

    def query(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int, *,
              every_s: float | None = None, agg: Aggregate = "mean", group_by: Sequence[str] = (),
              where: Where | None = None) -> list[Series]:
        """``Store.query``. Buckets of whole UTC days read the daily rollups for the days they
        hold (``dcim.store.influx.rollup``), raw points for the rest; all else reads raw points."""
        spec, fields = check_query(measurement, fields, agg, group_by, where)
        if every_s is not None and int(round(every_s * 1e9)) <= 0:
            raise StoreError(f"every_s must be positive, got {every_s}")
        if agg in _NUMERIC_AGGS:  # strings have no mean, max, min or sum
            fields = [f for f in fields if spec.fields[f].kind is not str]
            if not fields:
                return []
        start_ns, end_ns = int(start_ns), int(end_ns)
        if where_clause(start_ns, end_ns, where) is None or end_ns <= start_ns:
            return []
        self.ensure_database()
        every_ns = None if every_s is None else int(round(every_s * 1e9))
        if every_ns is not None and every_ns % layout.DAY_NS == 0 and all(
                spec.fields[f].kind in (int, float) for f in fields):  # bool and str have no rollups
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None:
                return self._rollup_reads.query(spec, fields, start_ns, end_ns, every_ns, agg, list(group_by),
                                           where, days)
        return self.query_raw(measurement, fields, start_ns, end_ns, every_s=every_s, agg=agg,
                               group_by=group_by, where=where)


    def bucket_stats(self, measurement: str, field: str, start_ns: int, end_ns: int, every_s: float, *,
                     group_by: Sequence[str] = (), where: Where | None = None,
                     combine: Combine = "sum") -> dict[tuple, BucketStats]:
        """``Store.bucket_stats`` of hourly buckets from the rollups (``dcim.store.influx.rollup``),
        the first that serves, in an order per kind of read (below) of: single-series groups
        over whole local months from the month rows; power or utilisation per tag, summed or
        each (a rack's PDUs, a rack's GPU-hours), from the days' group rows (a row per group and
        day); single-series groups (or ``each``) from the rolled days' hourly summaries and raw
        hours only at the edges, one row per series coming back; else the default."""
        spec = check_bucket_stats(measurement, field, every_s, combine, group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if int(round(every_s * 1e9)) == layout.HOUR_NS and spec.fields[field].kind in (int, float):
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None:
                rolled = self._state()[measurement]
                args = (spec, field, start_ns, end_ns, list(group_by), where, combine, days)
                grouped = functools.partial(self._rollup_reads.grouped_bucket_stats, *args, rolled)
                per_series = functools.partial(self._rollup_reads.bucket_stats, *args)

                def months():
                    if self._rolled_months(spec, [field], start_ns, end_ns):
                        found = self._rollup_reads.month_period_figures(spec, start_ns, end_ns, group_by,
                                                                         where, hourly=[field], combine=combine)
                        return None if found is None else found[1][field]

                # A rack's GPU-hours (each): its group rows before each GPU's months. Groups by tags
                # (a PDU's power per pdu): the months (they refuse groups of several series). One
                # group of all the series a where picks (a tenant's PDUs): never the months.
                tries = ((grouped, months, per_series) if combine == "each" else
                         (months, grouped, per_series) if group_by else (grouped, per_series))
                for read in tries:
                    stats = read()
                    if stats is not None:
                        return stats
        return super().bucket_stats(measurement, field, start_ns, end_ns, every_s, group_by=group_by, where=where,
                                    combine=combine)

    def counter_days(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                     group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, CounterDays]:
        """``Store.counter_days``: the rolled days from one read of the daily rows, the rest from
        one read of raw points per piece (``dcim.store.influx.rollup_reads.counter_days``)."""
        spec, _ = check_query(measurement, [field], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if spec.fields[field].kind in (int, float):
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None:
                return self._rollup_reads.counter_days(spec, field, start_ns, end_ns, list(group_by), where, days)
        return super().counter_days(measurement, field, start_ns, end_ns, group_by=group_by, where=where)

    def counter_increase(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                         group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, tuple[float, int]]:
        """``Store.counter_increase``: whole local months from the month rows; else the rolled
        days from one aggregate row per series (their increases and junctions kept by
        maintain()), the rest per day from raw points
        (``dcim.store.influx.rollup_reads.counter_increase``); else the default."""
        spec, _ = check_query(measurement, [field], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if spec.fields[field].counter:
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None and self._rolled_months(spec, [field], start_ns, end_ns):
                found = self._rollup_reads.month_period_figures(spec, start_ns, end_ns, group_by, where,
                                                                 counters=[field])
                if found is not None:
                    return found[0][field]
            if days is not None:
                found = self._rollup_reads.counter_increase(spec, field, start_ns, end_ns, list(group_by), where, days)
                if found is not None:
                    return found
        return super().counter_increase(measurement, field, start_ns, end_ns, group_by=group_by, where=where)

    def _state(self) -> dict[str, layout.Rolled]:
        """The rollup state _rolled_days read last ({} before it ever did)."""
        return self._rollup_state or {}

    def _rolled_days(self, measurement: str, start_ns: int, end_ns: int,
                     where: Where | None) -> tuple[int, int] | None:
        """The whole days [a, b) of [start, end) that the daily rollups hold, or None (none, an
        empty range, or a *where* nothing can match). Which days are rolled is read at most
        every STATE_TTL_S (maintain() refreshes it): a day rolled since reads raw meanwhile,
        which gives the same answer, slower."""
        if not self.use_rollups or end_ns <= start_ns or where_clause(start_ns, end_ns, where) is None:
            return None
        self.ensure_database()
        if self._rollup_state is None or time.monotonic() - self._rollup_state_at > layout.STATE_TTL_S:
            self.rollup_policy = layout.find_policy(self, create=False)
            state = layout.read_state(self)
            with self._lock:
                self._rollup_state, self._rollup_state_at = state, time.monotonic()
        return layout.rolled_days(self._rollup_state, measurement, start_ns, end_ns)

    def period_figures(self, measurement: str, start_ns: int, end_ns: int, *, counters: Sequence[str] = (),
                       hourly: Sequence[str] = (), group_by: Sequence[str] = (), where: Where | None = None
                       ) -> tuple[dict[str, dict[tuple, tuple[float, int]]], dict[str, dict[tuple, BucketStats]]]:
        """``Store.period_figures``: over whole months of the store's zone, one read of the month
        rollups for every field; else a call per field."""
        spec = measurement_spec(measurement)
        for f in (*counters, *hourly):
            check_query(measurement, [f], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if (self._rolled_days(measurement, start_ns, end_ns, where) is not None
                and self._rolled_months(spec, [*counters, *hourly], start_ns, end_ns)
                and all(spec.fields[f].counter for f in counters)):
            found = self._rollup_reads.month_period_figures(spec, start_ns, end_ns, group_by, where, counters,
                                                             hourly)
            if found is not None:
                return found
        return super().period_figures(measurement, start_ns, end_ns, counters=counters, hourly=hourly,
                                      group_by=group_by, where=where)

    def _rolled_months(self, spec, fields: Sequence[str], start_ns: int, end_ns: int) -> bool:
        """True where [start, end) is whole months of the store's zone that the month rollups
        hold for every one of *fields* (call after _rolled_days, which reads the state)."""
        hour_fields, counter_fields = month_figures.month_fields(spec)
        rolled = self._state().get(spec.name)
        if rolled is None or not (all(f in hour_fields or f in counter_fields for f in fields)
                and layout.rolled_months(rolled, self.timezone, start_ns, end_ns)):
            return False
        held = layout.months_held(rolled, start_ns)
        if held is None:  # held if no raw point lies before the first rolled day
            return not any(self.execute(f"SELECT {quote_ident(f)} FROM {quote_ident(spec.name)} WHERE "
                                        f"{where_clause(start_ns, rolled.from_ns, None)} LIMIT 1")[0].get("series")
                           for f in fields)
        return held

    def maintain(self, now_ns: int | None = None) -> None:
        """Roll closed UTC days into the daily rollups (``dcim.store.influx.rollup``): new days,
        and the *reroll_days* before the newest rolled one again for late points. Safe to run
        from any one process at a time, as often as wanted (a run with nothing new is cheap)."""
        with self._lock:
            written, self._written_oldest = self._written_oldest, {}
        try:
            state = self._rollups.maintain(now_ns, written)
        except BaseException:
            with self._lock:  # not rolled: those days are still owed
                for m, t in written.items():
                    self._written_oldest[m] = min(t, self._written_oldest.get(m, _NEVER))
            raise
        with self._lock:
            self._rollup_state, self._rollup_state_at = state, time.monotonic()


    def latest(self, measurement: str, *, where: Where | None = None,
               since_ns: int | None = None) -> list[Point]:
        spec = measurement_spec(measurement)
        check_tags(spec, list(where or {}))
        cond = where_clause(since_ns, None, where)
        if cond is None:
            return []
        self.ensure_database()
        fields = list(spec.fields)
        # One LAST() per field, all in one request: a lone selector reports the time of the
        # value it picked, which LAST(*) (several selectors) does not.
        source = quote_ident(measurement) + (f" WHERE {cond}" if cond else "")
        statements = ";".join(f"SELECT LAST({quote_ident(f)}) AS {quote_ident(f)} FROM {source} GROUP BY *"
                              for f in fields)
        merged: dict[tuple, tuple[dict, dict, list[int]]] = {}
        for field, result in zip(fields, self.execute(statements)):
            for series in result.get("series", []):
                tags = {k: v for k, v in (series.get("tags") or {}).items() if v != ""}
                key = tuple(sorted(tags.items()))
                entry = merged.setdefault(key, (tags, {}, [0]))
                for row in series["values"]:
                    if row[1] is None:
                        continue
                    entry[1][field] = coerce(measurement, field, row[1])
                    entry[2][0] = max(entry[2][0], int(row[0]))
        points = [Point(measurement, tags, values, newest[0])
                  for _, (tags, values, newest) in sorted(merged.items()) if values]
        return points

