"""Optimizer benchmark: energy saved on the demo facility twin, against an oracle, plus the
PUE model's accuracy and the speed of cap decisions and placement.

    .venv/bin/python bench/savings.py [--days 7] [--quick]

What it runs (same twin seed for every run of a season, so the same jobs arrive):

- **PUE model**: a year of hourly twin history (facility + cooling) into a SqliteStore, model
  trained by ``optimizer.pue_model.train``; MAPE on the held-out (last) month.
- **Seasons**: one week in summer (July) and one in winter (January), 60 s twin steps;
  - ``off``: the optimizer does nothing (every GPU at its default 700 W);
  - ``enforce``: the real daemon (``OptimizerDaemon`` + ``BackendActuator`` on the simulated
    GPUs, PUE model, learned curves), a cycle every 300 s reading the store;
  - ``oracle``: the same policy and constraints (loss bounds, policy floor, step bound, budgets,
    cycle cadence) but with each job's **true** power→throughput curve and its true uncapped
    demand (from the job's profile, with 2σ of utilisation jitter — the part of the future a
    per-cycle decision needs), no telemetry lag and no model-uncertainty margin.
- **Speed**: ``decide_caps`` for 10,000 GPUs; 1,000 jobs placed on 10,000 GPUs.

Store for the week runs: the latest-value reads the daemon makes every cycle are served from a
dictionary kept by the writes (:class:`LatestTee`); facility totals and the optimizer's audit
trail also go to a SqliteStore. That keeps a simulated week inside the time budget on two
cores. The tests exercise the daemon on SqliteStore alone.

Throughput loss is per GPU-step: ``1 − relative throughput`` of busy GPUs (the quantity the
bounds limit); a violation is a busy GPU-step whose loss exceeds its class bound by > 0.1 %.
Steps in a job's first cycle are counted apart (before any decision has seen the job).

Job prolog: every run (off, enforce, oracle alike) uses the twin's job-start hook
(``FacilityTwin(reset_caps_on_job_start=True)``), as a site's scheduler prolog does (Slurm
``Prolog``, the node agent on a new job): a job's GPUs go back to their default limit when it
starts, so no job inherits the cap set for the previous one. Without it a job that lands
between two cycles on a GPU capped for its predecessor runs under that cap until a decision
sees it. The daemon drops its lease on such a GPU when it notices the job change.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcim.config import load_config  # noqa: E402
from dcim.store.base import Store, matches  # noqa: E402
from dcim.store.sqlite import SqliteStore  # noqa: E402
from optimizer import fleet as fleet_mod  # noqa: E402
from optimizer.actuator import BackendActuator  # noqa: E402
from optimizer.daemon import OptimizerDaemon  # noqa: E402
from optimizer.features import build_frame  # noqa: E402
from optimizer.power_caps import Budgets, CapInputs, CapPolicy, decide_caps  # noqa: E402
from optimizer.pue_model import train  # noqa: E402
from simulator import physics  # noqa: E402
from simulator.facility import FacilityTwin  # noqa: E402
from simulator.workload import UTIL_NOISE  # noqa: E402

DAY_NS = 86400 * 10**9
SUMMER_NS = 1_783_296_000 * 10**9  # 2026-07-06T00:00Z
WINTER_NS = 1_768_176_000 * 10**9  # 2026-01-12T00:00Z
STEP_S = 60.0
CYCLE_S = 300.0
SEED = 42
CLASSES = physics.JOB_CLASSES


class LatestTee(Store):
    """Writes go to *inner*; ``latest`` is answered from a dict the writes keep current."""

    def __init__(self, inner: Store, keep=("gpu", "workload", "facility", "cooling", "pdu", "env", "optimizer")):
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
        # the daemon only reads latest values; the store keeps the audit trail and site totals
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
    work_gpu_s: float = 0.0
    busy_gpu_s: dict = field(default_factory=lambda: {c: 0.0 for c in CLASSES})
    loss_gpu_s: dict = field(default_factory=lambda: {c: 0.0 for c in CLASSES})
    violations: dict = field(default_factory=lambda: {c: 0 for c in CLASSES})
    new_job_violations: dict = field(default_factory=lambda: {c: 0 for c in CLASSES})
    cycle_s: list = field(default_factory=list)


def account(twin: FacilityTwin, res: RunResult, bounds: dict[str, float], dt: float) -> None:
    res.facility_j += twin.facility_power_w * dt
    res.it_j += twin.it_power_w * dt
    res.cooling_j += twin.cooling_power_w * dt
    wl, g = twin.workload, twin.gpu_state
    busy = wl.busy
    res.work_gpu_s += float(g.throughput[busy].sum()) * dt
    for code, name in enumerate(CLASSES):
        m = busy & (wl.class_code == code)
        if not m.any():
            continue
        loss = 1.0 - g.throughput[m]
        res.busy_gpu_s[name] += float(m.sum()) * dt
        res.loss_gpu_s[name] += float(loss.sum()) * dt
        over = loss > bounds.get(name, 0.0) + 1e-3
        # a job that started less than one cycle ago has not been seen by any decision yet: it
        # inherits the cap its GPU had (see the report); counted apart from decision violations
        idx = np.flatnonzero(m)
        fresh_job = np.array([wl.gpu_job[i].start_ns > twin.now_ns - CYCLE_S * 1e9 for i in idx], dtype=bool)
        res.violations[name] += int((over & ~fresh_job).sum())
        res.new_job_violations[name] += int((over & fresh_job).sum())


def oracle_cycle(twin: FacilityTwin, cfg, inventory, groups_names) -> None:
    """The oracle's decision for this cycle, applied straight to the simulated GPUs."""
    opt = cfg.optimizer
    wl, g = twin.workload, twin.gpu_state
    n = len(twin.slots)
    busy = wl.busy.copy()
    cls = np.where(wl.class_code >= 0, wl.class_code, 0)
    # the oracle knows the future: each job's true uncapped demand over the coming cycle,
    # including the utilisation jitter the twin will draw (a copy of its random stream)
    demand = future_demand_w(twin, int(CYCLE_S / STEP_S))
    cons = twin.constraints
    max_w = np.full(n, cons.max_w)
    bounds = opt.throughput_loss_bound
    names = [CLASSES[c] for c in cls]
    util_by_server = np.bincount(twin.gpu_server, weights=g.util, minlength=len(inventory.servers)) / 8.0
    host_share = np.array([(s.host_idle_w + (s.host_max_w - s.host_idle_w) * util_by_server[k]) / max(s.gpus, 1)
                           for k, s in enumerate(inventory.servers)])[twin.gpu_server]
    groups, gnames = groups_names
    inp = CapInputs(min_w=np.full(n, cons.min_w), max_w=max_w, default_w=np.full(n, cons.default_w),
                    current_w=g.cap_w.copy(), power_w=g.power_w.copy(), busy=busy, fresh=np.ones(n, bool),
                    saturation=np.clip(demand / max_w, 0.05, 1.0), beta=np.ones(n),
                    loss_bound=np.array([bounds.get(c, 0.0) for c in names]), host_share_w=host_share, groups=groups)

    def truth(caps_w):
        x = caps_w / np.maximum(demand, 1.0)[:, None]
        out = np.ones_like(x)
        for code, name in enumerate(CLASSES):
            m = cls == code
            if m.any():
                out[m] = physics.relative_throughput(name, x[m])
        return out

    fleet = _truth_fleet(twin)
    bud = fleet_mod.budgets(fleet, inventory, cfg, groups, gnames)
    plan = decide_caps(inp, bud, CapPolicy(max_step_w=opt.max_step_w, floor_fraction=opt.cap_fraction_floor),
                       throughput_fn=truth)
    g.cap_w[:] = np.round(plan.cap_w * 1000.0) / 1000.0


def future_demand_w(twin, steps: int) -> np.ndarray:
    """Largest uncapped demand (W) of every GPU over the next *steps* twin steps, exactly as
    the twin will compute it (same mean utilisation, request rhythm and jitter draws)."""
    import copy
    import math
    from datetime import datetime, timezone

    wl = twin.workload
    rng = copy.deepcopy(wl._noise_rng)
    out = np.zeros(len(twin.slots))
    for k in range(1, steps + 1):
        t = twin.now_ns + int(k * STEP_S * 1e9)
        util = wl.util.copy()
        if wl.memory_bound.any():
            local = datetime.fromtimestamp(t / 1e9, tz=timezone.utc).astimezone(wl.tz)
            hour = local.hour + local.minute / 60.0
            util = np.where(wl.memory_bound, util * (0.7 + 0.3 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)), util)
        jitter = rng.normal(0.0, UTIL_NOISE, wl.n)
        util = np.where(wl.busy, np.clip(util + jitter, 0.0, 1.0), 0.0)
        out = np.maximum(out, physics.gpu_demand_w(util, wl.memory_bound, wl.busy))
    return out


def _truth_fleet(twin):
    wl, g = twin.workload, twin.gpu_state
    n = len(twin.slots)
    obj = lambda v: np.array(v, dtype=object)  # noqa: E731
    return fleet_mod.FleetState(twin.now_ns, obj([s.host for s in twin.slots]), obj(twin.uuids),
                                np.array([s.index for s in twin.slots]), obj([s.rack for s in twin.slots]),
                                obj([s.room for s in twin.slots]), obj([s.model for s in twin.slots]),
                                np.full(n, 200.0), np.full(n, 700.0), np.full(n, 700.0), g.cap_w.copy(),
                                g.power_w.copy(), g.util.copy(), np.zeros(n), wl.busy.copy(), obj([""] * n),
                                obj([""] * n), obj([""] * n), np.full(n, np.nan))


def run_week(cfg, start_ns: int, days: float, mode: str, model, log) -> RunResult:
    twin = FacilityTwin(cfg, seed=SEED, start_ns=start_ns, reset_caps_on_job_start=True)  # the job prolog
    inventory = twin.inventory
    bounds = dict(cfg.optimizer.throughput_loss_bound)
    res = RunResult()
    daemon = None
    if mode == "enforce":
        store = LatestTee(SqliteStore(":memory:"))
        act = BackendActuator({h: twin.gpu_backend(h) for h in twin.hosts()})
        daemon = OptimizerDaemon(cfg, store, act, model=model, clock=lambda: twin.now_ns, mode="enforce")
    groups_names = None
    if mode == "oracle":
        groups_names = fleet_mod.group_ids(_truth_fleet(twin), inventory, cfg)
    steps = int(days * 86400 / STEP_S)
    per_cycle = int(CYCLE_S / STEP_S)
    for k in range(steps):
        if k % per_cycle == 0:
            t = time.perf_counter()
            if daemon is not None:
                daemon.store.write(twin.points())
                daemon.run_once()
            elif mode == "oracle":
                oracle_cycle(twin, cfg, inventory, groups_names)
            res.cycle_s.append(time.perf_counter() - t)
        twin.advance(STEP_S)
        account(twin, res, bounds, STEP_S)
    if daemon is not None:
        rep = daemon.last_report
        log(f"    last cycle: PUE {rep.predicted_pue}, conservative {rep.conservative} {rep.out_of_range}, "
            f"curves {sorted((k[1], round(c.saturation, 2), round(c.beta, 3), c.source) for k, c in daemon.curves.items())}")
    return res


def pue_history(cfg, end_ns: int, days: float, step_s: float, log) -> tuple:
    store = SqliteStore(":memory:", raw_retention_days=days + 30, rollup_1m_retention_days=days + 30)
    start = end_ns - int(days * DAY_NS)
    twin = FacilityTwin(cfg, seed=7, start_ns=start)
    buf = []
    t = time.perf_counter()
    while twin.now_ns < end_ns:
        twin.advance(step_s)
        buf += [p for p in twin.points(include_gpus=False) if p.measurement in ("facility", "cooling")]
        if len(buf) > 20000:
            store.write(buf)
            buf = []
    store.write(buf)
    log(f"  history: {days:.0f} days at {step_s:.0f} s in {time.perf_counter() - t:.0f} s")
    frame = build_frame(store, start, end_ns, every_s=step_s, tz=cfg.site.timezone, site=cfg.site.name)
    return frame


def pct(a: float, b: float) -> float:
    return 100.0 * (1.0 - a / b) if b else float("nan")


def speed_caps() -> float:
    from optimizer.throughput_curve import PRIORS

    n = 10_000
    rng = np.random.default_rng(0)
    classes = rng.choice(list(PRIORS), n)
    busy = rng.random(n) < 0.7
    sat = np.array([PRIORS[c].saturation for c in classes])
    inp = CapInputs(min_w=np.full(n, 200.0), max_w=np.full(n, 700.0), default_w=np.full(n, 700.0),
                    current_w=np.full(n, 700.0), power_w=np.where(busy, sat * 700, 76.0), busy=busy,
                    fresh=np.ones(n, bool), saturation=sat, beta=np.array([PRIORS[c].beta for c in classes]),
                    loss_bound=np.array([{"training": .05, "fine_tuning": .05, "inference": 0, "batch": .1}[c] for c in classes]),
                    host_share_w=np.full(n, 150.0),
                    groups={"rack": np.arange(n) // 32, "zone": np.arange(n) // 256, "site": np.zeros(n, int)})
    r = n // 32 + 1
    bud = Budgets(budget_w={"rack": np.full(r, 20000.0), "zone": np.full(n // 256 + 1, 150000.0),
                            "site": np.array([n * 330.0])},
                  base_w={"rack": np.full(r, 3600.0), "zone": np.zeros(n // 256 + 1), "site": np.zeros(1)})
    decide_caps(inp, bud, CapPolicy(max_step_w=500))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        decide_caps(inp, bud, CapPolicy(max_step_w=500))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed_placement() -> tuple[float, int]:
    from optimizer.placement import Job, PlacementState, place

    servers = 1250
    rng = np.random.default_rng(1)
    st = PlacementState(
        host=np.array([f"n{i:04d}" for i in range(servers)], dtype=object), rack_id=np.arange(servers) // 4,
        row_id=np.arange(servers) // 50, room=np.array(["r"] * servers, dtype=object),
        tenant=np.array([None] * servers, dtype=object), gpus_total=np.full(servers, 8),
        free=[list(range(8)) for _ in range(servers)], busy_gpus=np.zeros(servers, int),
        host_idle_w=np.full(servers, 900.0), host_dyn_per_gpu_w=np.full(servers, 146.0),
        cool_w_per_w=rng.uniform(0.1, 0.5, servers), inlet_c=rng.uniform(18, 26, servers),
        zone=np.array(["z"] * servers, dtype=object), rack_names=[f"R{i}" for i in range(servers // 4 + 1)],
        rack_headroom_w=np.full(servers // 4 + 1, 32000.0))
    sizes = rng.choice([1, 2, 4, 8, 16, 32], 1000, p=[0.35, 0.2, 0.2, 0.15, 0.07, 0.03])
    t = time.perf_counter()
    placed = sum(place(Job(gpus=int(g)), st) is not None for g in sizes)
    return time.perf_counter() - t, placed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=float, default=7.0, help="length of each season's run (default 7)")
    ap.add_argument("--history-days", type=float, default=365.0, help="PUE history (default 365)")
    ap.add_argument("--quick", action="store_true", help="1 day per season, 120 days of history")
    args = ap.parse_args(argv)
    if args.quick:
        args.days, args.history_days = 1.0, 120.0
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    cfg = load_config(REPO / "deploy" / "demo.toml")
    # The bench's cadence: a cycle every 5 minutes (DeepMind's loop), leases 3 cycles long.
    cfg = cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={
        "interval_s": CYCLE_S, "lease_s": 3 * CYCLE_S, "stale_after_s": 2 * CYCLE_S})})
    bounds = cfg.optimizer.throughput_loss_bound

    log("speed")
    caps_s = speed_caps()
    place_s, placed = speed_placement()
    log(f"  cap decisions, 10,000 GPUs: {caps_s * 1000:.0f} ms (target ≤ 200 ms)")
    log(f"  placement, 1,000 jobs on 10,000 GPUs: {place_s:.2f} s, {placed} placed (target ≤ 2 s)")

    log("PUE model")
    frame = pue_history(cfg, SUMMER_NS, args.history_days, 3600.0, log)
    model = train(frame)
    for line in model.describe():
        log("  " + line)

    summary = {}
    for season, start in (("summer", SUMMER_NS), ("winter", WINTER_NS)):
        runs = {}
        for mode in ("off", "enforce", "oracle"):
            t = time.perf_counter()
            runs[mode] = run_week(cfg, start, args.days, mode, model, log)
            cyc = runs[mode].cycle_s
            log(f"  {season} {mode}: {time.perf_counter() - t:.0f} s"
                + (f", cycle median {1000 * np.median(cyc):.0f} ms, max {1000 * max(cyc):.0f} ms" if cyc else ""))
        off = runs["off"]
        log(f"== {season} ({args.days:g} days from {time.strftime('%Y-%m-%d', time.gmtime(start / 1e9))}) ==")
        log(f"  off: facility {off.facility_j / 3.6e9:.0f} MWh, IT {off.it_j / 3.6e9:.0f} MWh, cooling {off.cooling_j / 3.6e9:.1f} MWh, "
            f"PUE {off.facility_j / off.it_j:.4f}")
        for mode in ("enforce", "oracle"):
            r = runs[mode]
            loss = {c: 100 * r.loss_gpu_s[c] / r.busy_gpu_s[c] for c in CLASSES if r.busy_gpu_s[c]}
            viol = sum(r.violations.values())
            e_per_work_off = off.facility_j / off.work_gpu_s
            e_per_work = r.facility_j / r.work_gpu_s
            log(f"  {mode:7s} saved: facility {pct(r.facility_j, off.facility_j):5.2f} %, IT {pct(r.it_j, off.it_j):5.2f} %, "
                f"cooling {pct(r.cooling_j, off.cooling_j):5.2f} %; facility energy per unit work {pct(e_per_work, e_per_work_off):5.2f} %; "
                f"work done {100 * r.work_gpu_s / off.work_gpu_s:.2f} % of off")
            log("          throughput lost per class: " + ", ".join(f"{c} {v:.2f} % (bound {100 * bounds.get(c, 0):.0f} %)"
                                                                     for c, v in loss.items())
                + f"; bound violations {viol} {dict((k, v) for k, v in r.violations.items() if v)}"
                + f"; in a job's first cycle (inherited cap, not yet decided on) "
                  f"{sum(r.new_job_violations.values())} of {sum(r.busy_gpu_s.values()) / STEP_S:.0f} busy GPU-steps")
        ratio = pct(runs["enforce"].facility_j, off.facility_j) / max(pct(runs["oracle"].facility_j, off.facility_j), 1e-9)
        log(f"  enforce / oracle facility savings: {ratio:.2f} (target ≥ 0.9)")
        summary[season] = ratio
    log(f"done in {time.perf_counter() - t0:.0f} s; PUE MAPE {100 * model.scores['mape']:.3f} % (target ≤ 1 %), "
        f"caps {caps_s * 1000:.0f} ms, placement {place_s:.2f} s, savings vs oracle "
        + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
