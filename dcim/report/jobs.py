"""Which job held which GPU in each hour of a period, and the GPU energy that follows (numpy).

The ``workload`` measurement says which job holds each GPU (``job = ""``: idle), a point per
GPU every ``[workload] interval_s``. A past quarter is read from the store's hourly rollups,
so the attribution works hour by hour, per GPU, from:

- the hour's last job (``last`` of ``job``), its ``start_ns``, tenant and account; the hour's
  first job is the previous hour's last (one read of the hours fewer: a quarter of 4,096 GPUs
  is 9 M GPU-hours a field);
- the hour's points (``count`` of ``job``) and of those, the ones a job held (``count`` of
  ``tenant``: an idle point has none).

Each point stands for ``interval_s`` (until the next one, the collector's cadence), so an
hour's known share is min(1, points × interval_s / 3600) and the jobs' share of it is the held
points' share. With one job in the hour it gets all of that; with two (first ≠ last), the last
one holds from its ``start_ns`` to the hour's end and the first one the rest. What no job held
(idle, or no workload point: unknown) stays with the rack's owner. Limit: a job that starts and
ends inside one hour, between two others, is in no hour's last point: the hourly rollups do not
show it, and its time goes to the hour's first job (the rack's owner where that is idle).

GPU energy per hour: the GPU's counter increase over the period (``energy_j``, reset-aware,
``Store.counter_increase``) spread over its hours by its hourly mean power, so the hours add up
to the counter exactly; the integrated hourly power where the GPU has no counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcim.report.periods import Period
from dcim.store.base import Store

HOUR_S = 3600
NS_H = HOUR_S * 1_000_000_000
NO_JOB = -1


@dataclass
class Holds:
    """A period's GPU-hours on one grid: GPUs (rows) × epoch hours from *h0_ns* (columns)."""

    h0_ns: int
    uuids: list[str]
    racks: list[str]  # each GPU's rack ("" where no telemetry names one)
    energy_kwh: np.ndarray  # [G, H] the GPU's energy in the hour
    jobs: list[str]  # job ids; codes index this
    job_tenant: list[str]
    job_account: list[str]
    first: np.ndarray  # [G, H] int32 job code of the hour's first point (NO_JOB: idle or none)
    last: np.ndarray  # [G, H] the last point's
    share_first: np.ndarray  # [G, H] share of the hour the first job held the GPU (0..1)
    share_last: np.ndarray  # [G, H] the last job's (0 where first == last: all is in share_first)
    last_start_ns: np.ndarray  # [G, H] float: the last job's start_ns (NaN: none)
    unplaced_kwh: dict[str, float]  # per rack: counter energy of GPUs without hourly power

    @property
    def has_workload(self) -> bool:
        return bool(self.jobs)


def _grid(period: Period) -> tuple[int, int]:
    h0 = period.start_ns - period.start_ns % NS_H
    return h0, -(-(period.end_ns - h0) // NS_H)


def _hourly(store: Store, measurement: str, fields: list[str], agg: str, period: Period,
            group_by: tuple[str, ...]):
    return store.query(measurement, fields, period.start_ns, period.end_ns, every_s=HOUR_S, agg=agg,
                       group_by=group_by)


def _gpu_energy(store: Store, period: Period, h0: int, n_hours: int):
    """(uuids, racks, energy [G, H] kWh, unplaced kWh per rack)."""
    counters = store.counter_increase("gpu", "energy_j", period.start_ns, period.end_ns, group_by=("uuid",))
    power = _hourly(store, "gpu", ["power_w"], "mean", period, ("uuid", "rack"))
    row: dict[str, int] = {}
    racks: list[str] = []
    for s in power:
        if s.tags.get("uuid", "") not in row:
            row[s.tags.get("uuid", "")] = len(racks)
            racks.append(s.tags.get("rack", ""))
    watts = np.zeros((len(racks), n_hours))
    for s in power:
        cols = (np.asarray(s.times_ns, dtype=np.int64) - h0) // NS_H
        watts[row[s.tags.get("uuid", "")], cols] += np.asarray(s.values["power_w"], dtype=float)
    energy_kwh = watts / 1000.0  # an hour at the mean power
    unplaced: dict[str, float] = {}
    for (uuid,), (increase_j, _resets) in counters.items():
        g = row.get(uuid)
        counter_kwh = increase_j / 3.6e6
        if g is None:
            unplaced[""] = unplaced.get("", 0.0) + counter_kwh
            continue
        integrated = energy_kwh[g].sum()
        if integrated > 0:  # the counter's energy, spread over the hours as the power was
            energy_kwh[g] *= counter_kwh / integrated
        else:
            unplaced[racks[g]] = unplaced.get(racks[g], 0.0) + counter_kwh
    return list(row), racks, energy_kwh, unplaced


class _Codes:
    """Job ids → small ints, with each job's tenant and account."""

    def __init__(self):
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
        tenants, accounts = values["tenant"], values.get("account") or [None] * len(tenants)
        for i in at:
            c = job_codes[i]
            if c != NO_JOB and not self.tenant[c] and tenants[i]:
                self.tenant[c], self.account[c] = tenants[i], accounts[i] or ""


def _floats(values: list) -> np.ndarray:
    return np.array(values, dtype=float)  # None → NaN


def _workload(store: Store, period: Period, h0: int, n_hours: int, row: dict[str, int], interval_s: float):
    """Dense [G, H] arrays: first and last job code, last start, held shares; and the job codes."""
    shape = (len(row), n_hours)
    first, last = np.full(shape, NO_JOB, dtype=np.int32), np.full(shape, NO_JOB, dtype=np.int32)
    points, held = np.zeros(shape), np.zeros(shape)
    last_start = np.full(shape, np.nan)
    codes = _Codes()

    def read(fields: list[str], agg: str, fill) -> None:
        for s in _hourly(store, "workload", fields, agg, period, ("uuid", "host")):
            g = row.get(s.tags.get("uuid", ""))
            if g is not None and s.times_ns:
                fill(g, (np.asarray(s.times_ns, dtype=np.int64) - h0) // NS_H, s.values)

    def put_last(g, cols, v):
        last[g, cols] = c = codes.of(v["job"])
        codes.learn(c, v)
        last_start[g, cols] = _floats(v["start_ns"])

    def put_counts(g, cols, v):
        points[g, cols] = np.nan_to_num(_floats(v["job"]))
        held[g, cols] = np.nan_to_num(_floats(v["tenant"]))

    read(["job", "start_ns", "tenant", "account"], "last", put_last)
    read(["job", "tenant"], "count", put_counts)
    # The hour's first job is the previous hour's last (where that hour has points): a job
    # that ended at the boundary gets no share below, since the last job's start and the held
    # points leave it none.
    first[:, 1:] = np.where(points[:, :-1] > 0, last[:, :-1], NO_JOB)
    known = np.minimum(1.0, points * (interval_s / HOUR_S))
    busy = known * np.divide(held, points, out=np.zeros(shape), where=points > 0)
    # The last job holds from its start (or the hour's start) to the hour's end.
    hour_start = (h0 + np.arange(n_hours, dtype=np.int64) * NS_H).astype(float)
    since = np.fmax(np.nan_to_num(last_start, nan=-np.inf), hour_start[None, :])
    last_frac = np.clip((hour_start[None, :] + NS_H - since) / NS_H, 0.0, 1.0)
    two = (first != NO_JOB) & (last != NO_JOB) & (first != last)
    share_last = np.where(two, np.minimum(busy, last_frac), np.where((last != NO_JOB) & (first == NO_JOB), busy, 0.0))
    share_first = np.where(first != NO_JOB, busy - share_last, 0.0)
    return codes, first, last, share_first, share_last, last_start


def _any_job(store: Store, period: Period) -> bool:
    """True if some workload point in *period* has a job (a tenant): one count over the period,
    so a site without a workload source reads no GPU-hours for its tenant level."""
    return any(v for s in store.query("workload", ["tenant"], period.start_ns, period.end_ns, agg="count")
               for v in s.values.get("tenant", []) if v)


def read_holds(store: Store, period: Period, interval_s: float) -> Holds:
    """The period's GPU energy per GPU-hour and which jobs held each GPU-hour (see the module)."""
    h0, n_hours = _grid(period)
    if not _any_job(store, period):
        none = np.zeros((0, n_hours))
        return Holds(h0, [], [], none, [], [], [], none.astype(np.int32), none.astype(np.int32), none, none, none, {})
    uuids, racks, energy_kwh, unplaced = _gpu_energy(store, period, h0, n_hours)
    row = {u: g for g, u in enumerate(uuids)}
    codes, first, last, share_first, share_last, last_start = _workload(store, period, h0, n_hours, row, interval_s)
    return Holds(h0, uuids, racks, energy_kwh, codes.jobs, codes.tenant, codes.account, first, last,
                 share_first, share_last, last_start, unplaced)
