"""The true oracle's input, built from an off run's recorded truth (bench/savings_twin.py).

Every step of the run: each running job's true curve (``twin.truth``'s ``JobCurve``), its
GPUs' true uncapped demand that step, its class bound; candidates hold all GPUs of a job at
the same fraction x of their own demand (a 2 % grid over 0.30–1.0, the hardware range
[min, max], plus the x where the job's loss bound binds, found by bisection, so the grid never
hides the bound-limited optimum; a 0.5 % grid over 0.20–1.0 moved the oracle's saving by
0.014 pt optimistic, 0 pessimistic, on 2 h of the demo). Synchronous jobs (training, fine-tuning) are one unit each
(work = n × the slowest GPU's throughput); the GPUs of other jobs are units of their own.

Facility power is linear in the busy GPUs' draw around the off run's state at each step:
``F_off − k·(P_off − P)``, with k the twin's own marginal facility W per GPU W (a 3 % cut,
measured on a copy every 30 min). Cooling and the power chain are convex in the load, so a
slope taken at the top overstates the saving of deeper cuts: the oracle's figure leans high,
which is the safe side for an upper bound. Rack budgets (2N feeds) enter where the off run's
rack draw exceeds them (never, in the demo: capping only lowers a rack's draw).

Nothing here changes the oracle's problem; :mod:`optimizer.oracle` solves it exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from optimizer.oracle import Budget, Step, solve
from simulator.workload import SYNC_CLASSES

X_GRID = np.round(np.arange(0.30, 1.0 + 1e-9, 0.02), 4)
BISECT_ITERS = 22  # x to 2e-7: far below the 2 % grid


def rack_limits_w(cfg, inventory) -> np.ndarray:
    """Each rack's budget as the optimizer holds it: min(rack power budget, weakest derated feed
    under 2N, or the feeds' sum where the config says they share the load)."""
    from optimizer.fleet import feed_redundancy
    from optimizer.power_caps import rack_power_capacity_w

    red = feed_redundancy(cfg)
    out = []
    for r in inventory.racks:
        info = inventory.rack_by_name[r.rack]
        feeds = [(p.breaker_a, p.voltage_v, p.phases) for p in inventory.pdus_by_rack.get(r.rack, [])]
        out.append(min(info.power_budget_kw * 1000.0,
                       rack_power_capacity_w(feeds, cfg.optimizer.breaker_derate,
                                             redundant=red.get(r.rack, "2N") == "2N")))
    return np.array(out)


def _bound_x(curve, d, bound, min_w, max_w):
    """Per GPU, the least x in (0, 1] with throughput ≥ 1 − bound (1 where the bound is 0)."""
    lo, hi = np.full(d.size, 0.05), np.ones(d.size)
    need = 1.0 - bound
    for _ in range(BISECT_ITERS):
        mid = 0.5 * (lo + hi)
        ok = curve.throughput(np.clip(mid * d, min_w, max_w), d) >= need
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return np.where(bound > 0, hi, 1.0)


def step_from(rec: dict, jobs: dict, bounds: dict, *, min_w, max_w, rack_of_gpu, rack_limit_w) -> Step:
    ids = rec["jobs"]
    if not ids:
        return Step(dt_s=rec["dt"], power_w=np.zeros((0, 1)), work=np.zeros((0, 1)), loss_bound=np.zeros(0),
                    unit_class=np.array([], dtype=object), facility_fixed_w=rec["facility_w"],
                    it_fixed_w=rec["it_w"], cooling_fixed_w=rec["cooling_w"])
    slots = [jobs[j][2] for j in ids]
    n = np.array([len(s) for s in slots])
    g = np.concatenate(slots)
    job_of = np.repeat(np.arange(len(ids)), n)
    cls = np.array([jobs[j][0] for j in ids], dtype=object)
    curves = [jobs[j][1] for j in ids]
    sync = np.array([c in SYNC_CLASSES for c in cls])
    u = np.array([c.u for c in curves])[job_of][:, None]
    burst = np.array([c.burst for c in curves])[job_of][:, None]
    dlim = np.array([c.default_limit_w for c in curves])[job_of][:, None]
    curve = replace(curves[0], u=u, burst=burst, default_limit_w=dlim)  # every GPU's own curve, vectorised
    d = rec["demand"][g].astype(float)
    bound = np.array([bounds.get(c, 0.0) for c in cls])[job_of]
    flat = replace(curves[0], u=u[:, 0], burst=burst[:, 0], default_limit_w=dlim[:, 0])
    xb = _bound_x(flat, d, bound, min_w, max_w)
    # a synchronous job's GPUs share one x: the largest any of them needs to meet the bound
    xb_job = np.maximum.reduceat(xb, np.concatenate([[0], np.cumsum(n)[:-1]]))
    xb = np.where(sync[job_of], xb_job[job_of], xb)
    caps = np.concatenate([np.full((g.size, 1), max_w), np.clip(np.outer(d, X_GRID), min_w, max_w),
                           np.clip((xb * d)[:, None], min_w, max_w)], axis=1)
    dd = d[:, None]
    P = curve.power_w(caps, dd)
    T = curve.throughput(caps, dd)
    # units: a synchronous job is one, every GPU of another job is one
    unit_start = np.flatnonzero(np.r_[True, (job_of[1:] != job_of[:-1]) | ~sync[job_of[1:]]])
    Pu = np.add.reduceat(P, unit_start, axis=0)
    size = np.diff(np.r_[unit_start, g.size])
    Tu = np.minimum.reduceat(T, unit_start, axis=0) * size[:, None]
    unit_job = job_of[unit_start]
    k = rec["k"]
    p0 = float(Pu[:, 0].sum())
    budgets = _budgets(rec, P, g, unit_start, rack_of_gpu, rack_limit_w)
    return Step(dt_s=rec["dt"], power_w=Pu, work=Tu, loss_bound=bound[unit_start], unit_class=cls[unit_job],
                facility_fixed_w=rec["facility_w"] - k["facility"] * p0, facility_w_per_gpu_w=k["facility"],
                it_fixed_w=rec["it_w"] - k["it"] * p0, it_w_per_gpu_w=k["it"],
                cooling_fixed_w=rec["cooling_w"] - k["cooling"] * p0, cooling_w_per_gpu_w=k["cooling"],
                budgets=budgets)


def _budgets(rec, P, g, unit_start, rack_of_gpu, rack_limit_w) -> list[Budget]:
    """Rack budgets the off run's draw exceeds (only those can bind: caps only lower a draw)."""
    over = np.flatnonzero(rec["rack_w"] > rack_limit_w)
    out = []
    unit_of_gpu = np.searchsorted(unit_start, np.arange(g.size), side="right") - 1
    for r in over:
        m = rack_of_gpu[g] == r
        units = np.unique(unit_of_gpu[m])
        pw = np.zeros((units.size, P.shape[1]))
        np.add.at(pw, np.searchsorted(units, unit_of_gpu[m]), P[m])
        fixed = rec["rack_w"][r] - P[m, 0].sum()  # hosts, idle GPUs: what no cap moves
        out.append(Budget(limit_w=float(rack_limit_w[r] - fixed), units=units, power_w=pw, name=f"rack #{r}"))
    return out


def oracle(res_off, cfg, inventory, *, rack_of_gpu, min_w, max_w):
    """The exact oracle over an off run's recording (bench/savings_twin.py)."""
    bounds = dict(cfg.optimizer.throughput_loss_bound)
    limits = rack_limits_w(cfg, inventory)

    def steps():
        for rec in res_off.recording:
            yield step_from(rec, res_off.jobs, bounds, min_w=min_w, max_w=max_w, rack_of_gpu=rack_of_gpu,
                            rack_limit_w=limits)

    # λ starts at the off run's own facility J per unit of work: one pass fewer
    return solve(steps, lam0=res_off.facility_j / res_off.work if res_off.work > 0 else 0.0)
