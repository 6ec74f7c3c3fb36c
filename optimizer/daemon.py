"""The optimizer daemon: one safety-railed control cycle, scheduled by APScheduler 3.x.

Each cycle (:meth:`OptimizerDaemon.run_once`):

1. revert every lease that lapsed (the actuator's own clock);
2. mode ``off``: revert everything the optimizer set, and stop there;
3. read the fleet from the store; act only on **fresh** telemetry (``stale_after_s``): GPUs
   with stale samples are held, and when the facility data or every GPU is stale the cycle
   holds entirely — no renewals, so leases lapse and GPUs return to their defaults; a lease
   whose GPU now runs a different job is dropped (GPU back to default — the optimizer-side
   twin of the scheduler's job prolog, which resets the limit at job start and covers the gap
   until this cycle notices);
4. price the present state with the PUE model; telemetry outside the model's training range
   (or no model) → **conservative**: no new cap deeper than the fleet starting point;
5. per job, the cap it can justify (``job_targets``): a job that reports ``progress`` its own
   curve, probed Zeus-style on its own draw: first where no published sweep loses more than its
   class bound, deeper only as its own samples prove (``job_curves``);
   a job without progress only its class's static policy (``static_policy``); an unknown class
   nothing; the M&V control group (``measured_savings``) its default. Then decide caps
   (``power_caps.decide_caps``: those targets, budgets priced on the measured or pessimistic
   curves, bounded step, hardware range);
6. ``advise``: write the advice; ``enforce``: apply changes through the actuator (read back,
   rollback on failure), renew leases of caps that stay, revert GPUs back at default;
7. audit every decision in the store's ``optimizer`` measurement, with its reason; every
   ``MEASURED_EVERY_S`` the measured saving with its 95 % interval (action ``measured``).

Scheduling: ``BackgroundScheduler`` with ``coalesce=True`` (a backlog of missed runs
collapses into one — acting on old telemetry twice is pointless), ``max_instances=1`` (cycles
never overlap, so two cycles cannot fight over a GPU) and ``misfire_grace_time`` of half an
interval (a run later than that is skipped: the next on-time run sees fresher data).
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC

import numpy as np

from dcim.config import Config
from dcim.inventory import Inventory, build_inventory
from dcim.metrics import OPTIMIZER_CYCLE_ACTION, Point
from dcim.store.base import StoreError
from optimizer import fleet as fleet_mod
from optimizer.actuator import Actuator, ApplyResult
from optimizer.demand_response import DemandResponse
from optimizer.desired_state import Lease
from optimizer.features import MEASURED_PUE, current_row
from optimizer.job_curves import JobCurves
from optimizer.job_targets import JobTargets, decide_jobs, latest_progress
from optimizer.measured_savings import SavingsLedger, measured_point
from optimizer.placement import PlacementState
from optimizer.power_caps import CapPolicy, predicted_draw_w
from optimizer.pue_model import PueModel

log = logging.getLogger(__name__)

MODES = ("off", "advise", "enforce")
MEASURED_EVERY_S = 600.0  # the measured saving (M&V) is recomputed and written at most this often
AUDIT_BACKLOG_POINTS = 200_000  # audit points kept in memory while the store is down
# aim 0.2 pt inside each loss bound (curve error); the learned table is already a low quantile (demand jitter)
LOSS_MARGIN = 0.002


@dataclass
class Decision:
    host: str
    uuid: str
    index: int
    action: str  # advise, set, renew, revert, rollback, failed, hold, cycle
    power_limit_w: float | None
    previous_w: float | None
    reason: str
    est_saving_w: float = 0.0


@dataclass
class CycleReport:
    time_ns: int
    mode: str
    decisions: list[Decision] = field(default_factory=list)
    predicted_pue: float | None = None
    conservative: bool = False
    held: str = ""  # why the whole cycle held, if it did
    est_saving_w: float = 0.0
    renewed: int = 0
    duration_s: float = 0.0
    out_of_range: list[str] = field(default_factory=list)

    def table(self) -> str:
        head = (f"mode {self.mode}  PUE {self.predicted_pue if self.predicted_pue is None else round(self.predicted_pue, 4)}"
                f"  conservative {self.conservative}  est. saving {self.est_saving_w / 1000:.1f} kW"
                f"  renewed {self.renewed}  {self.held}")
        rows = [("host", "gpu", "action", "limit_w", "previous_w", "saving_w", "reason")]
        for d in self.decisions:
            if d.action == OPTIMIZER_CYCLE_ACTION:
                continue
            rows.append((d.host, str(d.index), d.action, _fmt(d.power_limit_w), _fmt(d.previous_w),
                         f"{d.est_saving_w:.0f}", d.reason))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if len(rows) == 1:
            lines.append("(no changes)")
        return "\n".join(lines)


def _fmt(v) -> str:
    return "" if v is None else f"{v:.0f}"


class OptimizerDaemon:
    """Owns the control loop. Inject *clock* (UTC ns) for simulated time; *model* is optional
    (no model → conservative). *learn_curves*: learn each progress-reporting job's own curve
    (``job_curves``); False treats every job as reporting no progress (static policy only)."""

    def __init__(self, config: Config, store, actuator: Actuator, *, inventory: Inventory | None = None,
                 model: PueModel | None = None, clock: Callable[[], int] = time.time_ns, mode: str | None = None,
                 learn_curves: bool = True):
        self.config = config
        self.settings = config.optimizer
        self.store = store
        self.actuator = actuator
        self.inventory = inventory or build_inventory(config)
        self.layout = fleet_mod.FleetLayout(self.inventory, config)  # the inventory's lookups, built once
        self.model = model
        self.clock = clock
        self.mode = mode or self.settings.mode
        self.learn_curves = learn_curves
        self.job_curves = JobCurves(probe_step_w=self.settings.max_step_w)
        self.savings = SavingsLedger()  # M&V: control group vs capped jobs, per unit of work
        self.last_jobs: JobTargets | None = None
        self._measured_at_ns = 0
        self._demand_memory: dict = {}
        self._last_job: dict[tuple[str, int], str] = {}  # job seen on each GPU at the last cycle
        self._lock = threading.Lock()
        self._scheduler = None
        self.dr = DemandResponse()  # demand response set at run time (optimizer/demand_response.py)
        self.last_report: CycleReport | None = None
        self._audit_backlog: list[Point] = []  # audit points the store refused; written with the next
        self.last_fleet: fleet_mod.FleetState | None = None
        self._placement_state: PlacementState | None = None
        self.actuator.desired.mode = self.mode
        self.actuator.desired.lease_s = self.settings.lease_s

    # -- operator controls ------------------------------------------------------------------------

    def set_mode(self, mode: str) -> list[Decision]:
        """Switch mode now; ``off`` reverts everything the optimizer set, immediately."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with self._lock:
            self.mode = mode
            self.actuator.desired.mode = mode
            if mode != "enforce":
                results = self.actuator.revert_all(f"mode {mode}")
                decisions = [self._from_result(r) for r in results]
                self._audit(decisions, self.clock(), None)
                return decisions
        return []

    def set_demand_response(self, budget_w: float | None, until_ns: int | None, actor: str, reason: str = "") -> None:
        """Hold the facility under *budget_w* (W) until *until_ns* (UTC ns); None ends it. Audited
        at once; DemandResponseError names a bad part. The next cycle runs now, not an interval on."""
        with self._lock:
            now = self.clock()
            if self.dr.set(budget_w, until_ns, actor, reason, now):
                self._audit([], now, None)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.modify_job("optimizer-cycle", next_run_time=_utcnow())

    def demand_response_state(self) -> dict | None:
        """The window in force (budget_w, until_ns, actor, reason, met …), None when none."""
        return self.dr.state(self.clock())

    def site_budget_w(self, now_ns: int) -> float | None:
        budgets = []
        if self.settings.site_power_budget_kw is not None:
            budgets.append(self.settings.site_power_budget_kw * 1000.0)
        dr_budget_w = self.dr.budget_w(now_ns)
        if dr_budget_w is not None:
            budgets.append(dr_budget_w)
        return min(budgets) if budgets else None

    # -- the cycle --------------------------------------------------------------------------------

    def run_once(self) -> CycleReport:
        with self._lock, _gc_paused():
            t0 = time.perf_counter()
            report = self._cycle(self.clock())
            report.duration_s = time.perf_counter() - t0
            self.last_report = report
            return report

    def _cycle(self, now: int) -> CycleReport:
        opt = self.settings
        report = CycleReport(now, self.mode)
        report.decisions += [self._from_result(r) for r in self.actuator.expire(now)]
        self.dr.expire(now)  # a window that ran out: audited below, its caps released this cycle
        if self.mode == "off":
            report.decisions += [self._from_result(r) for r in self.actuator.revert_all("mode off")]
            self._audit(report.decisions, now, None)
            return report
        try:
            fleet = fleet_mod.read_fleet(self.store, self.inventory, now, lookback_s=max(3600.0, 10 * opt.stale_after_s),
                                         layout=self.layout)
            self.last_fleet = fleet
            row, facility_age_s = current_row(self.store, now, tz=self.inventory.timezone, site=self.inventory.site,
                                              max_age_s=max(3600.0, 10 * opt.stale_after_s))
        except StoreError as exc:  # the store is down: no telemetry, so hold; the expiries above still count
            report.held = f"hold: store unavailable ({exc}); leases not renewed"
            report.decisions.append(Decision("", "", -1, "hold", None, None, report.held[:200]))
            self._audit(report.decisions, now, None)
            return report
        fresh = fleet.fresh(opt.stale_after_s) if fleet.n else np.zeros(0, bool)
        if fleet.n == 0 or not fresh.any() or facility_age_s > opt.stale_after_s:
            why = ("no GPU telemetry" if fleet.n == 0 else "GPU telemetry stale" if not fresh.any()
                   else f"facility telemetry stale ({facility_age_s:.0f} s)")
            report.held = f"hold: {why}; leases not renewed"
            report.decisions.append(Decision("", "", -1, "hold", None, None, report.held))
            self._audit(report.decisions, now, None)
            return report

        if self.mode == "enforce":
            report.decisions += self._drop_leases_of_changed_jobs(fleet, fresh)
        it_w = row.get("it_power_kw", float("nan")) * 1000.0
        pue, conservative, oor = self._price(row)
        report.predicted_pue, report.conservative, report.out_of_range = pue, conservative, oor
        inp, names = fleet_mod.cap_inputs(fleet, self.inventory, self.config, {}, self._demand_memory,
                                          stale_after_s=opt.stale_after_s, layout=self.layout)
        jobs = self._job_targets(fleet, inp, row, now)
        inp.target_w, inp.label = jobs.target_w, jobs.label
        rack_w, inlet = self._rack_readings(now)
        bud = fleet_mod.budgets(fleet, self.inventory, self.config, inp.groups, names, rack_power_w=rack_w,
                                zone_inlet_c=inlet, it_power_w=it_w if math.isfinite(it_w) else None,
                                site_budget_w=self.site_budget_w(now), pue=pue or 1.3, layout=self.layout)
        policy = CapPolicy(max_step_w=self.dr.step_w(opt.max_step_w, opt.dr_max_step_w),
                           floor_fraction=opt.cap_fraction_floor, conservative=conservative, pue=pue or 1.3,
                           loss_margin=LOSS_MARGIN)
        plan = self.dr.decide(now, inp, bud, policy, job_class=fleet.job_class, dr_bound=opt.dr_loss_bound,
                              throughput_fn=fleet_mod.job_throughput_fn(fleet, inp, jobs.tables),
                              measured_pue=row.get(MEASURED_PUE))
        self._placement_state = None
        report.est_saving_w = self._facility_saving(row, it_w, plan, inp)
        pue_pt = pue if pue is not None else None
        self._act(report, fleet, inp, plan, now, pue_pt)
        if plan.groups_over_budget:
            report.decisions.append(Decision("", "", -1, "hold", None, None,
                                             "over budget, converging by max_step_w: " + ", ".join(plan.groups_over_budget[:10])))
        self._audit(report.decisions, now, pue_pt, summary=report, extra=self._measured(now))
        return report

    def _drop_leases_of_changed_jobs(self, fleet, fresh) -> list[Decision]:
        """A lease belongs to the job it was decided for. Where a GPU's job changed since the
        last cycle, its lease is dropped and the GPU goes back to its default limit (what the
        scheduler's job prolog does at job start; without a prolog the new job ran under the
        old cap until this cycle noticed). The decision below then starts from the default,
        one bounded step at a time. Budget caps are kept: a breaker outranks a new job.
        *fleet.limit_w* is updated to the limit in force after the revert."""
        out = []
        last = self._last_job
        rows = np.flatnonzero(fresh)
        keys = list(zip(fleet.host[rows].tolist(), fleet.gpu_index[rows].tolist()))
        jobs = fleet.job[rows].tolist()
        prevs = [last.get(key) for key in keys]
        for i, key, job, prev in zip(rows.tolist(), keys, jobs, prevs):
            if prev is None or prev == job or not job:
                continue
            lease = self.actuator.desired.get(*key)
            if lease is None or lease.reason.startswith("budget"):
                continue
            res = self.actuator.revert(key[0], key[1], reason=f"job changed ({prev or 'idle'} → {job}): lease dropped")
            if res is None:
                continue
            out.append(self._from_result(res))
            if res.action == "revert" and res.applied_w is not None:
                fleet.limit_w[i] = float(res.applied_w)
        last.update(zip(keys, jobs))
        return out

    def _act(self, report, fleet, inp, plan, now, pue) -> None:
        opt = self.settings
        book = self.actuator.desired
        per_gpu_saving = (inp.power_w - plan.predicted_power_w) * (pue or 1.3)
        cap, cur = plan.cap_w.astype(float), fleet.limit_w.astype(float)
        changed = inp.fresh & (np.abs(cap - cur) >= 1.0)
        if self.mode == "advise":
            for i in np.flatnonzero(changed).tolist():
                report.decisions.append(Decision(fleet.host[i], fleet.uuid[i], int(fleet.gpu_index[i]), "advise",
                                                 float(cap[i]), float(cur[i]), plan.reason_text(i),
                                                 float(per_gpu_saving[i])))
        if self.mode != "enforce":
            return
        held = {(lease.host, lease.index) for lease in book.leases()}
        leased = np.array([key in held for key in zip(fleet.host.tolist(), fleet.gpu_index.tolist())], dtype=bool)
        at_default = inp.fresh & (cap >= fleet.default_w - 0.5)
        to_default = np.flatnonzero(at_default & (leased | changed)).tolist()
        capped = inp.fresh & ~at_default
        to_set = np.flatnonzero(capped & (changed | ~leased)).tolist()
        to_renew = np.flatnonzero(capped & ~changed & leased).tolist()
        lease_ns = int(opt.lease_s * 1e9)
        # Write-ahead: every cap about to be set is in the lease book (one file write) before
        # any GPU changes, so a crash mid-cycle leaves no cap that nothing will expire.
        previous: dict[int, Lease | None] = {}
        with book.deferred():
            for i in to_set:
                host, idx = fleet.host[i], int(fleet.gpu_index[i])
                old = book.get(host, idx)
                previous[i] = old
                book.put(Lease(host, idx, fleet.uuid[i], float(plan.cap_w[i]), float(fleet.default_w[i]),
                               old.previous_w if old else float(fleet.limit_w[i]), now + lease_ns, now, "intent"))
            for i in to_renew:
                self.actuator.renew(fleet.host[i], int(fleet.gpu_index[i]), lease_s=opt.lease_s, now_ns=now)
                report.renewed += 1
        with book.deferred():
            for i in to_set:
                host, idx, uuid = fleet.host[i], int(fleet.gpu_index[i]), fleet.uuid[i]
                res = self.actuator.apply(host, idx, uuid, float(plan.cap_w[i]), default_w=float(fleet.default_w[i]),
                                          lease_s=opt.lease_s, now_ns=now, reason=plan.reason_text(i))
                if not res.ok:  # rolled back: the book goes back to what it was
                    old = previous[i]
                    if old is not None:
                        book.put(old)
                    else:
                        book.drop(host, idx)
                d = self._from_result(res)
                d.est_saving_w = float(per_gpu_saving[i]) if res.ok else 0.0
                report.decisions.append(d)
            for i in to_default:
                # back at default: a lease we hold is reverted; a foreign cap is set once,
                # without a lease (nothing of ours to lapse)
                host, idx, uuid = fleet.host[i], int(fleet.gpu_index[i]), fleet.uuid[i]
                reason = f"back at default ({plan.reason_text(i)})"
                reverted = self.actuator.revert(host, idx, reason=reason)
                if reverted is None:
                    default = float(fleet.default_w[i])
                    reverted = self.actuator.apply(host, idx, uuid, default, default_w=default, lease_s=opt.lease_s,
                                                   now_ns=now, reason=reason)
                    book.drop(host, idx)
                report.decisions.append(self._from_result(reverted))

    # -- pricing and readings ---------------------------------------------------------------------

    def _price(self, row: dict) -> tuple[float | None, bool, list[str]]:
        if self.model is None:
            return None, True, ["no PUE model"]
        oor = self.model.out_of_range(row)
        try:
            pue = float(self.model.predict(row)[0])
        except Exception as exc:  # noqa: BLE001 — a broken model must not stop the safe path
            log.warning("PUE model failed: %s", exc)
            return None, True, ["model error"]
        return pue, bool(oor), oor

    def _facility_saving(self, row: dict, it_w: float, plan, inp) -> float:
        """Facility W saved by the plan against every GPU at its default limit (model-priced:
        facility W = IT W × predicted PUE at that IT load)."""
        now_draw = predicted_draw_w(inp, inp.current_w).sum()
        it_default = float(predicted_draw_w(inp, inp.default_w).sum() - now_draw)
        it_plan = float(plan.predicted_power_w.sum() - now_draw)
        if self.model is None or not math.isfinite(it_w):
            return (it_default - it_plan) * 1.3
        try:
            before, _ = self.model.facility_power_w(row, max(it_w + it_default, 1.0))
            after, _ = self.model.facility_power_w(row, max(it_w + it_plan, 1.0))
        except Exception as exc:  # noqa: BLE001 — a broken model must not stop the safe path
            log.warning("PUE model failed pricing the saving: %s", exc)
            return (it_default - it_plan) * 1.3
        return before - after

    def _rack_readings(self, now: int) -> tuple[dict[str, float], dict[str, float]]:
        since = now - int(self.settings.stale_after_s * 1e9)
        rack_w: dict[str, float] = {}
        for p in self.store.latest("pdu", where={"site": self.inventory.site}, since_ns=since):
            w = p.fields.get("power_w")
            if w is not None:
                rack_w[p.tags.get("rack", "")] = rack_w.get(p.tags.get("rack", ""), 0.0) + float(w)
        inlet = {}
        for p in self.store.latest("cooling", where={"site": self.inventory.site}, since_ns=since):
            v = p.fields.get("rack_inlet_temp_c")
            if v is not None:
                inlet[p.tags.get("unit", "")] = float(v)
        return rack_w, inlet

    def _job_targets(self, fleet, inp, row: dict, now: int) -> JobTargets:
        """Each job's justified cap and its reason (``job_targets``): learned from its progress,
        a static policy without progress, default for the control group. M&V energy is each
        job's GPU draw times the metered facility-to-GPU power ratio now (1 where unmetered)."""
        progress = latest_progress(self.store, self.inventory.site, now)
        gpu_w = float(fleet.power_w[inp.fresh].sum())
        facility_w = row.get("it_power_kw", float("nan")) * 1000.0 * row.get(MEASURED_PUE, float("nan"))
        ratio = facility_w / gpu_w if math.isfinite(facility_w) and gpu_w > 0 and facility_w > gpu_w else 1.0
        self.last_jobs = decide_jobs(fleet, inp, self.settings, progress, self.job_curves if self.learn_curves else None,
                                     self.savings, now, facility_per_gpu_w=ratio)
        return self.last_jobs

    def _measured(self, now: int) -> list[Point]:
        """The M&V figure, recomputed every MEASURED_EVERY_S (bootstrap over jobs)."""
        if self.settings.control_share <= 0 or now - self._measured_at_ns < MEASURED_EVERY_S * 1e9:
            return []
        self._measured_at_ns = now
        m = self.savings.estimate()
        return [] if m is None else [measured_point(self.inventory.site, m, now, self.mode)]

    # -- placement ---------------------------------------------------------------------------------

    def placement_state(self) -> PlacementState | None:
        """Placement state from the last cycle's fleet and the store's cooling readings."""
        if self._placement_state is None and self.last_fleet is not None:
            self._placement_state = fleet_mod.placement_state(self.last_fleet, self.inventory, self.config, self.store,
                                                              self.clock(), self.settings.stale_after_s)
        return self._placement_state

    # -- audit -------------------------------------------------------------------------------------

    def _from_result(self, r: ApplyResult) -> Decision:
        return Decision(r.host, r.uuid, r.index, r.action, r.applied_w if r.applied_w is not None else r.requested_w,
                        r.previous_w, r.reason)

    def _audit(self, decisions: list[Decision], now: int, pue: float | None, summary: CycleReport | None = None,
               extra: list[Point] | None = None) -> None:
        site = self.inventory.site
        pts = list(extra or [])
        for d in decisions:
            fields: dict = {"reason": d.reason[:500], "mode": self.mode, "lease_s": float(self.settings.lease_s)}
            if d.power_limit_w is not None:
                fields["power_limit_w"] = float(d.power_limit_w)
            if d.previous_w is not None:
                fields["previous_w"] = float(d.previous_w)
            if pue is not None:
                fields["predicted_pue"] = float(pue)
            if d.est_saving_w:
                fields["est_saving_w"] = float(d.est_saving_w)
            pts.append(Point("optimizer", {"site": site, "host": d.host, "uuid": d.uuid, "action": d.action}, fields, now))
        if summary is not None:
            fields = {"reason": (f"{len(decisions)} decisions, {summary.renewed} renewed"
                                 + (", conservative: " + ",".join(summary.out_of_range) if summary.conservative else "")),
                      "mode": self.mode, "est_saving_w": float(summary.est_saving_w), "lease_s": float(self.settings.lease_s)}
            if pue is not None:
                fields["predicted_pue"] = float(pue)
            pts.append(Point("optimizer", {"site": site, "host": "", "uuid": "", "action": OPTIMIZER_CYCLE_ACTION},
                             fields, now))
        pts = self._audit_backlog + self.dr.drain_audit_points(site, self.mode) + pts
        if not pts:
            return
        try:
            self.store.write(pts)
            self._audit_backlog = []
        except Exception as exc:  # noqa: BLE001 — the audit must not break the safety path; logged loudly
            self._audit_backlog = pts[-AUDIT_BACKLOG_POINTS:]  # bounded; retried with the next audit
            log.error("could not write %d optimizer decisions to the store (kept to retry, %d dropped): %s",
                      len(pts), len(pts) - len(self._audit_backlog), exc)

    # -- scheduling --------------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            report = self.run_once()
            changed = sum(1 for d in report.decisions if d.action not in (OPTIMIZER_CYCLE_ACTION, "renew"))
            log.info("optimizer cycle: mode %s, %d decisions, %d renewed, est. saving %.1f kW%s", report.mode, changed,
                     report.renewed, report.est_saving_w / 1000, f" ({report.held})" if report.held else "")
        except Exception:  # noqa: BLE001 — one bad cycle must not kill the scheduler; leases lapse
            log.exception("optimizer cycle failed")

    @property
    def scheduler(self):
        """The APScheduler instance once started (other periodic jobs, e.g. the quarterly report, join it)."""
        return self._scheduler

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        interval = self.settings.interval_s
        scheduler = self._scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(self._tick, "interval", seconds=interval, id="optimizer-cycle",
                          coalesce=True, max_instances=1, misfire_grace_time=max(1, int(interval / 2)),
                          next_run_time=None)
        scheduler.start()
        scheduler.modify_job("optimizer-cycle", next_run_time=_utcnow())

    def stop(self, *, revert: bool = True) -> list[Decision]:
        """Stop scheduling; with *revert* every cap the optimizer set goes back to default."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if not revert:
            return []
        with self._lock:
            decisions = [self._from_result(r) for r in self.actuator.revert_all("daemon stopped")]
            self._audit(decisions, self.clock(), None)
            return decisions


@contextmanager
def _gc_paused():
    """Python's cyclic garbage collector held off for one cycle, then back as it was.

    Why: a cycle on 10,000 GPUs allocates ~100,000 short-lived objects (the store's Points and
    their dicts), all alive until the cycle ends. The collector ran ~150 young collections over
    them and, in most cycles, a full one over every object of the process (the store's series
    maps, the inventory; measured 126-174 ms of a ~450 ms bench cycle on a loaded 2-core box),
    finding nothing: the cycle's objects hold no reference cycles and die by reference count when
    it returns. Paused, the collector's next run starts after the cycle, over far fewer objects."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _utcnow():
    from datetime import datetime

    return datetime.now(UTC)
