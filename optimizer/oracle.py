"""The true oracle: the best facility saving per unit of work that any power-cap policy could
reach, with every job's true throughput curve and the whole future known.

It grades the optimizer; it never runs in production. Its inputs are plain data (arrays and
callables a caller builds from a twin's hidden truth); it imports nothing of the simulator.

**Problem.** A run is a sequence of steps t (length dt_t). At each step every *unit* u (a
synchronous job, all of whose GPUs move at the pace of the slowest, or one GPU of an
asynchronous job) takes one of K candidate cap settings k, drawing ``power_w[t,u,k]`` watts of
GPU power and doing ``work[t,u,k]`` work per second (uncapped GPU-equivalents). Facility power
is ``F_t + f_t·Σ_u power_w[t,u,k]`` (the step's fixed part and the marginal facility W per GPU
W). Minimise facility energy per unit of work,

    R(x) = E(x) / W(x),   E = Σ_t dt_t (F_t + f_t Σ_u P[t,u,x_tu]),   W = Σ_t dt_t Σ_u w[t,u,x_tu]

subject to, at every step: each unit's throughput loss within its class bound
(``w[t,u,k] ≥ (1 − bound_u)·w[t,u,0]``; column 0 is the uncapped setting), and every budget
group's power within its limit. The hardware cap range is in the candidates the caller builds.
None of the policy's own restrictions (floor, step size, cadence, margins) apply.

**Exact solution (Dinkelbach, 1967).** R* is the λ at which ``G(λ) = min_x E(x) − λ·W(x)``
is 0. Iterate ``λ_{n+1} = R(x_n)`` with x_n the minimiser at λ_n: λ falls monotonically to R*.
For a fixed λ the problem separates by step, and within a step by unit whenever the units'
separate argmins meet every budget (then that choice is optimal for the step: it is optimal
without the budgets). A step where a budget binds is a 0/1 program (one candidate per unit,
budget rows) solved by HiGHS through :func:`scipy.optimize.milp`, whose dual bound is kept.

**Proved gap.** For any policy x, ``E(x) − λ·W(x) ≥ G_low(λ)`` (the sum of per-step lower
bounds: exact where separable, HiGHS's dual bound elsewhere), so with W(x) ≥ W_min (every unit
at its least-work feasible candidate), ``R(x) ≥ λ + G_low(λ)/W_min`` when G_low ≤ 0. That lower
bound on every policy's energy per work is :attr:`OracleResult.ratio_lower`; the saving it
implies (:attr:`OracleResult.saving_bound_pct`) is an upper bound on every policy's saving
over the same candidates. The oracle's own solution reaches :attr:`OracleResult.saving_pct`.

Candidate grids: :func:`job_candidates` tabulates a job's true curve at caps that hold every
GPU at the same fraction x of its own demand (a synchronous job gains nothing from a GPU
faster than its slowest), on a grid of x plus the exact x where the loss bound binds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

BOUND_SLACK = 1e-9  # numerical slack on the loss bound and budgets
MILP_TIME_LIMIT_S = 30.0
X_GRID = np.round(np.linspace(0.25, 1.0, 76), 4)  # cap / demand, 1 % apart


@dataclass
class Budget:
    """One budget group at one step: its members' power under each candidate must fit."""

    limit_w: float  # what the members may draw in total (the group's budget less the load caps cannot move)
    units: np.ndarray  # member unit indices
    power_w: np.ndarray  # (len(units), K): the group's power from each member under each candidate
    name: str = ""


@dataclass
class Step:
    """One time step. Arrays are (U, K): U units, K candidates; column 0 is uncapped."""

    dt_s: float
    power_w: np.ndarray  # GPU power of each unit under each candidate
    work: np.ndarray  # work rate of each unit under each candidate (uncapped GPU-equivalents)
    loss_bound: np.ndarray  # (U,) allowed throughput loss, 0..1
    unit_class: np.ndarray  # (U,) class name of each unit (for the per-class loss report)
    facility_fixed_w: float = 0.0  # facility power the caps do not move
    facility_w_per_gpu_w: float = 1.0  # marginal facility W per GPU W
    it_fixed_w: float = 0.0
    it_w_per_gpu_w: float = 1.0
    cooling_fixed_w: float = 0.0
    cooling_w_per_gpu_w: float = 0.0
    budgets: Sequence[Budget] = ()
    valid: np.ndarray | None = None  # (U, K) bool: candidate exists (None = all)


@dataclass
class OracleResult:
    ratio: float  # facility J per unit of work, oracle's solution
    ratio_off: float  # the same, every unit uncapped (column 0)
    ratio_lower: float  # proved lower bound on any policy's facility J per unit of work
    saving_pct: float  # facility saving per unit of work, oracle vs uncapped
    saving_bound_pct: float  # proved upper bound on any policy's saving per unit of work
    it_saving_pct: float
    cooling_saving_pct: float
    facility_j: float
    it_j: float
    cooling_j: float
    work: float
    work_off: float
    loss_pct: dict[str, float]  # throughput lost per class, work-weighted, %
    iterations: int
    milp_steps: int
    history: list[float] = field(default_factory=list)  # λ per iteration


class OracleInfeasible(ValueError):
    """A budget that no choice of caps can meet (even every unit at its deepest allowed cap)."""


# -- candidate tables -------------------------------------------------------------------------------


def job_candidates(throughput: Callable[[np.ndarray, np.ndarray], np.ndarray], demand_w: np.ndarray, *,
                   min_w: float, max_w: float, loss_bound: float, sync: bool,
                   x_grid: np.ndarray = X_GRID,
                   power: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
    """Candidate tables of one job: ``(power_w, work, caps_w)``.

    *throughput(cap_w, demand_w)*: the job's true relative throughput (1 = uncapped) per GPU,
    vectorised. *demand_w*: each GPU's uncapped draw this step. Candidate k holds every GPU at
    ``clip(x_k·demand, min_w, max_w)``; column 0 is ``max_w`` (uncapped). The x where the loss
    bound binds is added (bisection on the GPU with the highest demand), so the grid never
    hides the bound-limited optimum. *power(cap_w, demand_w)*: GPU draw under a cap (default
    ``min(demand, cap)``).

    Synchronous (*sync*): one unit, ``power`` (1, K) = sum over GPUs, ``work`` (1, K) =
    n·min(throughput). Asynchronous: one unit per GPU, (n, K) each.
    """
    d = np.asarray(demand_w, float)
    xs = _with_bound_x(throughput, d, min_w, max_w, loss_bound, np.asarray(x_grid, float))
    caps = np.clip(np.outer(d, xs), min_w, max_w)
    caps = np.concatenate([np.full((d.size, 1), float(max_w)), caps], axis=1)
    dd = np.repeat(d[:, None], caps.shape[1], axis=1)
    p = power(caps, dd) if power is not None else np.minimum(dd, caps)
    r = np.asarray(throughput(caps.ravel(), dd.ravel()), float).reshape(caps.shape)
    if sync:
        return p.sum(axis=0, keepdims=True), d.size * r.min(axis=0, keepdims=True), caps
    return p, r, caps


def _with_bound_x(throughput, d, min_w, max_w, bound, xs):
    """*xs* plus the largest x in (0, 1] whose throughput is exactly at the bound (bisection on
    the slowest GPU); no addition when the bound is 0 or never reached."""
    if bound <= 0 or d.size == 0:
        return xs
    g = int(np.argmax(d))

    def r(x):
        cap = np.clip(np.array([x * d[g]]), min_w, max_w)
        return float(np.asarray(throughput(cap, d[g:g + 1]))[0])

    lo, hi = float(xs.min()), 1.0
    if r(lo) >= 1.0 - bound:
        return xs
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if r(mid) >= 1.0 - bound:
            hi = mid
        else:
            lo = mid
    return np.unique(np.append(xs, hi))


def stack_units(tables: Iterable[tuple[np.ndarray, np.ndarray]], width: int | None = None):
    """Stack per-job (power, work) tables of different widths into (U, K) arrays padded with
    invalid candidates; returns ``(power_w, work, valid)``."""
    tables = list(tables)
    if not tables:
        return np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1), bool)
    k = width or max(p.shape[1] for p, _ in tables)
    rows = sum(p.shape[0] for p, _ in tables)
    P, Wk = np.zeros((rows, k)), np.zeros((rows, k))
    valid = np.zeros((rows, k), bool)
    i = 0
    for p, w in tables:
        n, kk = p.shape
        P[i:i + n, :kk], Wk[i:i + n, :kk], valid[i:i + n, :kk] = p, w, True
        i += n
    return P, Wk, valid


# -- solver -----------------------------------------------------------------------------------------


def _allowed(step: Step) -> np.ndarray:
    """Candidates within the unit's loss bound (column 0, uncapped, always is) that exist."""
    ok = step.work >= (1.0 - np.asarray(step.loss_bound, float))[:, None] * step.work[:, :1] - BOUND_SLACK
    return ok & step.valid if step.valid is not None else ok


def _choose(step: Step, lam: float, ok: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Per-step minimiser of Σ_u (f·P − λ·w): (choice per unit, lower bound of the step's
    objective per second, whether a MILP was needed)."""
    obj = np.where(ok, step.facility_w_per_gpu_w * step.power_w - lam * step.work, np.inf)
    k = np.argmin(obj, axis=1) if obj.size else np.zeros(0, int)
    rows = np.arange(len(k))
    if all(float(b.power_w[np.arange(len(b.units)), k[b.units]].sum()) <= b.limit_w + BOUND_SLACK * max(1.0, b.limit_w)
           for b in step.budgets):
        return k, float(obj[rows, k].sum()), False
    k, low = _milp(step, obj, ok)
    return k, low, True


def _milp(step: Step, obj: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    U, K = obj.shape
    idx = np.flatnonzero(ok.ravel())  # variables: allowed (unit, candidate) pairs
    unit_of = idx // K
    c = obj.ravel()[idx]
    one = csr_array((np.ones(idx.size), (unit_of, np.arange(idx.size))), shape=(U, idx.size))
    rows, cols, vals, limits, names = [], [], [], [], []
    pos = {int(v): j for j, v in enumerate(idx)}
    for bi, b in enumerate(step.budgets):
        for m, u in enumerate(np.asarray(b.units)):
            for kk in range(K):
                j = pos.get(int(u) * K + kk)
                if j is not None and b.power_w[m, kk] != 0.0:
                    rows.append(bi)
                    cols.append(j)
                    vals.append(float(b.power_w[m, kk]))
        limits.append(b.limit_w)
        names.append(b.name or f"budget {bi}")
    cons = [LinearConstraint(one, 1.0, 1.0)]
    if step.budgets:
        A = csr_array((vals, (rows, cols)), shape=(len(step.budgets), idx.size))
        cons.append(LinearConstraint(A, -np.inf, np.array(limits)))
    res = milp(c, constraints=cons, integrality=np.ones(idx.size), bounds=Bounds(0, 1),
               options={"time_limit": MILP_TIME_LIMIT_S, "mip_rel_gap": 1e-9})
    if res.x is None:
        deep = [b.name or f"budget {i}" for i, b in enumerate(step.budgets)
                if float(np.where(ok[b.units], b.power_w, np.inf).min(axis=1).sum()) > b.limit_w]
        raise OracleInfeasible(f"no caps meet the budget(s) {', '.join(deep) or ', '.join(names)} "
                               f"(HiGHS: {res.message})")
    choice = np.zeros(U, int)
    picked = idx[res.x > 0.5]
    choice[picked // K] = picked % K
    low = float(getattr(res, "mip_dual_bound", None) or res.fun)
    return choice, min(low, float(res.fun))


def solve(steps: Sequence[Step] | Callable[[], Iterable[Step]], *, lam0: float = 0.0, tol: float = 1e-9,
          max_iter: int = 50) -> OracleResult:
    """The exact oracle over *steps* (a sequence, or a callable returning a fresh iterable, so a
    long run is streamed once per iteration). *lam0*: the first λ (any value; the uncapped run's
    facility J per unit of work saves a pass). See the module docstring."""
    again = steps if callable(steps) else (lambda: steps)
    lam, history, lower = float(lam0), [], -np.inf
    best: dict | None = None
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        cur = _totals(again(), lam)
        off = cur["off"]
        if off["work"] <= 0:
            raise ValueError("the run has no work (no busy unit in any step)")
        ratio = cur["facility_j"] / cur["work"]
        if best is None or ratio < best["facility_j"] / best["work"]:
            best = cur
        history.append(lam)
        # any policy x: E(x) − λ·W(x) ≥ G_low, hence R(x) ≥ λ + G_low / W(x)
        g = cur["g_low"]
        w_bound = cur["work_min"] if g < 0 else cur["work_max"]
        if w_bound > 0:
            lower = max(lower, lam + g / w_bound)
        if abs(g) <= tol * cur["facility_j"]:
            break
        lam = ratio
    r_off = off["facility_j"] / off["work"]
    assert best is not None  # the first iteration always sets it (best is None there)
    ratio = best["facility_j"] / best["work"]
    lower = min(lower, ratio)

    def per_work(key):
        return 100.0 * (1.0 - (best[key] / best["work"]) / (off[key] / off["work"])) if off[key] else float("nan")

    return OracleResult(
        ratio=ratio, ratio_off=r_off, ratio_lower=lower, saving_pct=100.0 * (1 - ratio / r_off),
        saving_bound_pct=100.0 * (1 - lower / r_off), it_saving_pct=per_work("it_j"),
        cooling_saving_pct=per_work("cooling_j"), facility_j=best["facility_j"], it_j=best["it_j"],
        cooling_j=best["cooling_j"], work=best["work"], work_off=off["work"],
        loss_pct={c: 100.0 * (1.0 - best["cls_work"][c] / best["cls_full"][c])
                  for c in best["cls_full"] if best["cls_full"][c] > 0},
        iterations=iterations, milp_steps=best["milp_steps"], history=history)


def _totals(steps: Iterable[Step], lam: float) -> dict:
    """Energy and work of the choice at *lam*, the Lagrangian lower bound of E − λ·W, and the
    same totals with every unit uncapped (``off``)."""
    keys = ("facility_j", "it_j", "cooling_j", "work")
    t = dict.fromkeys(keys + ("work_min", "work_max", "g_low"), 0.0)
    t["milp_steps"] = 0
    off = dict.fromkeys(keys, 0.0)
    cls_work: dict[str, float] = {}
    cls_full: dict[str, float] = {}
    for s in steps:
        U = s.power_w.shape[0]
        ok = _allowed(s) if U else np.zeros((0, 1), bool)
        k, low, used = _choose(s, lam, ok) if U else (np.zeros(0, int), 0.0, False)
        t["g_low"] += s.dt_s * (low + s.facility_fixed_w)
        t["milp_steps"] += int(used)
        rows = np.arange(U)
        for acc, kk in ((t, k), (off, np.zeros(U, int))):
            gpu_w = float(s.power_w[rows, kk].sum())
            acc["facility_j"] += s.dt_s * (s.facility_fixed_w + s.facility_w_per_gpu_w * gpu_w)
            acc["it_j"] += s.dt_s * (s.it_fixed_w + s.it_w_per_gpu_w * gpu_w)
            acc["cooling_j"] += s.dt_s * (s.cooling_fixed_w + s.cooling_w_per_gpu_w * gpu_w)
            acc["work"] += s.dt_s * float(s.work[rows, kk].sum())
        if U:
            t["work_min"] += s.dt_s * float(np.where(ok, s.work, np.inf).min(axis=1).sum())
            t["work_max"] += s.dt_s * float(np.where(ok, s.work, -np.inf).max(axis=1).sum())
        w = s.work[rows, k]
        cls = np.asarray(s.unit_class)
        for c in set(cls.tolist()):
            m = cls == c
            cls_work[c] = cls_work.get(c, 0.0) + s.dt_s * float(w[m].sum())
            cls_full[c] = cls_full.get(c, 0.0) + s.dt_s * float(s.work[m, 0].sum())
    return {**t, "cls_work": cls_work, "cls_full": cls_full, "off": off}
