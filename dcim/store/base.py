"""The store interface every backend implements and every reader uses.

Times are UTC nanoseconds since the epoch. ``where`` maps a tag to a value or to a list of
accepted values. A missing reading is absent: aggregates skip it, and a bucket with no
values for a field holds ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dcim.metrics import MEASUREMENTS, Measurement, Point
from dcim.store.counters import counter_delta
from dcim.store.gpu_summary import GpuSummary, summarize_gpus

Aggregate = Literal["mean", "max", "min", "last", "first", "sum", "count"]
AGGREGATES: tuple[str, ...] = ("mean", "max", "min", "last", "first", "sum", "count")
Where = dict[str, str | Sequence[str]]
# How bucket_stats makes one figure of a group's series (see Store.bucket_stats).
Combine = Literal["sum", "mean", "each"]
DAY_S = 86400


class StoreError(Exception):
    """The store refused a request (bad query, bad data, 4xx). Retrying will not help."""


class StoreUnavailable(StoreError):
    """The store could not be reached or is overloaded (connection error, 429, 5xx). Retry later."""


@dataclass
class Series:
    """One group of an aggregated query: its tags and, per field, one value per time bucket.

    ``times_ns[i]`` is the start of bucket i; ``values[field][i]`` is None where the bucket
    held no value for that field.
    """

    tags: dict[str, str]
    times_ns: list[int] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class BucketStats:
    """A group's bucketed series summarised over the buckets that held a value: how many, the
    sum of their values, and the largest with its bucket's start (the earliest on a tie)."""

    buckets: int
    total: float
    peak: float | None
    peak_ns: int | None


@dataclass
class CounterDays:
    """A counter of one group summarised per UTC day, the days with a value in time order: the
    first, last and largest value of each, in the field's unit (what
    ``dcim.store.counters.counter_delta`` turns into the increase, resets included)."""

    times_ns: list[int]
    firsts: list[float]
    lasts: list[float | None]  # None: a default counter_days read no last for a day with a first
    maxes: list[float | None]


class Store(ABC):
    """Write points; read aggregated series; read the latest value of each series."""

    @abstractmethod
    def write(self, points: Sequence[Point]) -> None:
        """Store *points* durably. Raises StoreUnavailable (retry) or StoreError (do not)."""

    @abstractmethod
    def query(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int, *,
              every_s: float | None = None, agg: Aggregate = "mean", group_by: Sequence[str] = (),
              where: Where | None = None) -> list[Series]:
        """Aggregate *fields* over [start_ns, end_ns), in buckets of *every_s* seconds aligned to
        the epoch (one bucket for the whole range when None), one Series per distinct
        combination of the *group_by* tags. Buckets with no data for any field are omitted.
        Series are sorted by their tag values."""

    @abstractmethod
    def latest(self, measurement: str, *, where: Where | None = None,
               since_ns: int | None = None) -> list[Point]:
        """The newest value of each field of each series (all tags), as one Point per series
        stamped with the newest time among its fields. Only data at or after *since_ns*."""

    def gpu_summary(self, throttle_mask: int, *, where: Where | None = None,
                    since_ns: int | None = None) -> GpuSummary:
        """The GPU fleet's totals over each GPU's latest reading (see ``dcim.store.gpu_summary``),
        GPUs selected as by latest(). This default builds them from ``latest("gpu")``; a store
        may compute them where the data is."""
        return summarize_gpus(self.latest("gpu", where=where, since_ns=since_ns), throttle_mask)

    def bucket_stats(self, measurement: str, field: str, start_ns: int, end_ns: int, every_s: float, *,
                     group_by: Sequence[str] = (), where: Where | None = None,
                     combine: Combine = "sum") -> dict[tuple, BucketStats]:
        """Per group (keyed by its *group_by* tag values): each series' mean of *field* per bucket
        of *every_s*, summarised over the buckets (``BucketStats``), values in the field's unit.
        How a group's series make one figure: ``sum`` and ``mean`` combine them bucket by bucket
        first (a rack's PDUs make the rack's power; its GPUs' mean utilisation); ``each``
        summarises every series alone and adds the summaries up (buckets and totals summed, the
        largest peak: a rack's GPU-hours). A report reads a quarter of hourly data this way
        without the hours themselves coming back.

        This default builds it from ``query`` (one Series per series); a store may compute it
        where the data is."""
        spec = check_bucket_stats(measurement, field, every_s, combine, group_by, where)
        per_bucket: dict[tuple, dict[int, list[float]]] = {}
        per_series: dict[tuple, list[BucketStats]] = {}
        for s in self.query(measurement, [field], start_ns, end_ns, every_s=every_s, agg="mean",
                            group_by=list(spec.tags), where=where):
            g = tuple(s.tags.get(t, "") for t in group_by)
            buckets = {t: [v] for t, v in zip(s.times_ns, s.values.get(field, [])) if v is not None}
            if not buckets:
                continue
            if combine == "each":
                per_series.setdefault(g, []).append(stats_of_buckets(buckets, "sum"))
                continue
            into = per_bucket.setdefault(g, {})
            for t, vals in buckets.items():
                into.setdefault(t, []).extend(vals)
        if combine == "each":
            return {g: add_bucket_stats(stats) for g, stats in per_series.items()}
        return {g: stats_of_buckets(buckets, combine) for g, buckets in per_bucket.items() if buckets}

    def counter_days(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                     group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, CounterDays]:
        """Per group (keyed by its *group_by* tag values): *field*'s first, last and largest value
        in each UTC day of [start_ns, end_ns) that holds one (days: buckets of 86,400 s aligned
        to the epoch, partial at the range's ends, stamped with their start). This default
        reads them with three ``query`` calls; a store may read them at once."""
        def read(agg: Aggregate) -> dict[tuple, dict[int, float]]:
            return {tuple(s.tags.get(t, "") for t in group_by):
                    {t: v for t, v in zip(s.times_ns, s.values[field]) if v is not None}
                    for s in self.query(measurement, [field], start_ns, end_ns, every_s=DAY_S, agg=agg,
                                        group_by=group_by, where=where)}

        firsts, lasts, maxes = read("first"), read("last"), read("max")
        out = {}
        for key, first_at in firsts.items():
            days = sorted(first_at)
            last_at, max_at = lasts.get(key, {}), maxes.get(key, {})
            out[key] = CounterDays(days, [first_at[t] for t in days], [last_at.get(t) for t in days],
                                   [max_at.get(t) for t in days])
        return out

    def counter_increase(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                         group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, tuple[float, int]]:
        """Per group (one series each: a counter does not add up across series): (increase,
        resets) of the counter *field* over [start_ns, end_ns), in its unit. Resets are found
        from the UTC days' first, last and max (``counter_days``; at most one inside a day is
        seen) and between days; the increase across days without data counts
        (``dcim.store.counters.counter_delta``). This default computes it from counter_days."""
        return {key: counter_delta(days.firsts, days.lasts, days.maxes)
                for key, days in self.counter_days(measurement, field, start_ns, end_ns, group_by=group_by,
                                                   where=where).items()}

    def period_figures(self, measurement: str, start_ns: int, end_ns: int, *, counters: Sequence[str] = (),
                       hourly: Sequence[str] = (), group_by: Sequence[str] = (), where: Where | None = None
                       ) -> tuple[dict[str, dict[tuple, tuple[float, int]]], dict[str, dict[tuple, BucketStats]]]:
        """Several fields' figures over [start_ns, end_ns) per group at once: ({counter field:
        its ``counter_increase``}, {hourly field: its ``bucket_stats`` of hourly buckets, summed
        per group}). This default makes one call per field; a store may read them together."""
        return ({f: self.counter_increase(measurement, f, start_ns, end_ns, group_by=group_by, where=where)
                 for f in counters},
                {f: self.bucket_stats(measurement, f, start_ns, end_ns, 3600, group_by=group_by, where=where)
                 for f in hourly})

    def maintain(self, now_ns: int | None = None) -> None:  # noqa: B027 (an optional hook: a store may have nothing to do)
        """Background upkeep (rollups, retention) as of *now_ns* (UTC ns; None: the clock's
        now). Reads answer the same whether or not it ran, within each store's documented
        limits, only slower; callers run it periodically and after bulk writes. This default
        does nothing."""

    def flush(self) -> None:  # noqa: B027 (an optional hook: a store may have nothing to do)
        """Push anything buffered to durable storage."""

    def close(self) -> None:  # noqa: B027 (an optional hook: a store may have nothing to do)
        """Release connections and files."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stats_of_buckets(buckets: dict[int, list[float]], combine: str) -> BucketStats:
    """``BucketStats`` of {bucket start: the series' values in it}."""
    total, peak, peak_ns = 0.0, None, None
    for t in sorted(buckets):
        vals = buckets[t]
        v = sum(vals) if combine == "sum" else sum(vals) / len(vals)
        total += v
        if peak is None or v > peak:
            peak, peak_ns = v, t
    return BucketStats(len(buckets), total, peak, peak_ns)


# Utilisation fields whose per-series hours add up into a group's GPU-hours.
GROUPED_UTILISATION = ("util_pct",)
# The tags whose groups both stores also keep hour by hour (SQLite ``g1h``, InfluxDB
# ``m_1h_by``), so that a report's partial days at a period's edges read a row per rack and
# hour, not one per series: a quarter in Asia/Seoul starts and ends at 15:00 UTC.
GROUP_ROLLUP_TAGS = ("rack",)


def has_group_rollups(spec: Measurement, field: str) -> bool:
    """True for the fields the stores keep per group of series at rollup time: power
    (``power_w``, ``*_power_w``), which adds up over a group's series into its demand (a rack's
    PDUs), and utilisation (GROUPED_UTILISATION), whose series-hours add up into GPU-hours."""
    f = spec.fields[field]
    return (f.unit == "W" and (f.name == "power_w" or f.name.endswith("_power_w"))) or f.name in GROUPED_UTILISATION


def add_bucket_stats(parts: Sequence[BucketStats]) -> BucketStats:
    """Several series' ``BucketStats`` as one: buckets and totals added, the largest peak (the
    earliest of equal ones)."""
    peak, peak_ns = None, None
    for p in parts:
        if p.peak is not None and (peak is None or p.peak > peak or (
                p.peak == peak and p.peak_ns is not None and peak_ns is not None and p.peak_ns < peak_ns)):
            peak, peak_ns = p.peak, p.peak_ns
    return BucketStats(sum(p.buckets for p in parts), sum(p.total for p in parts), peak, peak_ns)


def measurement_spec(measurement: str) -> Measurement:
    """The contract's definition of *measurement*; StoreError if there is none."""
    spec = MEASUREMENTS.get(measurement)
    if spec is None:
        raise StoreError(f"unknown measurement {measurement!r}")
    return spec


def check_tags(spec: Measurement, tags: Sequence[str]) -> None:
    """StoreError naming any tag *spec* does not have (used by where and group_by)."""
    unknown = sorted(set(tags) - set(spec.tags))
    if unknown:
        raise StoreError(f"{spec.name} has no tag(s) {unknown}")


def check_query(measurement: str, fields: Sequence[str], agg: str, group_by: Sequence[str],
                where: Where | None) -> tuple[Measurement, list[str]]:
    """The argument checks every backend's ``query`` makes first; returns (spec, fields)."""
    spec = measurement_spec(measurement)
    fields = list(fields)
    if not fields:
        raise StoreError("query needs at least one field")
    unknown = [f for f in fields if f not in spec.fields]
    if unknown:
        raise StoreError(f"{measurement} has no field(s) {unknown}")
    if agg not in AGGREGATES:
        raise StoreError(f"unknown aggregate {agg!r} (one of {', '.join(AGGREGATES)})")
    check_tags(spec, list(group_by) + list(where or {}))
    return spec, fields


def check_bucket_stats(measurement: str, field: str, every_s: float, combine: str, group_by: Sequence[str],
                       where: Where | None) -> Measurement:
    """The argument checks every backend's ``bucket_stats`` makes first; returns the spec."""
    spec, _ = check_query(measurement, [field], "mean", group_by, where)
    if combine not in ("sum", "mean", "each"):
        raise StoreError(f"combine must be sum, mean or each, got {combine!r}")
    if int(round(every_s * 1e9)) <= 0:
        raise StoreError(f"every_s must be positive, got {every_s}")
    return spec


def matches(tags: dict[str, str], where: Where | None) -> bool:
    """True if *tags* satisfy *where* (helper for backends and tests)."""
    if not where:
        return True
    for key, want in where.items():
        have = tags.get(key)
        if isinstance(want, str):
            if have != want:
                return False
        elif have not in want:
            return False
    return True


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
