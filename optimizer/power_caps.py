"""GPU power-cap policy: pure functions over arrays (no I/O, no clocks).

One call, :func:`decide_caps`, turns a fleet snapshot (:class:`CapInputs`, one entry per GPU)
into new caps (:class:`CapPlan`). The steps, in order, each one only ever lowers a cap the
previous step chose, so no later step can undo an earlier constraint:

1. **Efficiency.** For each busy GPU pick, on a grid of caps, the one that minimises facility
   energy per unit of work, ``PUE × (P_gpu(cap) + host_share_w) / r(cap)``, subject to the
   throughput-loss bound of its job class (``1 − r(cap) ≤ bound``). The host share moves the
   optimum up (reference §3.6: counting host power shrinks savings), and is why the cap is
   never pushed to the GPU-only optimum. PUE is a common factor per GPU, so it does not move
   the argmin; it prices the saving.
2. **Idle GPUs** are returned to their default limit. Decision: a cap does not lower idle
   power (an idle H100 draws ~75 W, far below any settable cap), and a capped idle GPU would
   slow the first minutes of whatever lands on it — for inference (loss bound 0) that is a
   bound violation. Idle GPUs are capped only when a budget below needs the headroom. They
   go back up in one move, not one step per cycle, where the rack's worst case (every GPU at
   its cap) fits the rack budget (:func:`_release_idle`); elsewhere the step bound holds.
3. **Budgets** (racks, PDUs, cooling zones, rooms, the site / demand response): where the
   predicted power of a group exceeds its budget, a shadow price λ (throughput per watt) is
   raised for that group by bisection, and every GPU in it picks ``argmin weight × loss +
   λ × P``. That is the least weighted throughput loss for the watts shed (a Lagrangian
   relaxation of the knapsack). Weights make classes with tight loss bounds (inference) the
   last to be cut. Budgets are safety constraints and win over loss bounds; such caps carry
   the reason ``budget:<group>``.
4. **Rails.** Clip to the policy floor (``cap_fraction_floor × max``), to the fleet starting
   point when the PUE model is out of range (``conservative``: no new cap deeper than
   ``start_fraction × max`` or the current cap), to ``current ± max_step_w`` (bounded step per
   cycle; the one exception is the idle release of step 2, upward only, never above the
   default), then to the hardware range ``[min_w, max_w]`` — always last, so nothing leaves it.
   Budgets are the one thing allowed below the policy floor (down to the hardware minimum):
   a breaker or a demand-response commitment outranks an efficiency preference.
   GPUs with stale telemetry keep their current limit untouched.

All powers are watts; fractions are of the GPU's maximum limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optimizer.throughput_curve import relative_throughput

# Reason codes (index into REASONS); strings go to the audit log.
HOLD_STALE, EFFICIENT, AT_DEFAULT, IDLE_RELEASE, BUDGET, STEP_LIMITED, CONSERVATIVE, FLOOR = range(8)
REASONS = ("hold: stale telemetry", "efficiency", "at default (no saving)", "idle: release toward default",
           "budget", "efficiency (step-limited)", "conservative: model out of range", "policy floor")

N_CANDIDATES = 81  # cap grid per GPU: 6.25 W apart on an H100 between its 200 W min and 700 W max (12.5 W
# left up to half a step, ~0.2 pt of throughput, unused inside each loss bound)
START_FRACTION = 0.7  # the fleet starting point (DESIGN: ~0.65–0.75 of max)


@dataclass
class CapInputs:
    """One entry per GPU; arrays of equal length n. Powers in W."""

    min_w: np.ndarray  # hardware min settable limit
    max_w: np.ndarray  # hardware max settable limit
    default_w: np.ndarray  # default limit (what a revert restores)
    current_w: np.ndarray  # limit in force now
    power_w: np.ndarray  # measured draw now
    busy: np.ndarray  # bool: a job runs on it
    fresh: np.ndarray  # bool: telemetry younger than stale_after_s
    saturation: np.ndarray  # fraction of max the job draws uncapped (curve parameter s)
    beta: np.ndarray  # curve elasticity
    loss_bound: np.ndarray  # allowed throughput loss of its job class (0..1)
    host_share_w: np.ndarray  # non-GPU node power attributed to this GPU while it works
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # group kind → int id per GPU (−1 = none)
    # The cap each GPU's job justified itself (its own measured curve, a probe, a static policy;
    # NaN: choose on the throughput curve as before). Efficiency then takes exactly this cap (never
    # a grid point below it); budgets and rails still apply on top.
    target_w: np.ndarray | None = None
    label: np.ndarray | None = None  # object: why that target (for the audit), "" where none


@dataclass
class Budgets:
    """Per group kind, budget in W per group id (index = id); ``base_w`` is the power of the
    group not attributable to GPUs (hosts, fans, switches), also per id."""

    budget_w: dict[str, np.ndarray] = field(default_factory=dict)
    base_w: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class CapPolicy:
    max_step_w: float = 50.0
    floor_fraction: float = 0.5
    start_fraction: float = START_FRACTION
    conservative: bool = False
    pue: float = 1.3  # predicted PUE, only to price savings
    budget_margin: float = 0.03  # keep this share of each budget free for transients
    # Model-uncertainty margin on the loss bound (absolute): demand jitters between cycles and
    # the curve is an estimate, so aim this far inside the bound (safety-first: reject actions
    # the model is not sure about, reference §1.3).
    loss_margin: float = 0.0


@dataclass
class CapPlan:
    cap_w: np.ndarray
    reason: np.ndarray  # int codes into REASONS
    predicted_power_w: np.ndarray  # GPU draw expected under cap_w
    predicted_loss: np.ndarray  # throughput loss expected under cap_w (0..1)
    budget_group: np.ndarray  # object array: "rack:A01" etc. where a budget bound the cap, else ""
    groups_over_budget: list[str]  # groups still over budget after the step bound (will converge)
    est_saving_w: float  # facility watts saved vs. the current caps (× pue)
    label: np.ndarray | None = None  # object: the target's reason per GPU (CapInputs.label)

    def reason_text(self, i: int) -> str:
        text = REASONS[int(self.reason[i])]
        if self.budget_group[i]:
            text += f" ({self.budget_group[i]})"
        if self.label is not None and self.label[i]:
            text += f": {self.label[i]}"
        return text


def _grid(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, N_CANDIDATES)
    return lo[:, None] + (hi - lo)[:, None] * t[None, :]


def predicted_draw_w(inp: CapInputs, cap_w: np.ndarray) -> np.ndarray:
    """GPU power expected under ``cap_w`` (same shape): a busy GPU draws what its job wants
    up to the cap; an idle GPU keeps drawing what it draws now (below any cap)."""
    demand = inp.saturation * inp.max_w
    busy_draw = np.minimum(cap_w, demand[:, None] if cap_w.ndim == 2 else demand)
    idle = inp.power_w[:, None] if cap_w.ndim == 2 else inp.power_w
    busy = inp.busy[:, None] if cap_w.ndim == 2 else inp.busy
    return np.where(busy, busy_draw, np.minimum(idle, cap_w))


def decide_caps(inp: CapInputs, budgets: Budgets | None = None, policy: CapPolicy | None = None, *,
                throughput_fn=None) -> CapPlan:
    """Choose one cap per GPU. Pure; see the module docstring for the steps.

    *throughput_fn(cap_w) -> relative throughput* (same shape, n × K or n) replaces the
    learned power-law curves — the benchmark's oracle passes the twin's true curves."""
    policy = policy or CapPolicy()
    budgets = budgets or Budgets()
    grid = _candidate_grid(inp, policy, throughput_fn)
    k, reason, want = _efficient_choice(inp, policy, grid)  # steps 1 and 2
    k, reason, budget_group = _apply_budgets(inp, budgets, policy, grid, k, reason)  # step 3
    target = grid.caps[np.arange(inp.max_w.size), k]
    if want is not None:
        # the exact target replaces its candidate unless a budget cut deeper
        exact = np.isfinite(want) & inp.busy & (budget_group == "")
        target = np.where(exact, np.minimum(want, target), target)
    final, reason, budget_group = _apply_rails(inp, budgets, policy, grid, target, reason, budget_group)  # step 4
    return _plan(inp, budgets, policy, grid, final, reason, budget_group, throughput_fn)


class _Grid:
    """The candidate caps of every GPU (n × K, ascending) and what each would give. Throughput
    and draw over the whole grid are computed on first use: a cycle whose busy GPUs all carry a
    justified target and whose budgets all fit needs neither (only the chosen caps' draw)."""

    def __init__(self, inp: CapInputs, throughput_fn, max_w: np.ndarray, hw_lo: np.ndarray, lo: np.ndarray,
                 caps: np.ndarray):
        self.max_w = max_w  # hardware max, float
        self.hw_lo = hw_lo  # hardware min, float
        self.lo = lo  # the lowest cap efficiency may choose (policy floor, conservative mode)
        self.caps = caps  # n × K
        self._inp, self._fn = inp, throughput_fn
        self._r: np.ndarray | None = None
        self._loss: np.ndarray | None = None
        self._draw: np.ndarray | None = None

    @property
    def r(self) -> np.ndarray:
        """Relative throughput at each candidate."""
        if self._r is None:
            inp = self._inp
            if self._fn is None:
                frac = self.caps / self.max_w[:, None]
                self._r = relative_throughput(frac, inp.saturation[:, None], inp.beta[:, None])
            else:
                self._r = np.asarray(self._fn(self.caps), dtype=float)
        return self._r

    @property
    def loss(self) -> np.ndarray:
        """1 − r."""
        if self._loss is None:
            self._loss = 1.0 - self.r
        return self._loss

    @property
    def draw(self) -> np.ndarray:
        """Predicted GPU draw at each candidate, W."""
        if self._draw is None:
            self._draw = predicted_draw_w(self._inp, self.caps)
        return self._draw

    def at_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(draw, loss) of the candidates of *rows* only (``draw[rows]``, ``loss[rows]``): the
        GPUs of over-budget groups, without the whole grid where the throughput function can
        price a subset (``throughput_fn.takes_rows``) or there is none."""
        if self._r is not None or (self._fn is not None and not getattr(self._fn, "takes_rows", False)):
            return self.draw[rows], self.loss[rows]
        inp, caps = self._inp, self.caps[rows]
        busy, demand = inp.busy[rows][:, None], (inp.saturation * inp.max_w)[rows][:, None]
        draw = np.where(busy, np.minimum(caps, demand), np.minimum(inp.power_w[rows][:, None], caps))
        if self._fn is None:
            r = relative_throughput(caps / self.max_w[rows][:, None], inp.saturation[rows][:, None],
                                    inp.beta[rows][:, None])
        else:
            r = np.asarray(self._fn(caps, rows=rows), dtype=float)
        return draw, 1.0 - r

    def draw_at(self, k: np.ndarray) -> np.ndarray:
        """The predicted draw at candidate *k* of each GPU (``draw[rows, k]``, without the grid)."""
        if self._draw is not None:
            return self._draw[np.arange(k.size), k]
        return predicted_draw_w(self._inp, self.caps[np.arange(k.size), k])


def _candidate_grid(inp: CapInputs, policy: CapPolicy, throughput_fn) -> _Grid:
    max_w = inp.max_w.astype(float)
    hw_lo = inp.min_w.astype(float)
    floor_w = np.maximum(hw_lo, policy.floor_fraction * max_w)
    lo = floor_w.copy()
    if policy.conservative:
        lo = np.maximum(lo, np.minimum(inp.current_w, policy.start_fraction * max_w))
    lo = np.minimum(lo, max_w)
    # The grid spans the whole hardware range: efficiency may only use caps ≥ lo (policy floor,
    # conservative mode), budgets — safety — may go down to the hardware minimum.
    caps = _grid(np.minimum(hw_lo, lo), max_w)  # n × K, ascending
    return _Grid(inp, throughput_fn, max_w, hw_lo, lo, caps)


def _efficient_choice(inp: CapInputs, policy: CapPolicy, grid: _Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Steps 1 and 2: each GPU's candidate index k and its reason code, and the exact justified
    target per GPU (NaN where none; None without targets)."""
    n = inp.max_w.size
    caps, lo, max_w = grid.caps, grid.lo, grid.max_w
    has_target = np.isfinite(inp.target_w) if inp.target_w is not None else np.zeros(n, dtype=bool)
    # 1. efficiency, for busy GPUs without a justified target: energy per work, only where the
    # loss bound holds; ties → the higher cap.
    k_eff = np.full(n, N_CANDIDATES - 1)
    rows = np.flatnonzero(inp.busy & ~has_target)
    if rows.size:
        eff_bound = np.maximum(inp.loss_bound[rows] - policy.loss_margin, 0.0)
        ok = (grid.loss[rows] <= eff_bound[:, None] + 1e-9) & (caps[rows] >= lo[rows][:, None] - 1e-9)
        ok[:, -1] = True  # the max cap is always admissible
        energy_per_work = (grid.draw[rows] + inp.host_share_w[rows][:, None]) / np.maximum(grid.r[rows], 1e-6)
        energy_per_work = np.where(ok, energy_per_work, np.inf)
        rev = energy_per_work[:, ::-1]
        k_eff[rows] = (N_CANDIDATES - 1) - np.argmin(rev + 1e-9 * np.arange(N_CANDIDATES)[None, :], axis=1)
    want = None
    if inp.target_w is not None:
        # a justified target: the lowest candidate at or above it (budgets lower from there)
        clipped = np.clip(np.maximum(inp.target_w, lo), None, max_w)
        k_eff = np.where(has_target, _k_at_or_above(caps, np.where(has_target, clipped, max_w)), k_eff)
        want = np.where(has_target, clipped, np.nan)
    # 2. idle GPUs → toward default (the highest candidate at or below default).
    k_default = _k_at_or_below(caps, inp.default_w)
    k = np.where(inp.busy, k_eff, k_default)
    reason = np.where(inp.busy, EFFICIENT, IDLE_RELEASE)
    # a busy GPU whose efficient cap is ≥ default gains nothing from capping
    at_default = inp.busy & (caps[np.arange(n), k] >= inp.default_w - 1e-6)
    return k, np.where(at_default, AT_DEFAULT, reason), want


def _apply_budgets(inp: CapInputs, budgets: Budgets, policy: CapPolicy, grid: _Grid, k: np.ndarray,
                   reason: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3: raise λ per over-budget group until it fits; only ever lowers k. Returns k, the
    reasons and the group that bound each GPU ("" where none)."""
    n = inp.max_w.size
    weight = 1.0 / np.maximum(inp.loss_bound, 0.01)
    lam = np.zeros(n)
    budget_group = np.full(n, "", dtype=object)
    for kind, ids in inp.groups.items():
        if kind not in budgets.budget_w:
            continue
        k, lam, hit = _fit_budgets(k, lam, kind, ids, budgets, inp, grid, weight, policy, fresh=inp.fresh)
        if hit is not None:
            rows = np.flatnonzero(hit & (budget_group == ""))
            budget_group[rows] = hit_names(kind, ids[rows], budgets)
    return k, np.where(budget_group != "", BUDGET, reason), budget_group


def _apply_rails(inp: CapInputs, budgets: Budgets, policy: CapPolicy, grid: _Grid, target: np.ndarray,
                 reason: np.ndarray, budget_group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 4: step bound from the current limit, then the hardware range (always last); stale
    GPUs keep their current limit."""
    cur = inp.current_w.astype(float)
    stepped = np.clip(target, cur - policy.max_step_w, cur + policy.max_step_w)
    stepped = _release_idle(inp, budgets, target, stepped, cur)
    reason = np.where((np.abs(stepped - target) > 1e-6) & (reason == EFFICIENT), STEP_LIMITED, reason)
    if policy.conservative:
        reason = np.where((reason == EFFICIENT) & (np.abs(stepped - grid.lo) < 1e-6), CONSERVATIVE, reason)
    final = np.clip(stepped, grid.hw_lo, grid.max_w)
    final = np.where(inp.fresh, final, cur)
    reason = np.where(inp.fresh, reason, HOLD_STALE)
    return final, reason, np.where(inp.fresh, budget_group, "")


def _plan(inp: CapInputs, budgets: Budgets, policy: CapPolicy, grid: _Grid, final: np.ndarray, reason: np.ndarray,
          budget_group: np.ndarray, throughput_fn) -> CapPlan:
    """The plan of *final* caps, with the draw, loss and saving they are predicted to give."""
    pdraw = predicted_draw_w(inp, final)
    if throughput_fn is None:
        r_final = relative_throughput(final / grid.max_w, inp.saturation, inp.beta)
    else:
        r_final = np.asarray(throughput_fn(final[:, None]), dtype=float)[:, 0]
    ploss = np.where(inp.busy, 1.0 - r_final, 0.0)
    saving_w = float((predicted_draw_w(inp, inp.current_w.astype(float)) - pdraw).sum()) * policy.pue
    over = _over_budget(inp, budgets, pdraw, policy)
    return CapPlan(final, reason.astype(int), pdraw, ploss, budget_group, over, saving_w, inp.label)


def _release_idle(inp: CapInputs, budgets: Budgets, target: np.ndarray, stepped: np.ndarray,
                  cur: np.ndarray) -> np.ndarray:
    """Idle GPUs go straight back up to their default instead of one step per cycle, where the
    rack can take it.

    Why: the step bound rate-limits *power* swings; raising an idle GPU's cap swings none (it
    draws ~76 W under any cap), while a cap left over from the last job slows the next one —
    for inference (bound 0) that is a bound violation. The price is the idle-to-active spike:
    a job landing on a released GPU may draw up to its cap before the next cycle. So a rack's
    idle GPUs are released only if the rack's worst case — its non-GPU power plus every GPU at
    its cap — fits its budget; otherwise they keep the bounded step."""
    up = ~inp.busy & inp.fresh & (target > stepped + 1e-9)
    if not up.any():
        return stepped
    out = np.where(up, target, stepped)
    ids = inp.groups.get("rack")
    if ids is None or "rack" not in budgets.budget_w:
        return out
    allowed = budgets.budget_w["rack"]
    base = budgets.base_w.get("rack", np.zeros(allowed.size))
    worst = base + _group_power(ids, out, allowed.size)
    bad_rack = worst > allowed
    blocked = up & (ids >= 0) & bad_rack[np.clip(ids, 0, None)]
    return np.where(blocked, stepped, out)


def _k_at_or_above(caps: np.ndarray, value_w: np.ndarray) -> np.ndarray:
    """Per row, index of the lowest candidate ≥ value (the last if none)."""
    return np.minimum((caps < value_w[:, None] - 1e-6).sum(axis=1), N_CANDIDATES - 1)


def _k_at_or_below(caps: np.ndarray, value_w: np.ndarray) -> np.ndarray:
    """Per row, index of the highest candidate ≤ value (0 if none)."""
    return np.maximum((caps <= value_w[:, None] + 1e-6).sum(axis=1) - 1, 0)


def hit_names(kind: str, ids: np.ndarray, budgets: Budgets) -> np.ndarray:
    names = budgets.names.get(kind) or []
    out = np.array([f"{kind}:{names[i]}" if 0 <= i < len(names) else f"{kind}:{i}" for i in ids.tolist()],
                   dtype=object)
    return out


def _group_power(ids: np.ndarray, draw_w: np.ndarray, n_groups: int) -> np.ndarray:
    valid = ids >= 0
    return np.bincount(ids[valid], weights=draw_w[valid], minlength=n_groups)[:n_groups]


def _fit_budgets(k, lam, kind, ids, budgets, inp, grid: _Grid, weight, policy, fresh):
    """Bisection on one shadow price per over-budget group of *kind*; vectorised over groups
    and restricted to the GPUs of violating groups, so an unconstrained fleet costs O(n)."""
    n = k.size
    allowed = budgets.budget_w[kind] * (1.0 - policy.budget_margin)
    n_groups = allowed.size
    base = budgets.base_w.get(kind, np.zeros(n_groups))
    cur_draw = grid.draw_at(k)
    # Stale GPUs cannot be changed: their power counts at the current cap's draw.
    power = base + _group_power(ids, cur_draw, n_groups)
    over = np.flatnonzero(power > allowed)
    if over.size == 0:
        return k, lam, None
    # only fresh, busy GPUs can shed power: an idle GPU draws far below any cap
    sel = np.flatnonzero(np.isin(ids, over) & fresh & inp.busy)
    if sel.size == 0:
        return k, lam, None
    gid = ids[sel]
    k_max = k[sel]
    kk = np.arange(N_CANDIDATES)[None, :]
    admissible = kk <= k_max[:, None]  # only lower than what earlier steps chose
    (d, l_), w, lam0 = grid.at_rows(sel), weight[sel], lam[sel]
    fixed = power - _group_power(gid, cur_draw[sel], n_groups)  # group power outside the selection

    # Constant parts of the cost hoisted out of the bisection loop (per kW of draw).
    base_cost = np.where(admissible, w[:, None] * l_ - 1e-9 * kk, np.inf)  # ties → higher cap
    d_kw = d / 1000.0
    is_over = np.zeros(n_groups, dtype=bool)
    is_over[over] = True
    sel_rows = np.arange(sel.size)

    def choose(lam_g: np.ndarray) -> np.ndarray:
        lam_i = lam0 + lam_g[gid]
        return np.argmin(base_cost + lam_i[:, None] * d_kw, axis=1)

    # λ is in weighted-loss per kW. Bisection in log space over [1e-4, 1e4] (weights ≤ 100,
    # losses ≤ 1): 22 halvings pin λ to within 0.01 % — far below one candidate step.
    lo_l = np.full(n_groups, -4.0)
    hi_l = np.full(n_groups, 4.0)
    for _ in range(22):
        mid = (lo_l + hi_l) / 2.0
        kc = choose(np.where(is_over, 10.0 ** mid, 0.0))
        p = fixed + _group_power(gid, d[sel_rows, kc], n_groups)
        fits = p <= allowed
        hi_l = np.where(fits, mid, hi_l)
        lo_l = np.where(fits, lo_l, mid)
    hi_l = 10.0 ** hi_l
    lam_g = np.where(is_over, hi_l, 0.0)
    kc = choose(lam_g)
    k = k.copy()
    lowered = kc < k_max
    k[sel] = kc
    lam = lam.copy()
    lam[sel] = lam0 + lam_g[gid]
    hit = np.zeros(n, dtype=bool)
    hit[sel[lowered]] = True
    return k, lam, hit


def _over_budget(inp: CapInputs, budgets: Budgets, pdraw_w: np.ndarray, policy: CapPolicy) -> list[str]:
    out = []
    for kind, ids in inp.groups.items():
        if kind not in budgets.budget_w:
            continue
        allowed = budgets.budget_w[kind]
        base = budgets.base_w.get(kind, np.zeros(allowed.size))
        power = base + _group_power(ids, pdraw_w, allowed.size)
        names = budgets.names.get(kind) or [str(i) for i in range(allowed.size)]
        out += [f"{kind}:{names[i]}" for i in np.flatnonzero(power > allowed + 1e-6)]
    return out


def pdu_feed_capacity_w(breaker_a: float, voltage_v: float, phases: int, derate: float) -> float:
    """Continuous capacity of one PDU feed: breaker rating × phase voltage × phases × derate (W).

    ``voltage_v`` is line-to-neutral (as the PDUs report it); the 0.8 derate is the NEC/IEC
    continuous-load rule the wall screen also draws."""
    return breaker_a * voltage_v * phases * derate


def rack_power_capacity_w(feeds: list[tuple[float, float, int]], derate: float, redundant: bool = False) -> float:
    """Capacity of a rack's power chain from its feeds ``[(breaker_a, voltage_v, phases), …]``.

    ``redundant=True`` (2N, what :func:`optimizer.fleet.budgets` uses unless the config says
    ``feed_redundancy = "shared"``): the whole rack must survive on its weakest single feed — a
    rack held at the sum of both trips the surviving feed's breaker on failover.
    ``redundant=False``: A and B feeds share the load, capacity is their sum."""
    caps = [pdu_feed_capacity_w(a, v, p, derate) for a, v, p in feeds]
    if not caps:
        return float("inf")
    return min(caps) if redundant else sum(caps)
