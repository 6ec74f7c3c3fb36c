"""Measured savings (M&V): energy per unit of work of the jobs the optimizer may cap, against a
randomised control group held at default limits, with a 95 % confidence interval.

In the spirit of IPMVP Option B (retrofit isolation, all parameters measured): the measured
quantities are a job's metered energy (its GPUs' power over each interval, times the site's
metered facility-to-GPU ratio at that time where the facility meter reads, so cooling and
losses are shared by draw) and the work it reports (``progress``). Units of work differ between
jobs, so each job is compared with **itself**: its first :data:`BASE_SAMPLES` rate samples, at
the default limit before any cap, set its baseline energy per unit of work; everything after is
its reporting period. Per group,

    R = Σ E_after / Σ (W_after × E_base / W_base)

(the energy it used over the energy its own baseline efficiency predicts for the same work,
energy-weighted across jobs), and the saving is ``1 − R_treated / R_control``: the control group
takes out what changes with time for every job alike (warm-up, weather, data phases). The 95 %
interval comes from a bootstrap over jobs (each group resampled on its own; fixed seed, so the
figure is reproducible). Jobs that report no progress have no unit of work and are not covered;
the figure says how many jobs it covers.

Which job is in the control group is a pure function of its id and a seed
(:func:`in_control_group`): stable across cycles and daemon restarts, independent of the job's
class, tenant or size, and auditable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dcim.metrics import Point

BASE_SAMPLES = 4  # the job's first rate samples at default: its baseline (as job_curves' baseline)
MIN_JOBS = 3  # per group, with both periods measured, before a figure is given
BOOTSTRAP = 1000  # resamples: the 2.5 and 97.5 percentiles to ~0.2 pt; ~20 ms for 1,000 jobs
SEED = 20260522
MAX_JOBS = 50_000  # accounts kept (finished jobs included: they are most of the evidence)
MEASURED_ACTION = "measured"  # the optimizer point's action tag that carries the figure


@lru_cache(maxsize=200_000)
def in_control_group(job: str, share: float, seed: int = 0) -> bool:
    """Is *job* in the control group? A hash of (seed, job id) mapped to [0, 1) below *share*."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < share


@dataclass
class JobAccount:
    control: bool
    base_samples: int = 0
    e_base_j: float = 0.0
    w_base: float = 0.0
    e_after_j: float = 0.0
    w_after: float = 0.0


@dataclass(frozen=True)
class MeasuredSaving:
    saving_pct: float
    ci_low_pct: float
    ci_high_pct: float
    control_jobs: int
    treated_jobs: int

    def fields(self) -> dict:
        return {"measured_saving_pct": self.saving_pct, "measured_ci_low_pct": self.ci_low_pct,
                "measured_ci_high_pct": self.ci_high_pct, "control_jobs": self.control_jobs,
                "treated_jobs": self.treated_jobs}


class SavingsLedger:
    """Per job energy and work, baseline vs reporting period (see the module docstring)."""

    def __init__(self):
        self.jobs: dict[str, JobAccount] = {}

    def add(self, job: str, control: bool, *, energy_j: float, work: float, at_default: bool) -> None:
        """One rate sample of *job*: *energy_j* metered over the interval, *work* done in it,
        *at_default* whether its GPUs were at their default limit throughout."""
        acc = self.jobs.get(job)
        if acc is None:
            if len(self.jobs) >= MAX_JOBS:
                del self.jobs[next(iter(self.jobs))]  # oldest first (insertion order)
            acc = self.jobs[job] = JobAccount(control)
        if acc.base_samples < BASE_SAMPLES:
            if at_default:  # the baseline is only ever measured at default limits
                acc.base_samples += 1
                acc.e_base_j += energy_j
                acc.w_base += work
            return
        acc.e_after_j += energy_j
        acc.w_after += work

    def estimate(self) -> MeasuredSaving | None:
        return measured_saving(list(self.jobs.values()))


def measured_saving(accounts: list[JobAccount], *, bootstrap: int = BOOTSTRAP, seed: int = SEED,
                    min_jobs: int = MIN_JOBS) -> MeasuredSaving | None:
    """The saving per unit of work, treated vs control, with a 95 % bootstrap interval; None
    until each group has *min_jobs* jobs with a baseline and a reporting period."""
    ready = [a for a in accounts if a.base_samples >= BASE_SAMPLES and a.w_base > 0 and a.e_base_j > 0
             and a.w_after > 0]
    groups = {}
    for control in (True, False):
        sel = [a for a in ready if a.control == control]
        if len(sel) < min_jobs:
            return None
        e_after = np.array([a.e_after_j for a in sel])
        expected = np.array([a.w_after * a.e_base_j / a.w_base for a in sel])
        groups[control] = (e_after, expected)
    point = 1.0 - _ratio(*groups[False]) / _ratio(*groups[True])
    rng = np.random.default_rng(seed)
    boot = []
    for control in (False, True):
        e, x = groups[control]
        idx = rng.integers(0, e.size, size=(bootstrap, e.size))
        boot.append(e[idx].sum(axis=1) / x[idx].sum(axis=1))
    sav = 1.0 - boot[0] / boot[1]
    lo, hi = np.percentile(sav, [2.5, 97.5])
    return MeasuredSaving(round(100.0 * point, 3), round(100.0 * float(lo), 3), round(100.0 * float(hi), 3),
                          len([a for a in ready if a.control]), len([a for a in ready if not a.control]))


def _ratio(energy: np.ndarray, expected: np.ndarray) -> float:
    return float(energy.sum() / expected.sum())


def measured_point(site: str, m: MeasuredSaving, now_ns: int, mode: str) -> Point:
    """The ``optimizer`` point that carries the figure (action :data:`MEASURED_ACTION`)."""
    reason = (f"measured saving per unit of work {m.saving_pct:.1f} % (95 % CI {m.ci_low_pct:.1f} to "
              f"{m.ci_high_pct:.1f} %), {m.treated_jobs} jobs vs {m.control_jobs} control jobs at default limits")
    return Point("optimizer", {"site": site, "host": "", "uuid": "", "action": MEASURED_ACTION},
                 {**m.fields(), "reason": reason, "mode": mode}, now_ns)


def read_measured_saving(store, site: str, *, since_ns: int | None = None) -> MeasuredSaving | None:
    """The newest measured saving the daemon wrote for *site* (for the dashboard and the
    report), or None if there is none (yet)."""
    pts = store.latest("optimizer", where={"site": site, "action": MEASURED_ACTION}, since_ns=since_ns)
    if not pts:
        return None
    f = max(pts, key=lambda p: p.time_ns).fields
    try:
        return MeasuredSaving(float(f["measured_saving_pct"]), float(f["measured_ci_low_pct"]),
                              float(f["measured_ci_high_pct"]), int(f["control_jobs"]), int(f["treated_jobs"]))
    except KeyError:
        return None
