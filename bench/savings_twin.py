"""The twin runs of bench/savings.py: off and enforce, graded on the twin's hidden truth.

Only the twin's emitted signals reach the daemon (``points()``: NVML-like GPU fields, the
scheduler's workload fields, meters with class-0.5 noise, cooling; ``progress`` Points as the
intake stores them: ±3 % noise, 20 % of jobs silent). Everything graded here comes from
``twin.truth`` (true throughput, power and demand, each job's true curve), never from the store.

- **work**: a job's true progress per step, uncapped GPU-seconds: n × the slowest GPU's
  relative throughput for a synchronous job (training, fine-tuning), the sum for the others;
- **violation**: a busy GPU-step of a job whose true loss (1 − its rate) exceeds its class
  bound by more than 0.1 pt; steps in a job's first cycle (no decision has seen it; the job
  prolog has reset its GPUs to default) are counted apart;
- **true M&V saving**: for the capped jobs that report progress (the control group and silent
  jobs left out, as the measured figure does), their true GPU energy over the energy the same
  work costs at the default limit (each GPU's true uncapped power × the job's rate), each step
  weighted by the true facility-per-GPU-W ratio, after each job's first BASE_SAMPLES cycles.

The off run also records, for the oracle, every step's running jobs (their GPUs' true demand)
and the facility's marginal W per GPU W (a copy of the twin with every busy GPU's cap 3 % under
its draw, every 30 min; see bench/savings_oracle.py).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from dcim.store.base import Store, matches
from dcim.store.sqlite import SqliteStore
from optimizer.measured_savings import BASE_SAMPLES, in_control_group
from simulator.facility import FacilityTwin
from simulator.progress_model import progress_points
from simulator.workload import SYNC_CLASSES

CLASSES = ("training", "fine_tuning", "inference", "batch")
VIOLATION_SLACK = 1e-3
MARGINAL_EVERY_S = 1800.0
MARGINAL_CUT = 0.03


class LatestTee(Store):
    """Writes go to *inner*; ``latest`` is answered from a dict the writes keep current (the
    daemon reads only latest values; facility totals and the audit trail go to *inner*)."""

    def __init__(self, inner: Store, keep=("gpu", "workload", "facility", "cooling", "pdu", "env", "optimizer",
                                           "progress", "meter")):
        self.inner = inner
        self.keep = set(keep)
        self._latest: dict[tuple, object] = {}

    def write(self, points):
        for p in points:
            if p.measurement in self.keep:
                key = (p.measurement, tuple(sorted(p.tags.items())))
                old = self._latest.get(key)
                if old is not None and old.time_ns == p.time_ns:
                    old.fields.update(p.fields)
                else:
                    self._latest[key] = type(p)(p.measurement, dict(p.tags), dict(p.fields), p.time_ns)
        self.inner.write([p for p in points if p.measurement in ("facility", "optimizer")])

    def query(self, *a, **k):
        return self.inner.query(*a, **k)

    def latest(self, measurement, *, where=None, since_ns=None):
        return [p for (m, _), p in self._latest.items()
                if m == measurement and matches(p.tags, where) and (since_ns is None or p.time_ns >= since_ns)]


@dataclass
class RunResult:
    facility_j: float = 0.0
    it_j: float = 0.0
    cooling_j: float = 0.0
    work: float = 0.0
    busy_gpu_s: dict = field(default_factory=lambda: {c: 0.0 for c in CLASSES})
    full_work: dict = field(default_factory=lambda: {c: 0.0 for c in CLASSES})
    class_work: dict = field(default_factory=lambda: {c: 0.0 for c in CLASSES})
    violations: dict = field(default_factory=lambda: {c: 0 for c in CLASSES})
    new_job_violations: dict = field(default_factory=lambda: {c: 0 for c in CLASSES})
    busy_gpu_steps: int = 0
    mv_actual_j: float = 0.0
    mv_default_j: float = 0.0
    mv_jobs: dict = field(default_factory=dict)
    measured: object = None
    cycle_s: list = field(default_factory=list)
    recording: list = field(default_factory=list)  # off run: the oracle's per-step truth
    jobs: dict = field(default_factory=dict)  # off run: job id → (class, curve, slots)

    def loss_pct(self) -> dict:
        return {c: 100.0 * (1.0 - self.class_work[c] / self.full_work[c]) for c in CLASSES if self.full_work[c] > 0}

    def true_mv_saving_pct(self) -> float | None:
        return 100.0 * (1.0 - self.mv_actual_j / self.mv_default_j) if self.mv_default_j > 0 else None

    def design_on_truth_pct(self) -> float | None:
        """The M&V estimator (optimizer/measured_savings.py's formula) on true energy and work."""
        r = {}
        for control in (True, False):
            sel = [a for a in self.mv_jobs.values() if a["control"] == control and a["w_base"] > 0 and a["w_after"] > 0]
            if not sel:
                return None
            r[control] = sum(a["e_after"] for a in sel) / sum(a["w_after"] * a["e_base"] / a["w_base"] for a in sel)
        return 100.0 * (1.0 - r[False] / r[True])


def make_twin(cfg, *, seed, start_ns, curve_end):
    return FacilityTwin(cfg, seed=seed, start_ns=start_ns, reset_caps_on_job_start=True, curve_end=curve_end,
                        progress_share=0.8, progress_noise=0.03)


def job_rates(truth):
    """Per running job: (slots array, true rate 0..1, job truth)."""
    out = []
    thr = truth.gpu_throughput
    for jt in truth.jobs.values():
        slots = np.asarray(jt.slots)
        r = thr[slots]
        rate = float(r.min()) if jt.job_class in SYNC_CLASSES else float(r.mean())
        out.append((slots, rate, jt))
    return out


def account(twin, truth, res: RunResult, bounds, dt, cycle_s, job_seen_ns, mv=None) -> None:
    """Add this step (the state that holds over [now, now + dt)) to *res*, graded on *truth*."""
    res.facility_j += twin.facility_power_w * dt
    res.it_j += twin.it_power_w * dt
    res.cooling_j += twin.cooling_power_w * dt
    gpu_w = float(truth.gpu_power_w.sum())
    fac_per_gpu = twin.facility_power_w / gpu_w if gpu_w > 0 else 0.0
    for slots, rate, jt in job_rates(truth):
        n = len(slots)
        c = jt.job_class
        w = n * rate if c in SYNC_CLASSES else float(truth.gpu_throughput[slots].sum())
        res.work += w * dt
        res.class_work[c] += w * dt
        res.full_work[c] += n * dt
        res.busy_gpu_s[c] += n * dt
        res.busy_gpu_steps += n
        first = job_seen_ns.setdefault(jt.job_id, twin.now_ns)
        if 1.0 - rate > bounds.get(c, 0.0) + VIOLATION_SLACK:
            if twin.now_ns - first < cycle_s * 1e9:
                res.new_job_violations[c] += n
            else:
                res.violations[c] += n
        if mv is not None and jt.reports_progress:
            _mv_step(twin, truth, res, mv, jt, slots, w, rate, fac_per_gpu, dt, cycle_s, first)


def _mv_step(twin, truth, res, mv, jt, slots, work, rate, fac_per_gpu, dt, cycle_s, first) -> None:
    """The hidden truth behind the M&V figure, two ways: the counterfactual (the treated jobs'
    energy over what the same work costs at the default limit, same moments) and the M&V
    design itself computed on true energy and true work (baseline = a job's first samples at
    default, then treated vs control), which separates the design's bias from the noise."""
    energy = fac_per_gpu * float(truth.gpu_power_w[slots].sum()) * dt
    control = mv["control"](jt.job_id)
    if not control and twin.now_ns - first >= BASE_SAMPLES * cycle_s * 1e9:
        d = truth.gpu_demand_w[slots]
        p_default = jt.curve.power_w(np.full(len(slots), mv["default_w"]), d)
        res.mv_actual_j += energy
        res.mv_default_j += fac_per_gpu * float(p_default.sum()) * rate * dt
    acc = res.mv_jobs.setdefault(jt.job_id, {"control": control, "base_s": 0.0, "e_base": 0.0, "w_base": 0.0,
                                             "e_after": 0.0, "w_after": 0.0})
    if acc["base_s"] < BASE_SAMPLES * cycle_s:
        if np.all(twin.gpu_state.cap_w[slots] >= mv["default_w"] - 1e-6):
            acc["base_s"] += dt
            acc["e_base"] += energy
            acc["w_base"] += work * dt
        return
    acc["e_after"] += energy
    acc["w_after"] += work * dt


def marginals(twin) -> dict:
    """Facility, IT and cooling W per GPU W near the present state: a copy of the twin with
    every busy GPU's cap 3 % under its draw, the same utilisation (no new random draw)."""
    twin_copy = copy.deepcopy(twin)
    util = twin.gpu_state.util.copy()
    twin_copy.workload.current_util = lambda now_ns: util  # the same demand, only the caps differ
    busy = twin.workload.busy
    g = twin_copy.gpu_state
    g.cap_w = np.where(busy, np.maximum(twin.gpu_state.power_w * (1 - MARGINAL_CUT), twin.constraints.min_w), g.cap_w)
    twin_copy._compute_state(0.0)
    dp = float(twin.gpu_state.power_w[busy].sum() - twin_copy.gpu_state.power_w[busy].sum())
    if dp <= 1.0:
        return {"facility": 1.0, "it": 1.0, "cooling": 0.0}
    return {"facility": (twin.facility_power_w - twin_copy.facility_power_w) / dp,
            "it": (twin.it_power_w - twin_copy.it_power_w) / dp,
            "cooling": (twin.cooling_power_w - twin_copy.cooling_power_w) / dp}


def record_step(twin, truth, res: RunResult, k: dict, dt: float) -> None:
    """What the oracle needs of this step: the running jobs, their GPUs' true demand, the
    facility's true totals and marginals."""
    jobs = []
    for jt in truth.jobs.values():
        if jt.job_id not in res.jobs:  # a job keeps its GPUs and its curve while it runs
            res.jobs[jt.job_id] = (jt.job_class, jt.curve, np.asarray(jt.slots, dtype=np.int64))
        jobs.append(jt.job_id)
    busy_w = float(sum(truth.gpu_power_w[res.jobs[j][2]].sum() for j in jobs))
    res.recording.append(dict(dt=dt, jobs=jobs, demand=truth.gpu_demand_w.astype(np.float32), k=k,
                              facility_w=twin.facility_power_w, it_w=twin.it_power_w,
                              cooling_w=twin.cooling_power_w, busy_gpu_w=busy_w,
                              rack_w=twin.rack_power_w.copy()))


def run(cfg, *, seed, start_ns, days, step_s, cycle_s, curve_end, mode, model=None, log=print) -> RunResult:
    """One run: ``off`` (every GPU at its default, records the oracle's data) or ``enforce``
    (the real daemon on the twin's emitted signals)."""
    from optimizer.actuator import BackendActuator
    from optimizer.daemon import OptimizerDaemon

    twin = make_twin(cfg, seed=seed, start_ns=start_ns, curve_end=curve_end)
    bounds = dict(cfg.optimizer.throughput_loss_bound)
    res = RunResult()
    daemon = None
    mv = None
    if mode == "enforce":
        store = LatestTee(SqliteStore(":memory:"))
        act = BackendActuator({h: twin.gpu_backend(h) for h in twin.hosts()})
        daemon = OptimizerDaemon(cfg, store, act, model=model, clock=lambda: twin.now_ns, mode="enforce")
        opt = cfg.optimizer
        mv = {"control": lambda j: in_control_group(j, opt.control_share, opt.control_seed),
              "default_w": twin.constraints.default_w}
    steps = int(round(days * 86400 / step_s))
    per_cycle = max(1, int(round(cycle_s / step_s)))
    per_marginal = max(1, int(round(MARGINAL_EVERY_S / step_s)))
    job_seen: dict[str, int] = {}
    k = None
    for i in range(steps):
        if daemon is not None and i % per_cycle == 0:
            t = time.perf_counter()
            daemon.store.write(twin.points() + progress_points(twin))
            daemon.run_once()
            res.cycle_s.append(time.perf_counter() - t)
        twin.advance(step_s)
        truth = twin.truth
        account(twin, truth, res, bounds, step_s, cycle_s, job_seen, mv)
        if mode == "off":
            if k is None or i % per_marginal == 0:
                k = marginals(twin)
            record_step(twin, truth, res, k, step_s)
    if daemon is not None:
        res.measured = daemon.savings.estimate()
    return res
