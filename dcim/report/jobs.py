"""Which job held which GPU in each hour, summed per (job, GPU) over a stretch of time (numpy).

The ``workload`` measurement says which job holds each GPU (``job = ""``: idle), a point per
GPU every ``[workload] interval_s``. A past quarter is read from the store's hourly rollups,
so the attribution works hour by hour, per GPU, from:

- the hour's last job (``last`` of ``job``), its ``start_ns``, tenant and account; the hour's
  first job is the previous hour's last (one read of the hours fewer);
- the hour's points (``count`` of ``job``) and of those, the ones a job held (``count`` of
  ``tenant``: an idle point has none).

Each point stands for ``interval_s`` (until the next one, the collector's cadence), so an
hour's known share is min(1, points × interval_s / 3600) and the jobs' share of it is the held
points' share. With one job in the hour it gets all of that; with two (first ≠ last), the last
one holds from its ``start_ns`` to the hour's end and the first one the rest. What no job held
(idle, or no workload point: unknown) stays with the rack's owner. Limit: a job that starts and
ends inside one hour, between two others, is in no hour's last point: the hourly rollups do not
show it, and its time goes to the hour's first job (the rack's owner where that is idle).

Each hour depends only on itself and the hour before, so any stretch of hours (a UTC day, a
period's partial first day) is attributed alone and stretches add up (``Pairs.combine``): that
is what lets ``job_days`` compute a closed day once. The GPU energy kept per (job, GPU) is the
GPU's hourly mean power integrated over the job's shares (``power_kwh``); the report scales it
per GPU to the GPU's energy counter over the whole period (``chargeback``), so the hours of a
GPU add up to its counter exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcim.store.base import Aggregate, Store

HOUR_S = 3600
NS_H = HOUR_S * 1_000_000_000
NO_JOB = -1


@dataclass
class Pairs:
    """(job, GPU) pairs over a stretch of time. Jobs and GPUs are coded: ``jobs[c]`` with its
    ``tenant[c]`` and ``account[c]``; ``uuids[g]`` with its ``racks[g]`` (its ``gpu`` series'; ""
    where none). Per pair (arrays of one length): job and GPU code, GPU-hours held, the GPU's
    power integrated over them (kWh), and the first and last time held (float ns)."""

    jobs: list[str]
    tenant: list[str]
    account: list[str]
    uuids: list[str]
    racks: list[str]
    job: np.ndarray
    gpu: np.ndarray
    power_kwh: np.ndarray
    gpu_hours: np.ndarray
    first_ns: np.ndarray
    last_ns: np.ndarray

    @classmethod
    def empty(cls) -> Pairs:
        none, codes = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls([], [], [], [], [], codes, codes, none, none, none, none)

    def __len__(self) -> int:
        return len(self.job)

    @classmethod
    def combine(cls, parts: list[Pairs]) -> Pairs:
        """Several stretches' pairs as one: sums of kWh and hours, the earliest first and the
        latest last per (job, GPU); a job's tenant and account, a GPU's rack, as first seen."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        jobs: dict[str, int] = {}
        uuids: dict[str, int] = {}
        out = cls.empty()
        job_codes, gpu_codes = [], []
        for p in parts:
            jmap = np.empty(len(p.jobs), dtype=np.int64)
            for i, j in enumerate(p.jobs):
                c = jobs.get(j)
                if c is None:
                    c = jobs[j] = len(out.jobs)
                    out.jobs.append(j)
                    out.tenant.append(p.tenant[i])
                    out.account.append(p.account[i])
                jmap[i] = c
            gmap = np.empty(len(p.uuids), dtype=np.int64)
            for i, u in enumerate(p.uuids):
                c = uuids.get(u)
                if c is None:
                    c = uuids[u] = len(out.uuids)
                    out.uuids.append(u)
                    out.racks.append(p.racks[i])
                gmap[i] = c
            job_codes.append(jmap[p.job])
            gpu_codes.append(gmap[p.gpu])
        n_gpus = len(out.uuids)
        uniq, inv = np.unique(np.concatenate(job_codes) * n_gpus + np.concatenate(gpu_codes), return_inverse=True)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        n = len(uniq)
        out.first_ns, out.last_ns = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(out.first_ns, inv, cat("first_ns"))
        np.maximum.at(out.last_ns, inv, cat("last_ns"))
        out.job, out.gpu = uniq // n_gpus, uniq % n_gpus
        out.power_kwh = np.bincount(inv, weights=cat("power_kwh"), minlength=n)
        out.gpu_hours = np.bincount(inv, weights=cat("gpu_hours"), minlength=n)
        return out


def _hourly(store: Store, measurement: str, fields: list[str], agg: Aggregate, start_ns: int, end_ns: int,
            group_by: tuple[str, ...]):
    return store.query(measurement, fields, start_ns, end_ns, every_s=HOUR_S, agg=agg, group_by=group_by)


class _Codes:
    """Job ids → small ints, with each job's tenant and account."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {"": NO_JOB}
        self.jobs: list[str] = []
        self.tenant: list[str] = []
        self.account: list[str] = []

    def of(self, values: list) -> np.ndarray:
        for v in set(values) - self.code.keys():
            self.code[v] = len(self.jobs)
            self.jobs.append(v)
            self.tenant.append("")
            self.account.append("")
        return np.fromiter(map(self.code.__getitem__, values), dtype=np.int32, count=len(values))

    def learn(self, job_codes: np.ndarray, values: dict) -> None:
        """Tenant and account of the jobs in one series, read where its job changes (a job's
        fields are the same in every point)."""
        if "tenant" not in values:
            return
        at = np.flatnonzero(np.diff(job_codes, prepend=NO_JOB - 1)).tolist()
        tenants, accounts = values["tenant"], values.get("account") or [None] * len(values["tenant"])
        for i in at:
            c = job_codes[i]
            if c != NO_JOB and not self.tenant[c] and tenants[i]:
                self.tenant[c], self.account[c] = tenants[i], accounts[i] or ""


def _floats(values: list) -> np.ndarray:
    return np.array(values, dtype=float)  # None → NaN


class _Grid:
    """GPU rows × hours from *h0* (the hour before the stretch: its last job opens the first)."""

    def __init__(self, start_ns: int, end_ns: int):
        self.h0 = start_ns - start_ns % NS_H - NS_H
        self.n_hours = -(-(end_ns - self.h0) // NS_H)
        self.row: dict[str, int] = {}
        self.racks: list[str] = []

    def add(self, uuid: str, rack: str) -> int:
        g = self.row.get(uuid)
        if g is None:
            g = self.row[uuid] = len(self.racks)
            self.racks.append(rack)
        return g

    def cols(self, times_ns: list[int]) -> np.ndarray:
        return (np.asarray(times_ns, dtype=np.int64) - self.h0) // NS_H


def _power(store: Store, start_ns: int, end_ns: int, grid: _Grid) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per GPU row: (hour columns, kWh of an hour at the hour's mean power)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for s in _hourly(store, "gpu", ["power_w"], "mean", start_ns, end_ns, ("uuid", "rack")):
        g = grid.add(s.tags.get("uuid", ""), s.tags.get("rack", ""))
        kwh = np.nan_to_num(_floats(s.values["power_w"])) / 1000.0
        cols = grid.cols(s.times_ns)
        if g in out:  # a GPU in two racks' series: its hours add up, as one row
            cols, kwh = np.concatenate([out[g][0], cols]), np.concatenate([out[g][1], kwh])
        out[g] = (cols, kwh)
    return out


def _workload(store: Store, start_ns: int, end_ns: int, grid: _Grid, interval_s: float):
    """Dense [G, H] arrays over the grid: first and last job code, last start, held shares."""
    reads = {}
    wanted: tuple[tuple[str, list[str], Aggregate], ...] = (
        ("last", ["job", "start_ns", "tenant", "account"], "last"), ("count", ["job", "tenant"], "count"))
    for name, fields, agg in wanted:
        reads[name] = [(grid.add(s.tags.get("uuid", ""), ""), s) for s in
                       _hourly(store, "workload", fields, agg, grid.h0, end_ns, ("uuid", "host")) if s.times_ns]
    shape = (len(grid.racks), grid.n_hours)
    first, last = np.full(shape, NO_JOB, dtype=np.int32), np.full(shape, NO_JOB, dtype=np.int32)
    points, held = np.zeros(shape), np.zeros(shape)
    last_start = np.full(shape, np.nan)
    codes = _Codes()
    for g, s in reads["last"]:
        cols = grid.cols(s.times_ns)
        last[g, cols] = c = codes.of(s.values["job"])
        codes.learn(c, s.values)
        last_start[g, cols] = _floats(s.values["start_ns"])
    for g, s in reads["count"]:
        cols = grid.cols(s.times_ns)
        points[g, cols] = np.nan_to_num(_floats(s.values["job"]))
        held[g, cols] = np.nan_to_num(_floats(s.values["tenant"]))
    # The hour's first job is the previous hour's last (where that hour has points): a job
    # that ended at the boundary gets no share below, since the last job's start and the held
    # points leave it none.
    first[:, 1:] = np.where(points[:, :-1] > 0, last[:, :-1], NO_JOB)
    known = np.minimum(1.0, points * (interval_s / HOUR_S))
    busy = known * np.divide(held, points, out=np.zeros(shape), where=points > 0)
    # The last job holds from its start (or the hour's start) to the hour's end.
    hour_start = (grid.h0 + np.arange(grid.n_hours, dtype=np.int64) * NS_H).astype(float)
    since = np.fmax(np.nan_to_num(last_start, nan=-np.inf), hour_start[None, :])
    last_frac = np.clip((hour_start[None, :] + NS_H - since) / NS_H, 0.0, 1.0)
    two = (first != NO_JOB) & (last != NO_JOB) & (first != last)
    share_last = np.where(two, np.minimum(busy, last_frac), np.where((last != NO_JOB) & (first == NO_JOB), busy, 0.0))
    share_first = np.where(first != NO_JOB, busy - share_last, 0.0)
    share_first[:, 0] = share_last[:, 0] = 0.0  # the hour before the stretch only opens it
    return codes, first, last, share_first, share_last, last_start, hour_start


def _any_job(store: Store, start_ns: int, end_ns: int) -> bool:
    """True if some workload point in [start, end) has a job (a tenant): one count, so a site
    without a workload source reads no GPU-hours for its tenant level."""
    return any(v for s in store.query("workload", ["tenant"], start_ns, end_ns, agg="count")
               for v in s.values.get("tenant", []) if v)


def stretch_pairs(store: Store, start_ns: int, end_ns: int, interval_s: float) -> Pairs:
    """The (job, GPU) pairs of [start_ns, end_ns) from the hourly reads (see the module)."""
    if end_ns <= start_ns or not _any_job(store, start_ns, end_ns):
        return Pairs.empty()
    grid = _Grid(start_ns, end_ns)
    power = _power(store, start_ns, end_ns, grid)
    codes, first, last, share_first, share_last, last_start, hour_start = _workload(
        store, start_ns, end_ns, grid, interval_s)
    energy_kwh = np.zeros(first.shape)
    for g, (cols, kwh) in power.items():
        np.add.at(energy_kwh[g], cols, kwh)
    keys, kwh_all, hours_all, starts, ends = [], [], [], [], []
    n_gpus = len(grid.racks)
    for role, share, job_codes in (("first", share_first, first), ("last", share_last, last)):
        on = (job_codes != NO_JOB) & (share > 0)
        g_idx, h_idx = np.nonzero(on)
        s = share[on]
        t0 = hour_start[h_idx]
        if role == "first":  # the hour's first job holds from the hour's start, for its share
            cell_start, cell_end = t0, t0 + s * NS_H
        else:  # the last one from its start (or the hour's) to the hour's end
            cell_start, cell_end = np.fmax(np.nan_to_num(last_start[on], nan=-np.inf), t0), t0 + NS_H
        keys.append(job_codes[on].astype(np.int64) * n_gpus + g_idx)
        kwh_all.append(s * energy_kwh[on])
        hours_all.append(s)
        starts.append(cell_start)
        ends.append(cell_end)
    key = np.concatenate(keys)
    uniq, inv = np.unique(key, return_inverse=True)
    first_ns, last_ns = np.full(len(uniq), np.inf), np.full(len(uniq), -np.inf)
    np.minimum.at(first_ns, inv, np.concatenate(starts))
    np.maximum.at(last_ns, inv, np.concatenate(ends))
    return Pairs(codes.jobs, codes.tenant, codes.account, list(grid.row), grid.racks,
                 uniq // max(n_gpus, 1), uniq % max(n_gpus, 1),
                 np.bincount(inv, weights=np.concatenate(kwh_all), minlength=len(uniq)),
                 np.bincount(inv, weights=np.concatenate(hours_all), minlength=len(uniq)), first_ns, last_ns)
