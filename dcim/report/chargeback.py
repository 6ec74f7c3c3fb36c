"""Chargeback by job: each job's GPU energy, its share of the rest of IT, and what stays with the
rack owners (pure arithmetic over ``jobs.Holds``; no I/O).

A rack's IT energy (its PDUs) is its GPUs' energy plus the rest (CPUs, memory, fans, NICs): the
rest is shared like the GPU energy, so every GPU-kWh of a rack carries IT = rack IT ÷ rack GPU
energy (``factor``). A job's IT energy is its GPU energy × its racks' factors; what no job held
(idle GPUs, hours without workload points, the GPUs' unplaced counter energy, a rack without
GPU telemetry) stays with the rack's owner. So the jobs' IT and the owners' remainders add up
to the racks' IT exactly. A rack without PDU data has factor 1 (GPU energy only; its owner's
remainder is unknown).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from dcim.report.jobs import NO_JOB, NS_H, Holds

NO_OWNER = "(none)"


@dataclass
class JobTotals:
    """Per job code: arrays over the jobs of ``Holds.jobs``."""

    gpu_kwh: np.ndarray
    it_kwh: np.ndarray
    gpu_hours: np.ndarray
    gpus: np.ndarray  # distinct GPUs held
    start_ns: np.ndarray  # first time seen holding a GPU (float ns; inf: never)
    end_ns: np.ndarray


@dataclass
class Bill:
    """One tenant's IT energy: held by its jobs, and as the owner of racks (the remainder)."""

    job_it_kwh: float = 0.0
    owner_it_kwh: float = 0.0
    owner_known: bool = False  # some rack it owns has PDU data
    job_gpu_hours: float = 0.0
    job_gpu_kwh: float = 0.0
    racks: list[str] = field(default_factory=list)

    @property
    def it_kwh(self) -> float | None:
        if not self.owner_known and not self.job_it_kwh:
            return None
        return self.job_it_kwh + self.owner_it_kwh

    @property
    def method(self) -> str:
        if self.job_it_kwh > 0 and abs(self.owner_it_kwh) > 1e-9:
            return "mixed"
        return "job" if self.job_it_kwh > 0 else "rack_owner"


def rack_factors(holds: Holds, rack_it_kwh: dict[str, float | None]) -> tuple[np.ndarray, dict[str, float]]:
    """(IT kWh per GPU kWh for each GPU row, each rack's GPU energy)."""
    rack_gpu: dict[str, float] = defaultdict(float)
    for rack, kwh in zip(holds.racks, holds.energy_kwh.sum(axis=1).tolist()):
        rack_gpu[rack] += kwh
    for rack, kwh in holds.unplaced_kwh.items():
        rack_gpu[rack] += kwh
    factor = {r: (rack_it_kwh[r] / g if rack_it_kwh.get(r) is not None and g > 0 else 1.0) for r, g in rack_gpu.items()}
    return np.array([factor[r] for r in holds.racks]), dict(rack_gpu)


def job_totals(holds: Holds, gpu_factor: np.ndarray, period_start_ns: int, period_end_ns: int) -> JobTotals:
    n_jobs, (n_gpus, n_hours) = len(holds.jobs), holds.energy_kwh.shape
    gpu_kwh, it_kwh, hours = np.zeros(n_jobs), np.zeros(n_jobs), np.zeros(n_jobs)
    start, end = np.full(n_jobs, np.inf), np.full(n_jobs, -np.inf)
    hour_start = (holds.h0_ns + np.arange(n_hours, dtype=np.int64) * NS_H).astype(float)
    pairs = []
    for role, share in (("first", holds.share_first), ("last", holds.share_last)):
        codes = holds.first if role == "first" else holds.last
        on = (codes != NO_JOB) & (share > 0)
        g_idx, h_idx = np.nonzero(on)
        c = codes[on]
        s = share[on]
        kwh = s * holds.energy_kwh[on]
        gpu_kwh += np.bincount(c, weights=kwh, minlength=n_jobs)
        it_kwh += np.bincount(c, weights=kwh * gpu_factor[g_idx], minlength=n_jobs)
        hours += np.bincount(c, weights=s, minlength=n_jobs)
        t0 = hour_start[h_idx]
        if role == "first":  # the hour's first job holds from the hour's start, for its share
            cell_start, cell_end = t0, t0 + s * NS_H
        else:  # the last one from its start (or the hour's) to the hour's end
            cell_start = np.fmax(np.nan_to_num(holds.last_start_ns[on], nan=-np.inf), t0)
            cell_end = t0 + NS_H
        np.minimum.at(start, c, cell_start)
        np.maximum.at(end, c, cell_end)
        # distinct (job, GPU) pairs: only where a row's job changes, not every hour of a hold
        changed = np.ones_like(on)
        changed[:, 1:] = codes[:, 1:] != codes[:, :-1]
        keep = on & changed
        pairs.append(codes[keep].astype(np.int64) * n_gpus + np.nonzero(keep)[0])
    uniq = np.unique(np.concatenate(pairs)) if n_gpus else np.zeros(0, dtype=np.int64)
    gpus = np.bincount((uniq // max(n_gpus, 1)).astype(np.int64), minlength=n_jobs)
    start = np.clip(start, period_start_ns, period_end_ns)
    end = np.clip(end, period_start_ns, period_end_ns)
    return JobTotals(gpu_kwh, it_kwh, hours, gpus, start, end)


def bills(holds: Holds, totals: JobTotals, gpu_factor: np.ndarray, rack_it_kwh: dict[str, float | None],
          owner_of: dict[str, str]) -> dict[str, Bill]:
    """Per tenant: the IT energy of its jobs, and the remainder of the racks it owns."""
    out: dict[str, Bill] = defaultdict(Bill)
    for c, tenant in enumerate(holds.job_tenant):
        b = out[tenant or NO_OWNER]
        b.job_it_kwh += float(totals.it_kwh[c])
        b.job_gpu_hours += float(totals.gpu_hours[c])
        b.job_gpu_kwh += float(totals.gpu_kwh[c])
    held_it: dict[str, float] = defaultdict(float)  # per rack, IT energy its GPUs' jobs carry away
    held_gpu = holds.share_first * holds.energy_kwh + holds.share_last * holds.energy_kwh
    for rack, kwh in zip(holds.racks, (held_gpu.sum(axis=1) * gpu_factor).tolist()):
        held_it[rack] += kwh
    for rack in set(rack_it_kwh) | set(held_it):
        b = out[owner_of.get(rack) or NO_OWNER]
        b.racks.append(rack)
        it = rack_it_kwh.get(rack)
        if it is not None:  # no PDU data: the owner's remainder is unknown
            b.owner_known = True
            b.owner_it_kwh += it - held_it.get(rack, 0.0)
    return dict(out)
