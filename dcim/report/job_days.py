"""Closed days' job attribution, computed once and kept in the store (``job_energy``).

A quarter's report by job from the hourly reads costs ~2.5 µs per GPU-hour per field: 9 M
GPU-hours × 7 fields is minutes. But a closed day's attribution (``jobs.stretch_pairs``: each
hour needs only itself and the hour before) never changes unless late points arrive, so the
store's upkeep computes each day once and writes its (job, GPU) pairs through the ordinary
write path (SQLite and InfluxDB alike): a ``job_energy`` point per rack (and part) holding its
pairs as a JSON table, and a ``job_day`` point saying which version is the day's, which span
it covers and from how many input points it was computed.

The days are the site's local days (midnight to midnight in ``[site] timezone``, as UTC ns),
not UTC days: every report period (quarter, month, date range) is whole local days, so a report
reads only materialised days and computes nothing from the hours, where UTC days would leave
two partial days per period to compute (a quarter in Asia/Seoul starts at 15:00 UTC: 24 hours ×
4,096 GPUs, 2.5 s). A period that is not whole local days gets its edges from the hours.

Late points (a spool replayed after an outage) change a day's input counts: workload points in
the UTC days that the day and the hour before it overlap, gpu power points in those the day
overlaps (UTC days: the stores count them from their daily rollups). The next upkeep, and any
report, sees the counts differ and recomputes the day. A day is closed once every UTC day it
overlaps is over (and an hour more, for points in flight): its counts no longer move. A
recomputation is written at the day's start + a later version (ms since 2024), never over the
old points (the stores' rollups do not take back a rewritten point), and each point carries its
version: a reader takes a rack's newest point in the day, and only where its version is the
day's (``job_day``), so a rack (or part) an older computation had and the newer one does not,
or a computation cut short, is not read. Points are found by the UTC day bucket their start
falls in: one local midnight per UTC day in every zone dcim supports.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from dcim.metrics import Point
from dcim.report.jobs import NS_H, Pairs, stretch_pairs
from dcim.store.base import Store

log = logging.getLogger(__name__)

DAY_S = 86_400
DAY_NS = DAY_S * 1_000_000_000
VERSION_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00Z: versions stay far inside their day
CLOSED_AFTER_NS = NS_H  # a UTC day is closed an hour after its end (points in flight)
LOOKBACK_DAYS = 400  # upkeep's horizon: a trailing year's reports read materialised days
STATE_FIELDS = ["version", "start_ns", "end_ns", "workload_points", "gpu_points"]
PAIRS_PER_POINT = 250  # < 30 KB of JSON: InfluxDB takes strings up to 64 KB


def local_days(start_ns: int, end_ns: int, tz: str) -> list[tuple[int, int]]:
    """The whole local days (midnight to midnight in *tz*) inside [start_ns, end_ns), as UTC ns."""
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start_ns / 1e9, tz=UTC).astimezone(zone).date()
    out: list[tuple[int, int]] = []
    prev: int | None = None
    while True:
        ns = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * 1_000_000_000
        if ns >= start_ns and prev is not None and prev >= start_ns and ns <= end_ns:
            out.append((prev, ns))
        if ns >= end_ns:
            return out
        prev, day = ns, day + timedelta(days=1)


def _bucket(ns: int) -> int:
    return ns // DAY_NS * DAY_NS


@dataclass
class Plan:
    """Local days with workload points: those the store holds as computed from the inputs it
    has now (*done*: {UTC bucket of the day's start: its version}) and those it does not
    (*due*: {(start, end): its input counts})."""

    done: dict[int, int]
    due: dict[tuple[int, int], tuple[int, int]]


def _per_day(store: Store, measurement: str, field: str, start_ns: int, end_ns: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in store.query(measurement, [field], start_ns, end_ns, every_s=DAY_S, agg="count"):
        for t, v in zip(s.times_ns, s.values[field]):
            out[t] = out.get(t, 0) + int(v or 0)
    return out


def _counts(workload: dict[int, int], gpu: dict[int, int], s: int, e: int) -> tuple[int, int]:
    """A day's input counts: workload points in the UTC days [s - 1 h, e) overlaps, gpu power
    points in those [s, e) overlaps."""
    return (sum(workload.get(d, 0) for d in range(_bucket(s - NS_H), e, DAY_NS)),
            sum(gpu.get(d, 0) for d in range(_bucket(s), e, DAY_NS)))


def plan(store: Store, site: str, days: list[tuple[int, int]]) -> Plan:
    """Which of *days* (local days, in time order) are materialised and current."""
    if not days:
        return Plan({}, {})
    lo, hi = _bucket(days[0][0] - NS_H), _bucket(days[-1][1] - 1) + DAY_NS
    workload = _per_day(store, "workload", "job", lo, hi)
    gpu = _per_day(store, "gpu", "power_w", lo, hi)
    states: dict[int, dict] = {}
    for series in store.query("job_day", STATE_FIELDS, lo, hi, every_s=DAY_S, agg="last", where={"site": site}):
        for i, t in enumerate(series.times_ns):
            states[t] = {f: series.values[f][i] for f in STATE_FIELDS}
    done, due = {}, {}
    for s, e in days:
        counts = _counts(workload, gpu, s, e)
        if not counts[0]:
            continue  # no workload point: no job held a GPU that day
        st = states.get(_bucket(s))
        if st and (st["start_ns"], st["end_ns"], st["workload_points"], st["gpu_points"]) == (s, e, *counts):
            done[_bucket(s)] = int(st["version"])
        else:
            due[(s, e)] = counts
    return Plan(done, due)


def _runs(days: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Days (start, end) as [start, end) runs of consecutive days."""
    runs: list[list[int]] = []
    for s, e in sorted(days):
        if runs and runs[-1][1] == s:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return [(a, b) for a, b in runs]


def _table(pairs: Pairs, rows: np.ndarray) -> str:
    """Pairs *rows* (all of one rack) as the JSON table of a ``job_energy`` point: the jobs
    ([job, tenant, account]) and GPUs it names once, then per pair column by column."""
    jobs, job_of = np.unique(pairs.job[rows], return_inverse=True)
    gpus, gpu_of = np.unique(pairs.gpu[rows], return_inverse=True)
    return json.dumps({
        "jobs": [[pairs.jobs[c], pairs.tenant[c], pairs.account[c]] for c in jobs.tolist()],
        "uuids": [pairs.uuids[g] for g in gpus.tolist()], "job": job_of.tolist(), "gpu": gpu_of.tolist(),
        "power_kwh": pairs.power_kwh[rows].tolist(), "gpu_hours": pairs.gpu_hours[rows].tolist(),
        "first_ns": np.round(pairs.first_ns[rows]).astype(np.int64).tolist(),
        "last_ns": np.round(pairs.last_ns[rows]).astype(np.int64).tolist()}, separators=(",", ":"))


def _untable(text: str, rack: str) -> Pairs:
    t = json.loads(text)
    jobs = t["jobs"]
    return Pairs([j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs], t["uuids"], [rack] * len(t["uuids"]),
                 np.array(t["job"], dtype=np.int64), np.array(t["gpu"], dtype=np.int64),
                 np.array(t["power_kwh"], dtype=float), np.array(t["gpu_hours"], dtype=float),
                 np.array(t["first_ns"], dtype=float), np.array(t["last_ns"], dtype=float))


def read_days(store: Store, site: str, days: dict[int, int]) -> Pairs:
    """The stored pairs of *days* ({day start: its current version}): each rack's (and part's)
    newest point per day, where it belongs to the day's current version."""
    if not days:
        return Pairs.empty()
    parts = []
    for s in store.query("job_energy", ["pairs", "version"], min(days), max(days) + DAY_NS, every_s=DAY_S,
                         agg="last", group_by=("rack", "part"), where={"site": site}):
        rack = s.tags.get("rack", "")
        for t, table, version in zip(s.times_ns, s.values["pairs"], s.values["version"]):
            if version is not None and version == days.get(t) and table:
                parts.append(_untable(str(table), rack))  # a string field: Series types values as float
    return Pairs.combine(parts)


def read_pairs(store: Store, site: str, tz: str, start_ns: int, end_ns: int, interval_s: float) -> Pairs:
    """The (job, GPU) pairs of [start_ns, end_ns): whole local days from ``job_energy`` where
    they are current, the rest (days not or no longer materialised, partial days at the edges
    of a period that is not whole local days) computed from the hourly reads."""
    days = local_days(start_ns, end_ns, tz)
    if not days:
        return stretch_pairs(store, start_ns, end_ns, interval_s)
    p = plan(store, site, days)
    parts = [stretch_pairs(store, start_ns, days[0][0], interval_s),
             stretch_pairs(store, days[-1][1], end_ns, interval_s)]
    parts += [stretch_pairs(store, a, b, interval_s) for a, b in _runs(list(p.due))]
    parts.append(read_days(store, site, p.done))
    return Pairs.combine(parts)


def _version(previous: int | None) -> int:
    now_ms = time.time_ns() // 1_000_000 - VERSION_EPOCH_MS
    return max(now_ms, (previous or 0) + 1)


def write_day(store: Store, site: str, day: tuple[int, int], counts: tuple[int, int], interval_s: float) -> int:
    """Compute one local day [start, end) and write it as a new version; returns the pairs written."""
    start, end = day
    pairs = stretch_pairs(store, start, end, interval_s)
    previous = None
    for s in store.query("job_day", ["version"], _bucket(start), _bucket(start) + DAY_NS, agg="max",
                         where={"site": site}):
        previous = int(s.values["version"][0]) if s.values["version"] and s.values["version"][0] else None
    version = _version(previous)
    t = start + version
    rack_of = np.array([pairs.racks[g] for g in pairs.gpu.tolist()], dtype=object)
    points = []
    for rack in sorted(set(rack_of.tolist())):
        rows = np.flatnonzero(rack_of == rack)
        for part, k in enumerate(range(0, len(rows), PAIRS_PER_POINT)):
            chunk = rows[k:k + PAIRS_PER_POINT]
            points.append(Point("job_energy", {"site": site, "rack": rack, "part": str(part)},
                                {"pairs": _table(pairs, chunk), "pair_count": len(chunk), "version": version}, t))
    store.write(points)
    # The state last: a day whose points were not all written is not marked done.
    store.write([Point("job_day", {"site": site}, {
        "version": version, "start_ns": start, "end_ns": end, "workload_points": counts[0],
        "gpu_points": counts[1], "pairs": len(pairs)}, t)])
    store.flush()
    return len(pairs)


def materialise(store: Store, site: str, tz: str, interval_s: float, *, now_ns: int | None = None,
                since_ns: int | None = None, stopping: Callable[[], bool] | None = None) -> int:
    """The upkeep step: compute and write every closed local day since *since_ns* (default: the
    last LOOKBACK_DAYS) that has workload points and is not materialised from the inputs the
    store holds now (new days, and days late points reached), newest first (the ones reports
    ask for most), until *stopping* says so. Returns the days written."""
    now_ns = time.time_ns() if now_ns is None else int(now_ns)
    closed = _bucket(now_ns - CLOSED_AFTER_NS)  # UTC days before this one are over
    start = now_ns - LOOKBACK_DAYS * DAY_NS if since_ns is None else int(since_ns)
    days = [(s, e) for s, e in local_days(start, closed, tz) if _bucket(e - 1) + DAY_NS <= closed]
    written = 0
    for day, counts in sorted(plan(store, site, days).due.items(), reverse=True):
        if stopping is not None and stopping():
            break
        t0 = time.perf_counter()
        n = write_day(store, site, day, counts, interval_s)
        log.debug("job days: the day from %s UTC: %d job-GPU pairs in %.1f s",
                  time.strftime("%Y-%m-%d %H:%M", time.gmtime(day[0] / 1e9)), n, time.perf_counter() - t0)
        written += 1
    return written


def upkeep(store: Store, site: str, tz: str, interval_s: float) -> Callable[[Callable[[], bool]], int]:
    """The job-days step for ``dcim.store.maintainer.Maintainer``'s *after*."""
    return lambda stopping: materialise(store, site, tz, interval_s, stopping=stopping)
