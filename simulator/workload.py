"""Jobs arriving over time, placed on GPUs, progressing at the speed their power caps allow.

A job has a tenant, a class (training, fine_tuning, inference, batch), a GPU count, an amount
of work in GPU-seconds at full (uncapped) speed and a utilisation profile. Each step every GPU
of a running job progresses at its relative throughput (from the physics' power→throughput
curve); synchronous classes (training, fine-tuning) move at the pace of their slowest GPU, so a
capped job takes longer.

Placement is pluggable: ``placement(free_slots, job) -> chosen_slots | None``. The twin passes
the free slots the job may use (its tenant's racks and racks with no tenant); the default is
first-fit by whole servers. The optimizer's placement plugs in through the command line.

The job mix is an [assumption] loosely shaped like public GPU-cluster traces (Alibaba PAI,
Shanghai AI Lab "Acme": many small short jobs, most GPU-hours in a few large training runs).
Arrivals are a Poisson process (thinned for a working-hours/weekday rhythm) drawn from their
own random stream, so they do not depend on the step size.

Job-start hook (optional): ``on_job_start(job)`` is called once per job when it is placed,
after its slots are assigned and before it runs its first step — the twin's model of a
scheduler's job prolog (Slurm ``Prolog``, a node agent noticing a new job), e.g. resetting the
GPUs' power limits to their default so a job never inherits the cap set for the previous one.
Default ``None``: no hook, a job runs under whatever its GPUs were left at.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from dcim.inventory import GpuSlot
from simulator import capping_curves, physics

log = logging.getLogger(__name__)

CLASS_CODES = {name: i for i, name in enumerate(physics.JOB_CLASSES)}
SYNC_CLASSES = frozenset({"training", "fine_tuning"})


@dataclass(frozen=True)
class ClassProfile:
    """How jobs of one class look [assumption, see module docstring]."""

    share: float  # share of arrivals
    gpu_choices: tuple[int, ...]
    gpu_probs: tuple[float, ...]
    median_h: float  # median duration at full speed, hours
    sigma: float  # lognormal spread of the duration
    util_range: tuple[float, float]  # mean SM utilisation drawn per job
    mem_frac: float  # share of HBM in use
    max_h: float = 14 * 24.0


PROFILES: dict[str, ClassProfile] = {
    "training": ClassProfile(0.15, (8, 16, 32, 64), (0.4, 0.3, 0.2, 0.1), 24.0, 0.8, (0.85, 0.98), 0.90),
    "fine_tuning": ClassProfile(0.35, (1, 2, 4, 8), (0.2, 0.3, 0.3, 0.2), 4.0, 0.8, (0.65, 0.90), 0.75),
    "inference": ClassProfile(0.15, (1, 2, 4, 8), (0.4, 0.3, 0.2, 0.1), 48.0, 0.6, (0.35, 0.75), 0.60),
    "batch": ClassProfile(0.35, (1, 2, 4, 8), (0.4, 0.3, 0.2, 0.1), 1.5, 0.9, (0.80, 0.98), 0.50),
}
_CLASS_NAMES = tuple(PROFILES)
_CLASS_CDF = np.cumsum([PROFILES[c].share for c in _CLASS_NAMES])
UTIL_NOISE = 0.02  # per-step jitter of a GPU's utilisation around its job's mean
MAX_QUEUE_WAIT_S = 24 * 3600.0  # jobs waiting longer are abandoned (counted)


def _pick(rng: np.random.Generator, items: Sequence, cdf: np.ndarray):
    """One item drawn with the probabilities whose cumulative sum is *cdf* (cheaper than choice)."""
    return items[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(items) - 1)]


@dataclass
class Job:
    id: str
    tenant: str
    job_class: str
    gpus: int
    work_gpu_s: float  # GPU-seconds at full speed
    util: float  # mean SM utilisation 0..1
    submit_ns: int
    start_ns: int | None = None
    end_ns: int | None = None
    done_gpu_s: float = 0.0
    slots: list[int] = field(default_factory=list)  # global GPU indices (twin order)
    # Hidden truth: the job's power → throughput curve (simulator/capping_curves.py), drawn
    # from (seed, job id). Never emitted; read by the twin's physics and by grading only.
    curve: capping_curves.JobCurve | None = None

    @property
    def remaining_gpu_s(self) -> float:
        return max(0.0, self.work_gpu_s - self.done_gpu_s)


Placement = Callable[[Sequence[GpuSlot], Job], "Sequence[GpuSlot] | None"]


def first_fit(free: Sequence[GpuSlot], job: Job) -> list[GpuSlot] | None:
    """Default placement: a job that fits one server goes on the first server with enough free
    GPUs; a larger job takes the emptiest servers first (whole NVLink domains), in inventory
    order among equals."""
    by_host: dict[str, list[GpuSlot]] = {}
    for slot in free:
        by_host.setdefault(slot.host, []).append(slot)
    for slots in by_host.values():
        if len(slots) >= job.gpus:
            return slots[:job.gpus]
    if job.gpus <= 8:
        return None  # small jobs are not split across servers
    chosen: list[GpuSlot] = []
    for slots in sorted(by_host.values(), key=len, reverse=True):  # sorted() is stable
        chosen += slots
        if len(chosen) >= job.gpus:
            return chosen[:job.gpus]
    return None


class Workload:
    """The jobs of a facility and, per GPU, what runs on it (numpy arrays in slot order)."""

    def __init__(self, slots: Sequence[GpuSlot], tenants: Sequence[str], *, seed: int, start_ns: int,
                 placement: Placement | None = None, target_util: float = 0.7, arrivals: bool = True,
                 tz: str = "UTC", on_job_start: Callable[[Job], None] | None = None,
                 curve_end: capping_curves.CurveEnd = "spread"):
        if curve_end not in capping_curves.CURVE_ENDS:
            raise ValueError(f"curve_end must be one of {', '.join(capping_curves.CURVE_ENDS)}, got {curve_end!r}")
        self.seed = seed
        self.curve_end = curve_end
        self.slots = list(slots)
        self.on_job_start = on_job_start
        self.n = len(self.slots)
        self.placement = placement or first_fit
        self.arrivals = arrivals
        self.tz = ZoneInfo(tz)
        self._slot_pos = {(s.host, s.index): i for i, s in enumerate(self.slots)}
        self.tenants = list(tenants) or sorted({s.tenant for s in self.slots if s.tenant}) or ["default"]
        self._tenant_weights = self._weights_by_gpus()
        self._tenant_cdf = np.cumsum(self._tenant_weights)
        self._allowed_mask: dict[str, np.ndarray] = {}
        self._changed = True  # something freed or arrived since the queue was last tried
        self.jobs: dict[str, Job] = {}  # running
        self.queue: list[Job] = []
        self.finished = 0
        self.abandoned = 0
        self._next_id = 0
        # Per-GPU state.
        self.gpu_job: list[Job | None] = [None] * self.n
        self.util = np.zeros(self.n)
        self.class_code = np.full(self.n, -1, dtype=np.int8)
        self.memory_bound = np.zeros(self.n, dtype=bool)
        self.mem_frac = np.zeros(self.n)
        self.busy = np.zeros(self.n, dtype=bool)
        self.curve_u = np.zeros(self.n)  # the running job's place in the published spread
        self.burst = np.full(self.n, 0.05)  # the running job's burst width (cap → power)
        # Separate streams: arrivals (independent of dt), per-step jitter.
        self._arrival_rng = np.random.default_rng([seed & 0xFFFFFFFF, 0xA881])
        self._noise_rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x0015E])
        mean_gpu_s = sum(p.share * float(np.dot(p.gpu_choices, p.gpu_probs)) * p.median_h * 3600
                         * math.exp(p.sigma ** 2 / 2) for p in PROFILES.values())
        # Rate that keeps ~target_util of the GPUs allocated (Little's law), before queueing.
        self.rate_per_s = target_util * self.n / mean_gpu_s if self.n else 0.0
        self._rate_max = self.rate_per_s * 1.5  # envelope for thinning (rhythm peaks at 1.3×)
        self._next_arrival_ns = start_ns + self._interarrival_ns()
        if arrivals and self.n:
            self._fill(start_ns, target_util)

    # --- generation ------------------------------------------------------------------------------

    def _weights_by_gpus(self) -> np.ndarray:
        counts = np.array([sum(1 for s in self.slots if s.tenant == t) for t in self.tenants], dtype=float)
        if counts.sum() == 0:
            counts = np.ones(len(self.tenants))
        return counts / counts.sum()

    def _interarrival_ns(self) -> int:
        if self._rate_max <= 0:
            return 10**30
        return int(self._arrival_rng.exponential(1.0 / self._rate_max) * 1e9) + 1

    def _rhythm(self, time_ns: int) -> float:
        """Submission rate relative to the mean: busier in working hours, quieter at weekends."""
        local = datetime.fromtimestamp(time_ns / 1e9, tz=UTC).astimezone(self.tz)
        hour = local.hour + local.minute / 60.0
        day = 1.0 + 0.3 * math.cos(2 * math.pi * (hour - 14.0) / 24.0)
        return day * (0.75 if local.weekday() >= 5 else 1.1)

    def new_job(self, time_ns: int, *, job_class: str | None = None, tenant: str | None = None,
                gpus: int | None = None, work_gpu_s: float | None = None, util: float | None = None) -> Job:
        """Draw a job (any attribute may be given instead of drawn). Not yet submitted."""
        rng = self._arrival_rng
        if job_class is None:
            job_class = _pick(rng, _CLASS_NAMES, _CLASS_CDF)
        prof = PROFILES[job_class]
        if tenant is None:
            tenant = _pick(rng, self.tenants, self._tenant_cdf)
        if gpus is None:
            gpus = int(_pick(rng, prof.gpu_choices, np.cumsum(prof.gpu_probs)))
        if work_gpu_s is None:
            hours = min(prof.max_h, prof.median_h * math.exp(prof.sigma * rng.standard_normal()))
            work_gpu_s = max(600.0, hours * 3600.0) * gpus
        if util is None:
            util = float(rng.uniform(*prof.util_range))
        self._next_id += 1
        # Ids as Slurm numbers them (the twin's scheduler is a Slurm: simulator/slurm_api.py).
        job_id = str(self._next_id)
        curve = capping_curves.draw_curve(self.seed, job_id, job_class, self.curve_end)
        return Job(id=job_id, tenant=tenant, job_class=job_class, gpus=gpus,
                   work_gpu_s=float(work_gpu_s), util=float(util), submit_ns=time_ns, curve=curve)

    def _fill(self, now_ns: int, target_util: float) -> None:
        """Start in a steady state: place drawn jobs, part-way done, until ~target_util is in use."""
        for _ in range(20 * self.n):
            if self.busy.mean() >= target_util:
                break
            job = self.new_job(now_ns)
            job.done_gpu_s = job.work_gpu_s * float(self._arrival_rng.uniform(0.0, 0.95))
            self._try_start(job, now_ns)

    # --- lifecycle -------------------------------------------------------------------------------

    def submit(self, job: Job, now_ns: int) -> bool:
        """Queue *job* and try to start it now. True if it started."""
        self.queue.append(job)
        self._drain_queue(now_ns)
        return job.start_ns is not None

    def _allowed_free(self, job: Job) -> list[GpuSlot]:
        allowed = self._allowed_mask.get(job.tenant)
        if allowed is None:
            tenanted = any(s.tenant for s in self.slots)
            allowed = np.array([not tenanted or s.tenant in (None, job.tenant) for s in self.slots], dtype=bool)
            self._allowed_mask[job.tenant] = allowed
        return [self.slots[i] for i in np.flatnonzero(allowed & ~self.busy)]

    def _try_start(self, job: Job, now_ns: int) -> bool:
        free = self._allowed_free(job)
        if len(free) < job.gpus:
            return False
        chosen = self.placement(free, job)
        if chosen is not None and self.placement is not first_fit:
            free_keys = {(s.host, s.index) for s in free}
            keys = [(s.host, s.index) for s in chosen]
            if len(keys) != job.gpus or len(set(keys)) != len(keys) or not set(keys) <= free_keys:
                log.warning("placement returned an invalid choice for %s; falling back to first-fit", job.id)
                chosen = first_fit(free, job)
        if not chosen:
            return False
        job.slots = [self._slot_pos[(s.host, s.index)] for s in chosen]
        job.start_ns = now_ns
        self.jobs[job.id] = job
        prof = PROFILES[job.job_class]
        if job.curve is None:  # a Job built by hand: draw its curve as new_job would
            job.curve = capping_curves.draw_curve(self.seed, job.id, job.job_class, self.curve_end)
        for i in job.slots:
            self.gpu_job[i] = job
            self.busy[i] = True
            self.util[i] = job.util
            self.class_code[i] = CLASS_CODES[job.job_class]
            self.memory_bound[i] = job.job_class in physics.MEMORY_BOUND_CLASSES
            self.mem_frac[i] = prof.mem_frac
            self.curve_u[i] = job.curve.u
            self.burst[i] = job.curve.burst
        if self.on_job_start is not None:
            self.on_job_start(job)  # the prolog: runs before the job's first step
        return True

    def _finish(self, job: Job, now_ns: int) -> None:
        job.end_ns = now_ns
        for i in job.slots:
            self.gpu_job[i] = None
            self.busy[i] = False
            self.util[i] = 0.0
            self.class_code[i] = -1
            self.memory_bound[i] = False
            self.mem_frac[i] = 0.0
        del self.jobs[job.id]
        self.finished += 1
        self._changed = True

    def _drain_queue(self, now_ns: int) -> None:
        waiting = []
        for job in self.queue:
            if job.start_ns is None and not self._try_start(job, now_ns):
                if (now_ns - job.submit_ns) / 1e9 > MAX_QUEUE_WAIT_S:
                    self.abandoned += 1
                else:
                    waiting.append(job)
        self.queue = waiting

    def advance(self, now_ns: int, dt_s: float, throughput: np.ndarray) -> None:
        """Progress running jobs by *dt_s* at per-GPU *throughput* (0..1), finish the done ones,
        then admit arrivals up to *now_ns* and start what fits."""
        for job in list(self.jobs.values()):
            r = throughput[job.slots]
            rate = job.gpus * (float(r.min()) if job.job_class in SYNC_CLASSES else float(r.mean()))
            job.done_gpu_s += rate * dt_s
            if job.done_gpu_s >= job.work_gpu_s:
                self._finish(job, now_ns)
        if self.arrivals:
            while self._next_arrival_ns <= now_ns:
                t = self._next_arrival_ns
                self._next_arrival_ns += self._interarrival_ns()
                accept = self._arrival_rng.uniform() * 1.5 < self._rhythm(t)
                if accept:
                    self.queue.append(self.new_job(t))
                    self._changed = True
        if self.queue and (self._changed or self._expiry_due(now_ns)):
            self._drain_queue(now_ns)
            self._changed = False

    def _expiry_due(self, now_ns: int) -> bool:
        return (now_ns - self.queue[0].submit_ns) / 1e9 > MAX_QUEUE_WAIT_S

    def current_util(self, now_ns: int) -> np.ndarray:
        """Per-GPU SM utilisation (0..1) at *now_ns*: the job's mean with per-step jitter;
        inference follows the daily request rhythm."""
        util = self.util.copy()
        if self.memory_bound.any():
            local = datetime.fromtimestamp(now_ns / 1e9, tz=UTC).astimezone(self.tz)
            hour = local.hour + local.minute / 60.0
            demand = 0.7 + 0.3 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
            util = np.where(self.memory_bound, util * demand, util)
        jitter = self._noise_rng.normal(0.0, UTIL_NOISE, self.n)
        return np.where(self.busy, np.clip(util + jitter, 0.0, 1.0), 0.0)
