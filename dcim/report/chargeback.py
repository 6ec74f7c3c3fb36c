"""Chargeback by job: each job's GPU energy, its share of the rest of IT, and what stays with the
rack owners (arithmetic over ``jobs.Pairs`` and the GPUs' period figures).

A GPU's energy over the period is its counter's increase (``energy_j``, reset-aware); the
(job, GPU) pairs hold the GPU's hourly power integrated over the job's hours, so each pair's
GPU energy is that × the GPU's counter ÷ its power integrated over the whole period (``scale``):
a GPU's hours add up to its counter exactly. A GPU without a counter keeps its integrated power.

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

from dcim.report.jobs import HOUR_S, Pairs
from dcim.store.base import Store

NO_OWNER = "(none)"


@dataclass
class Gpus:
    """The period's GPUs: each one's rack and scale (counter ÷ integrated power), and each
    rack's GPU energy (kWh; "" holds counter energy of GPUs without hourly power or rack)."""

    rack: dict[str, str]
    scale: dict[str, float]
    rack_gpu_kwh: dict[str, float]

    @classmethod
    def read(cls, store: Store, start_ns: int, end_ns: int) -> Gpus:
        counters = store.counter_increase("gpu", "energy_j", start_ns, end_ns, group_by=("uuid",))
        stats = store.bucket_stats("gpu", "power_w", start_ns, end_ns, HOUR_S, group_by=("uuid", "rack"),
                                   combine="each")
        rack: dict[str, str] = {}
        integrated: dict[str, float] = defaultdict(float)
        for (uuid, r), st in sorted(stats.items()):
            rack.setdefault(uuid, r)
            integrated[uuid] += st.total / 1000.0  # an hour at each hourly mean power
        scale = {u: 1.0 for u in rack}
        energy = dict(integrated)
        rack_gpu: dict[str, float] = defaultdict(float)
        for (uuid,), (increase_j, _resets) in counters.items():
            counter_kwh = increase_j / 3.6e6
            if uuid not in rack:
                rack_gpu[""] += counter_kwh
            elif integrated[uuid] > 0:  # the counter's energy, spread over the hours as the power was
                scale[uuid], energy[uuid] = counter_kwh / integrated[uuid], counter_kwh
            else:
                energy[uuid] = 0.0
                rack_gpu[rack[uuid]] += counter_kwh
        for uuid, kwh in energy.items():
            rack_gpu[rack[uuid]] += kwh
        return cls(rack, scale, dict(rack_gpu))

    def factors(self, rack_it_kwh: dict[str, float | None]) -> dict[str, float]:
        """IT kWh per GPU kWh of each rack."""
        return {r: (it_kwh / g if (it_kwh := rack_it_kwh.get(r)) is not None and g > 0 else 1.0)
                for r, g in self.rack_gpu_kwh.items()}


@dataclass
class JobTotals:
    """Per job (arrays over ``jobs``)."""

    jobs: list[str]
    tenant: list[str]
    account: list[str]
    gpu_kwh: np.ndarray
    it_kwh: np.ndarray
    gpu_hours: np.ndarray
    gpus: np.ndarray  # distinct GPUs held
    start_ns: np.ndarray  # first time seen holding a GPU (float ns)
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


def held(pairs: Pairs, gpus: Gpus, factor: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Per pair: (GPU kWh, IT kWh, GPU-hours, and the GPU's rack code into the returned racks);
    pairs on GPUs without hourly power in the period hold none."""
    known = np.array([u in gpus.rack for u in pairs.uuids], dtype=bool)[pairs.gpu]
    scale = np.array([gpus.scale.get(u, 0.0) for u in pairs.uuids])[pairs.gpu]
    racks = [gpus.rack.get(u, r) for u, r in zip(pairs.uuids, pairs.racks)]
    gpu_kwh = np.where(known, pairs.power_kwh * scale, 0.0)
    it_kwh = gpu_kwh * np.array([factor.get(r, 1.0) for r in racks])[pairs.gpu]
    return gpu_kwh, it_kwh, np.where(known, pairs.gpu_hours, 0.0), racks


def job_totals(pairs: Pairs, gpus: Gpus, factor: dict[str, float], period_start_ns: int,
               period_end_ns: int) -> JobTotals:
    gpu_kwh, it_kwh, hours, _ = held(pairs, gpus, factor)
    c, n = pairs.job, len(pairs.jobs)
    start, end = np.full(n, np.inf), np.full(n, -np.inf)
    on = hours > 0
    np.minimum.at(start, c[on], pairs.first_ns[on])
    np.maximum.at(end, c[on], pairs.last_ns[on])
    return JobTotals(pairs.jobs, pairs.tenant, pairs.account,
                     np.bincount(c, weights=gpu_kwh, minlength=n), np.bincount(c, weights=it_kwh, minlength=n),
                     np.bincount(c, weights=hours, minlength=n), np.bincount(c[on], minlength=n),
                     np.clip(start, period_start_ns, period_end_ns), np.clip(end, period_start_ns, period_end_ns))


def bills(pairs: Pairs, totals: JobTotals, gpus: Gpus, factor: dict[str, float],
          rack_it_kwh: dict[str, float | None], owner_of: dict[str, str]) -> dict[str, Bill]:
    """Per tenant: the IT energy of its jobs, and the remainder of the racks it owns."""
    out: dict[str, Bill] = defaultdict(Bill)
    for c, tenant in enumerate(totals.tenant):
        b = out[tenant or NO_OWNER]
        b.job_it_kwh += float(totals.it_kwh[c])
        b.job_gpu_hours += float(totals.gpu_hours[c])
        b.job_gpu_kwh += float(totals.gpu_kwh[c])
    held_it: dict[str, float] = defaultdict(float)  # per rack, IT energy its GPUs' jobs carry away
    _, it_kwh, _, racks = held(pairs, gpus, factor)
    for rack, kwh in zip(racks, np.bincount(pairs.gpu, weights=it_kwh, minlength=len(racks)).tolist()):
        held_it[rack] += kwh
    if len(pairs):  # every rack with GPU telemetry is some owner's, held or not
        for rack in gpus.rack.values():
            held_it.setdefault(rack, 0.0)
    for rack in set(rack_it_kwh) | set(held_it):
        b = out[owner_of.get(rack) or NO_OWNER]
        b.racks.append(rack)
        it = rack_it_kwh.get(rack)
        if it is not None:  # no PDU data: the owner's remainder is unknown
            b.owner_known = True
            b.owner_it_kwh += it - held_it.get(rack, 0.0)
    return dict(out)
