"""Per job, the cap it can justify this cycle, and why: the bridge between the fleet's arrays
and the per-job policies.

Every busy GPU with fresh telemetry belongs to a job; per job, in this order:

1. **control group** (M&V, ``measured_savings.in_control_group``): held at its default limit;
2. **reports progress** (a ``progress`` report within :data:`PROGRESS_FRESH_S`, or it did and
   learning is on): its own curve (``job_curves``: baseline, probes, the learned choice);
3. **no progress**: the static per-class policy (``static_policy``), or no cap for an unknown
   class.

Jobs of both groups feed the M&V ledger from the same rate samples. The result is a target cap
and a label per GPU (the audit's reason) and, per learned job, its measured table for budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.job_curves import JobCurves, JobView
from optimizer.measured_savings import SavingsLedger, in_control_group
from optimizer.static_policy import static_cap

PROGRESS_FRESH_S = 600.0  # a job whose newest progress report is older is treated as not reporting


@dataclass
class JobTargets:
    target_w: np.ndarray  # per GPU; NaN where the GPU runs no job
    label: np.ndarray  # object, per GPU
    tables: dict[str, tuple[np.ndarray, np.ndarray]]  # learned jobs: (cap_w, relative throughput)
    jobs: dict[str, str]  # job → "control", "learned", "probing", "static", "none"


def latest_progress(store, site: str, now_ns: int) -> dict[str, tuple[int, float]]:
    """The newest ``work_done`` of every job that reported within :data:`PROGRESS_FRESH_S`:
    ``{job: (time_ns, work_done)}`` (raw counter values; resets are the sampler's business)."""
    out: dict[str, tuple[int, float]] = {}
    since = now_ns - int(PROGRESS_FRESH_S * 1e9)
    for p in store.latest("progress", where={"site": site}, since_ns=since):
        work = p.fields.get("work_done")
        job = p.tags.get("job", "")
        if work is None or not job:
            continue
        if job not in out or p.time_ns > out[job][0]:  # a job may have series under two tenants
            out[job] = (p.time_ns, float(work))
    return out


def _grouped(fleet, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """GPU indices of busy fresh GPUs sorted by job, where each job's run starts, the job ids."""
    idx = np.flatnonzero(fleet.busy & fresh & (fleet.job != ""))
    if idx.size == 0:
        return idx, np.zeros(0, dtype=int), []
    names = fleet.job[idx].astype(str)
    order = np.argsort(names, kind="stable")
    uniq, starts = np.unique(names[order], return_index=True)
    return idx[order], starts, uniq.tolist()


def decide_jobs(fleet, inp, settings, progress: dict[str, tuple[int, float]], curves: JobCurves | None,
                ledger: SavingsLedger, now_ns: int, *, facility_per_gpu_w: float = 1.0) -> JobTargets:
    """Targets and labels for every job's GPUs (see the module docstring). *curves* None: no
    learning (every job is treated as reporting no progress). *facility_per_gpu_w*: metered
    facility W per GPU W now (M&V shares the facility's energy by draw)."""
    n = fleet.n
    target = np.full(n, np.nan)
    label = np.full(n, "", dtype=object)
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    kinds: dict[str, str] = {}
    bounds = settings.throughput_loss_bound
    unknown_bound = min(bounds.values()) if bounds else 0.0
    rows_all, starts, names = _grouped(fleet, inp.fresh)
    agg = _per_job(fleet, inp, rows_all, starts)
    classes = [str(c or "") for c in fleet.job_class[rows_all[starts]].tolist()] if names else []
    job_target: list[float] = []
    job_label: list[str] = []
    for k, job in enumerate(names):
        cls = classes[k]
        bound = bounds.get(cls) if cls else None
        view = _view(agg, k, job, cls, unknown_bound if bound is None else bound, settings)
        control = in_control_group(job, settings.control_share, settings.control_seed)
        report = progress.get(job)
        sample = curves.sample(now_ns, view, report) if curves is not None else None
        if sample is not None:
            ledger.add(job, control, energy_j=sample.power_w * view.n_gpus * sample.dt_s * facility_per_gpu_w,
                       work=sample.work, at_default=abs(sample.level_w - view.default_w) < 1.0)
        if control:
            job_target.append(view.default_w)
            job_label.append("control group (M&V): held at default")
            kinds[job] = "control"
        elif curves is not None and (report is not None or job in curves.curves):
            d = curves.decide(view, sample)
            job_target.append(d.target_w)
            job_label.append(d.label)
            kinds[job] = "learned" if d.learned else "probing" if d.label.startswith("probing") else "none"
            if d.learned:
                tables[job] = curves.curves[job].throughput_table()
        else:
            policy = static_cap(cls, bound, settings.static_cap_fraction)
            job_target.append(max(policy.fraction * view.max_w, agg["min"][k]))
            job_label.append(policy.label)
            kinds[job] = "static" if policy.fraction < 1.0 else "none"
    if names:  # each job's decision onto its GPUs (rows are grouped by job, in order)
        counts = agg["n"]
        target[rows_all] = np.repeat(job_target, counts)
        label[rows_all] = np.repeat(np.array(job_label, dtype=object), counts)
    if curves is not None:
        curves.forget_except(set(kinds))
    return JobTargets(target, label, tables, kinds)


def _per_job(fleet, inp, rows: np.ndarray, starts: np.ndarray) -> dict[str, list]:
    """Per job (runs of *rows* beginning at *starts*): the aggregates its view needs, vectorised
    (a Python loop over 10,000 GPUs' arrays per job costs ~0.1 s a cycle)."""
    if rows.size == 0:
        return {}
    count = np.diff(np.append(starts, rows.size))
    lim = fleet.limit_w[rows]
    out = {
        "n": count,
        "lim_lo": np.minimum.reduceat(lim, starts), "lim_hi": np.maximum.reduceat(lim, starts),
        "lim_mean": np.add.reduceat(lim, starts) / count,
        "power": np.add.reduceat(fleet.power_w[rows], starts) / count,
        "power_max": np.maximum.reduceat(fleet.power_w[rows], starts),
        "power_sq": np.add.reduceat(fleet.power_w[rows] ** 2, starts) / count,
        "host": np.add.reduceat(inp.host_share_w[rows], starts) / count,
        "default": np.minimum.reduceat(fleet.default_w[rows], starts),
        "max": np.minimum.reduceat(fleet.max_w[rows], starts),
        "min": np.maximum.reduceat(inp.min_w[rows], starts),
    }
    out["power_sd"] = np.sqrt(np.maximum(out.pop("power_sq") - out["power"] ** 2, 0.0))
    return {key: v.tolist() for key, v in out.items()}  # Python floats: per-job reads stay cheap


def _view(agg: dict, k: int, job: str, cls: str, bound: float, settings) -> JobView:
    max_w = agg["max"][k]
    # the policy floor and the hardware minimum only: how deep the published curves allow a job
    # that reports progress is the learner's to judge, on the job's own draw (job_curves)
    floor_w = max(settings.cap_fraction_floor * max_w, agg["min"][k])
    level = agg["lim_mean"][k] if agg["lim_hi"][k] - agg["lim_lo"][k] < 1.0 else None
    return JobView(job, cls, bound, agg["n"][k], level, agg["power"][k], agg["host"][k], agg["default"][k], max_w,
                   math.ceil(floor_w), agg["power_max"][k], agg["power_sd"][k])
