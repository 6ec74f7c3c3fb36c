"""Workload placement: where new work costs the facility the least energy. Pure functions.

The cost of one GPU of new work on server *s* is its **marginal facility power** (W)::

    cost_gpu[s] = (gpu_w + host_dyn_w[s]) × (1 + cool_w_per_w[s]) + thermal_penalty_w[s]

- ``cool_w_per_w``: cooling watts per watt of heat in the server's cooling zone (measured
  cooling power ÷ heat removed, e.g. an in-row zone with economiser vs a CRAH zone), plus the
  plant ratio of every chiller that cools the server's room (``fleet.zone_cooling_ratio``);
- ``thermal_penalty_w``: a soft penalty as the rack inlet nears its limit (27 °C ASHRAE
  recommended): 20 W per kelvin of headroom below 3 K; a rack at or above its limit is not
  eligible (new heat would make it worse; reference §4: lowest inlet / most headroom first);
- **consolidation**: a server with no running work pays a *wake* cost, its idle host power ×
  (1 + cool), once — so busy servers fill first and idle servers stay idle (they can be
  suspended by the scheduler; reference §4 rule 2);
- **PDU headroom**: a server whose rack cannot take the added watts (rack budget ∧ derated PDU
  capacity) is not eligible.

Jobs of up to one server's GPUs go on one server (exact: every server is scored; best fit
breaks ties so fragments stay small). Larger jobs take whole free servers, **decomposed by
row** (NVLink/IB locality, and it keeps the search to rows × servers-per-row): the cheapest
*k* servers of every row are found with one sort, the best row wins. When no single row can
host the job the greedy fallback takes the cheapest whole servers anywhere, then partial ones.

Gap bound of the greedy fallback: the objective is separable per server with one fixed wake
cost per server, so taking servers in increasing order of (cost per GPU with the wake cost
amortised over the GPUs it contributes) is optimal for whole servers; the only loss is the
last, partly used server, whose wake cost is paid for fewer GPUs. Hence
``greedy ≤ OPT + max_s wake_w[s]`` per job (one server's idle host power × (1 + cool)).
:func:`greedy_gap_bound_w` returns it; the tests check it against brute force.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INLET_LIMIT_C = 27.0
THERMAL_SOFT_K = 3.0
THERMAL_PENALTY_W_PER_K = 20.0
DEFAULT_GPU_W = 0.7 * 700.0  # a new GPU of work under the fleet starting cap, W


@dataclass
class PlacementState:
    """One entry per server (arrays of length S) plus per-rack headroom."""

    host: np.ndarray  # object
    rack_id: np.ndarray  # int, index into rack_names / rack_headroom_w
    row_id: np.ndarray  # int, global row index (room × row)
    room: np.ndarray  # object
    tenant: np.ndarray  # object, rack tenant or None
    gpus_total: np.ndarray  # int
    free: list[list[int]]  # free GPU indices per server
    busy_gpus: np.ndarray  # int, GPUs running work
    host_idle_w: np.ndarray
    host_dyn_per_gpu_w: np.ndarray  # host power added per working GPU
    cool_w_per_w: np.ndarray  # zone cooling W per W of heat
    inlet_c: np.ndarray  # rack inlet temperature at the server, NaN if unknown
    zone: np.ndarray  # object, cooling unit name (for reasons)
    rack_names: list[str]
    rack_headroom_w: np.ndarray  # per rack: budget − present power
    row_names: list[str] = field(default_factory=list)

    @property
    def free_count(self) -> np.ndarray:
        return np.fromiter((len(f) for f in self.free), dtype=int, count=len(self.free))


@dataclass
class Job:
    gpus: int
    job_class: str = "training"
    tenant: str | None = None
    gpu_w: float | None = None  # expected draw per GPU, W (default: the fleet starting cap)
    id: str = ""


@dataclass
class Placement:
    slots: list[tuple[str, int]]  # (host, GPU index)
    cost_w: float  # marginal facility power of the placement, W
    reasons: list[str]
    strategy: str  # "single-server", "row:<name>", "greedy"

    def to_json(self) -> dict:
        return {"slots": [{"host": h, "gpu": i} for h, i in self.slots], "cost_w": round(self.cost_w, 1),
                "strategy": self.strategy, "reasons": self.reasons}


def gpu_cost_w(state: PlacementState, gpu_w: float) -> tuple[np.ndarray, np.ndarray]:
    """(cost per GPU of new work, wake cost) per server, W. Ineligible servers cost +inf."""
    cool = 1.0 + state.cool_w_per_w
    headroom_k = INLET_LIMIT_C - np.nan_to_num(state.inlet_c, nan=INLET_LIMIT_C - 10.0)
    penalty = THERMAL_PENALTY_W_PER_K * np.clip(THERMAL_SOFT_K - headroom_k, 0.0, None)
    per_gpu = (gpu_w + state.host_dyn_per_gpu_w) * cool + penalty
    per_gpu = np.where(headroom_k <= 0.0, np.inf, per_gpu)
    wake = np.where(state.busy_gpus == 0, state.host_idle_w * cool, 0.0)
    return per_gpu, wake


def _eligible(state: PlacementState, job: Job, need: np.ndarray, per_gpu: np.ndarray, wake: np.ndarray,
              gpu_w: float) -> np.ndarray:
    """Servers that may take *need[s]* GPUs of *job*: tenant, free GPUs, rack headroom."""
    free = state.free_count
    ok = (free >= np.maximum(need, 1)) & np.isfinite(per_gpu)
    if job.tenant is not None:
        ok &= np.array([t is None or t == job.tenant for t in state.tenant.tolist()], dtype=bool)
    added_w = need * (gpu_w + state.host_dyn_per_gpu_w) + np.where(state.busy_gpus == 0, state.host_idle_w, 0.0)
    ok &= added_w <= state.rack_headroom_w[state.rack_id]
    return ok


def place(job: Job, state: PlacementState, *, commit: bool = True) -> Placement | None:
    """Choose GPUs for *job*; None if it does not fit anywhere. With *commit* the state is
    updated (GPUs leave the free lists, rack headroom shrinks), so calls can be chained."""
    gpu_w = job.gpu_w if job.gpu_w is not None else DEFAULT_GPU_W
    per_gpu, wake = gpu_cost_w(state, gpu_w)
    size = int(state.gpus_total.max()) if state.gpus_total.size else 0
    if job.gpus <= 0:
        return None
    if job.gpus <= size:
        need = np.full(state.host.size, job.gpus)
        ok = _eligible(state, job, need, per_gpu, wake, gpu_w)
        if not ok.any():
            return _greedy(job, state, per_gpu, wake, gpu_w, commit)
        free = state.free_count
        total = job.gpus * per_gpu + wake + 1e-3 * (free - job.gpus)  # best fit breaks ties
        s = int(np.argmin(np.where(ok, total, np.inf)))
        return _commit(state, job, [(s, job.gpus)], float(job.gpus * per_gpu[s] + wake[s]), "single-server",
                       per_gpu, wake, gpu_w, commit)
    # large job: whole free servers, one row
    whole = state.free_count == state.gpus_total
    need = state.gpus_total.copy()
    ok = _eligible(state, job, need, per_gpu, wake, gpu_w) & whole
    server_cost = np.where(ok, state.gpus_total * per_gpu + wake, np.inf)
    best = None
    for row in np.unique(state.row_id[ok]).tolist():
        idx = np.flatnonzero((state.row_id == row) & ok)
        order = idx[np.argsort(server_cost[idx], kind="stable")]
        picked, got = [], 0
        for s in order.tolist():
            take = min(int(state.gpus_total[s]), job.gpus - got)
            picked.append((s, take))
            got += take
            if got >= job.gpus:
                break
        if got < job.gpus:
            continue
        cost = sum(n * per_gpu[s] + wake[s] for s, n in picked)
        if best is None or cost < best[0]:
            best = (cost, row, picked)
    if best is not None:
        cost, row, picked = best
        name = state.row_names[row] if row < len(state.row_names) else str(row)
        return _commit(state, job, picked, float(cost), f"row:{name}", per_gpu, wake, gpu_w, commit)
    return _greedy(job, state, per_gpu, wake, gpu_w, commit)


def _greedy(job, state, per_gpu, wake, gpu_w, commit) -> Placement | None:
    """Cheapest GPUs anywhere: servers by cost per GPU with the wake cost amortised over what
    they contribute; gap ≤ one wake cost (module docstring)."""
    free = state.free_count
    need = np.minimum(free, job.gpus)
    ok = _eligible(state, job, np.maximum(need, 1), per_gpu, wake, gpu_w) & (free > 0)
    if int(free[ok].sum()) < job.gpus:
        return None
    amortised = np.where(ok, per_gpu + wake / np.maximum(need, 1), np.inf)
    picked, got, cost = [], 0, 0.0
    for s in np.argsort(amortised, kind="stable").tolist():
        if not ok[s]:
            break
        take = min(int(free[s]), job.gpus - got)
        picked.append((s, take))
        cost += take * per_gpu[s] + wake[s]
        got += take
        if got >= job.gpus:
            break
    return _commit(state, job, picked, float(cost), "greedy", per_gpu, wake, gpu_w, commit)


def _commit(state, job, picked, cost, strategy, per_gpu, wake, gpu_w, commit) -> Placement:
    slots, reasons = [], []
    for s, n in picked:
        host = state.host[s]
        chosen = state.free[s][:n]
        slots += [(host, i) for i in chosen]
        inlet = state.inlet_c[s]
        rack = state.rack_names[state.rack_id[s]]
        reasons.append(
            f"{host}: {n} GPU(s), {per_gpu[s]:.0f} W facility per GPU "
            f"(zone {state.zone[s]} cooling {state.cool_w_per_w[s]:.2f} W/W"
            + (f", inlet {inlet:.1f} °C, {INLET_LIMIT_C - inlet:.1f} K headroom" if np.isfinite(inlet) else "")
            + f", rack {rack} headroom {state.rack_headroom_w[state.rack_id[s]] / 1000:.1f} kW"
            + (", server already busy: no wake cost)" if wake[s] == 0 else f", wakes an idle server: +{wake[s]:.0f} W)"))
        if commit:
            added = n * (gpu_w + state.host_dyn_per_gpu_w[s]) + (state.host_idle_w[s] if state.busy_gpus[s] == 0 else 0.0)
            state.free[s] = state.free[s][n:]
            state.busy_gpus[s] += n
            state.rack_headroom_w[state.rack_id[s]] -= added
    return Placement(slots, cost, reasons, strategy)


def rank_servers(state: PlacementState, gpu_w: float | None = None) -> list[tuple[str, float]]:
    """Servers from best to worst for one more GPU of work: (host, marginal facility W),
    ineligible ones (no free GPU, hot inlet, no rack headroom) last with +inf."""
    gpu_w = DEFAULT_GPU_W if gpu_w is None else gpu_w
    per_gpu, wake = gpu_cost_w(state, gpu_w)
    free = state.free_count
    ok = (free > 0) & np.isfinite(per_gpu)
    ok &= (gpu_w + state.host_dyn_per_gpu_w) <= state.rack_headroom_w[state.rack_id]
    score = np.where(ok, per_gpu + wake / np.maximum(free, 1), np.inf)
    order = np.argsort(score, kind="stable")
    return [(state.host[s], float(score[s])) for s in order.tolist()]


def greedy_gap_bound_w(state: PlacementState) -> float:
    """Documented bound on greedy's excess over the optimum for one job, W."""
    _, wake = gpu_cost_w(state, DEFAULT_GPU_W)
    return float(np.max(state.host_idle_w * (1.0 + state.cool_w_per_w))) if wake.size else 0.0


def slot_adapter(state_provider):
    """A placement hook of the shape ``hook(free_slots, job) -> slots | None`` (what the twin's
    workload and a scheduler plugin call). *state_provider()* returns a fresh
    :class:`PlacementState`; the hook restricts it to *free_slots* (objects with ``host`` and
    ``index``) and maps the answer back to those objects. *job* needs ``gpus``; ``job_class``
    and ``tenant`` are used when present. Duck-typed: no import of the caller's types."""

    def hook(free_slots, job):
        from dataclasses import replace

        base = state_provider()
        by_key = {(s.host, s.index): s for s in free_slots}
        free_by_host: dict[str, list[int]] = {}
        for h, i in by_key:
            free_by_host.setdefault(h, []).append(i)
        free = [sorted(free_by_host.get(h, [])) for h in base.host.tolist()]
        # what the caller says is free is the truth (the optimizer's telemetry may be a cycle old)
        busy = np.maximum(base.gpus_total - np.array([len(f) for f in free], dtype=int), 0)
        state = replace(base, free=free, busy_gpus=busy, rack_headroom_w=base.rack_headroom_w.copy())
        want = Job(gpus=int(job.gpus), job_class=getattr(job, "job_class", "training"))
        result = place(want, state, commit=False)
        if result is None:
            return None
        return [by_key[k] for k in result.slots]

    return hook
