"""Demand response: a facility power budget set at run time (a grid signal, an operator), held
until a time, audited, and reverted when it ends.

:class:`DemandResponse` is the state the daemon holds. A window starts (``set`` with a budget),
may be replaced (``update``), is ended by its operator (``end``) or runs out (``expire``, seen
by the first cycle at or after its end). Every such event is one row of the ``optimizer``
measurement, action ``demand_response``, with the budget, its end, who acted and why.

While a window holds, the daemon's site budget is the DR budget (the lower of it and any
standing ``[optimizer] site_power_budget_kw``), and :func:`decide_with_dr` decides the caps:

- every job class keeps its **demand-response loss bound** (``[optimizer] dr_loss_bound``,
  separate from the efficiency bound; a class it does not list keeps its efficiency bound; the
  default leaves inference at 0, untouched): the site budget may take a GPU no lower than the
  lowest cap whose loss stays within that bound both on the daemon's curve for the job and on
  the pessimistic end of the published curves (a job's curve is learned only within its
  efficiency bound). Rack, PDU and cooling budgets still
  may (safety outranks a DR commitment): the DR floor never rises above the cap those alone ask.
- the step bound is ``[optimizer] dr_max_step_w`` during the window and on the cycle after it
  ends, so a grid signal is met in one cycle and the caps set only for it are released in one.

A budget no cap within the DR bounds can reach is not forced: the plan reports the site as
over budget and :meth:`DemandResponse.state` says ``met: false``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from dcim.config import MAX_SITE_KW
from dcim.metrics import Point
from optimizer.power_caps import Budgets, CapInputs, CapPlan, CapPolicy, decide_caps
from optimizer.static_policy import pessimistic_min_fraction
from optimizer.throughput_curve import relative_throughput

ACTION = "demand_response"
MAX_WINDOW_S = 24 * 3600.0  # a grid event lasts hours; a standing limit is [optimizer] site_power_budget_kw
MAX_BUDGET_W = MAX_SITE_KW * 1000.0
ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:\-]{0,63}\Z")
MAX_REASON_CHARS = 200
GRID_POINTS = 81  # caps tried per GPU when finding its DR floor (as decide_caps' own grid)


class DemandResponseError(ValueError):
    """A demand-response request that cannot be accepted; the message says which part and why."""


@dataclass(frozen=True)
class Window:
    budget_w: float  # facility W
    until_ns: int  # UTC ns
    actor: str
    reason: str
    started_ns: int


def check_request(budget_w, until_ns, actor, reason, now_ns: int) -> tuple[float | None, int | None, str, str]:
    """Validate a request; DemandResponseError naming the bad part. A None budget ends the window."""
    if not isinstance(actor, str) or not ACTOR.match(actor):
        raise DemandResponseError("'actor' must be a name (letters, digits, _ . @ : -; up to 64)")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or any(ord(c) < 32 for c in reason):
        raise DemandResponseError(f"'reason' must be one line of text, at most {MAX_REASON_CHARS} characters")
    if budget_w is None:
        return None, None, actor, reason
    if isinstance(budget_w, bool) or not isinstance(budget_w, (int, float)) or not math.isfinite(budget_w) \
            or not 0 < budget_w <= MAX_BUDGET_W:
        raise DemandResponseError(f"'budget_w' must be a number of watts in (0, {MAX_BUDGET_W:.0f}], got {budget_w!r}")
    if isinstance(until_ns, bool) or not isinstance(until_ns, int):
        raise DemandResponseError("'until_ns' must be the window's end, integer UTC nanoseconds")
    if until_ns <= now_ns:
        raise DemandResponseError(f"'until' ({iso(until_ns)}) is not in the future (now {iso(now_ns)})")
    if until_ns - now_ns > MAX_WINDOW_S * 1e9:
        raise DemandResponseError(f"'until' ({iso(until_ns)}) is more than {MAX_WINDOW_S / 3600:g} h away; a "
                                  "standing limit belongs in [optimizer] site_power_budget_kw")
    return float(budget_w), int(until_ns), actor, reason


def iso(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class DemandResponse:
    """The window in force, its events not yet audited, and whether its caps await release."""

    def __init__(self) -> None:
        self.window: Window | None = None
        self.met: bool | None = None  # did the last cycle's plan fit the DR budget?
        self._events: list[tuple[str, Window, int, str, str]] = []  # (event, window, time_ns, actor, reason)
        self._release = False  # the cycle after a window ends releases its caps in one step

    def set(self, budget_w, until_ns, actor: str, reason: str, now_ns: int) -> str | None:
        """Start, replace (budget given) or end (None) the window; returns the event, None when
        there was nothing to end. DemandResponseError for a bad request."""
        budget_w, until_ns, actor, reason = check_request(budget_w, until_ns, actor, reason, now_ns)
        self.expire(now_ns)
        if budget_w is None:
            if self.window is None:
                return None
            self._events.append(("end", self.window, now_ns, actor, reason))
            self.window, self.met, self._release = None, None, True
            return "end"
        event = "update" if self.window is not None else "start"
        self.window = Window(budget_w, until_ns, actor, reason, now_ns)
        self.met = None
        self._events.append((event, self.window, now_ns, actor, reason))
        return event

    def expire(self, now_ns: int) -> bool:
        """End the window if its time is up (the daemon calls this first thing each cycle)."""
        if self.window is None or now_ns < self.window.until_ns:
            return False
        self._events.append(("expire", self.window, self.window.until_ns, "optimizer", self.window.reason))
        self.window, self.met, self._release = None, None, True
        return True

    def budget_w(self, now_ns: int) -> float | None:
        w = self.window
        return w.budget_w if w is not None and now_ns < w.until_ns else None

    def step_w(self, normal_w: float, dr_step_w: float) -> float:
        """The step bound for this cycle: the DR one while a window holds or its caps await release."""
        return max(normal_w, dr_step_w) if (self.window is not None or self._release) else normal_w

    def cycle_done(self, plan: CapPlan | None) -> None:
        """After a cycle: a pending release is done; note whether the plan fit the DR budget."""
        self._release = False
        if self.window is not None and plan is not None:
            self.met = not any(g.startswith("site:") for g in plan.groups_over_budget)

    def state(self, now_ns: int) -> dict | None:
        w = self.window
        if w is None or now_ns >= w.until_ns:
            return None
        return {"budget_w": w.budget_w, "until_ns": w.until_ns, "until": iso(w.until_ns), "actor": w.actor,
                "reason": w.reason, "started_ns": w.started_ns, "started": iso(w.started_ns), "met": self.met}

    def drain_audit_points(self, site: str, mode: str) -> list[Point]:
        """The events since the last call, as ``optimizer`` rows (action ``demand_response``);
        the caller owns them from here (the daemon keeps them in its backlog until written)."""
        out = []
        for event, w, t_ns, actor, why in self._events:
            text = {"start": f"start: facility budget {w.budget_w / 1000:g} kW until {iso(w.until_ns)}",
                    "update": f"update: facility budget {w.budget_w / 1000:g} kW until {iso(w.until_ns)}",
                    "end": f"end: ended by {actor} before {iso(w.until_ns)}; DR caps released next cycle",
                    "expire": f"expire: the window ended at {iso(w.until_ns)}; DR caps released next cycle"}[event]
            fields: dict[str, float | int | bool | str] = {"reason": (text + (f" ({why})" if why else ""))[:500], "mode": mode,
                      "dr_budget_w": float(w.budget_w), "dr_until_ns": int(w.until_ns), "actor": actor}
            out.append(Point("optimizer", {"site": site, "host": "", "uuid": "", "action": ACTION}, fields, t_ns))
        self._events.clear()
        return out

    def decide(self, now_ns: int, inp: CapInputs, budgets: Budgets, policy: CapPolicy, *, job_class: np.ndarray,
               dr_bound: dict[str, float], throughput_fn=None, measured_pue: float | None = None) -> CapPlan:
        """The cycle's caps: :func:`decide_with_dr` while a window holds, else plain
        :func:`decide_caps`; then :meth:`cycle_done`. The caller has put the DR budget in
        *budgets* (``fleet.budgets(site_budget_w=…)``, facility W ÷ *policy*.pue) and the step
        from :meth:`step_w` in *policy*; while a window holds the site's IT budget is re-derived
        with *measured_pue* (metered facility ÷ IT power now), see :func:`site_it_budget`."""
        w = self.window
        if w is not None and now_ns < w.until_ns:
            budgets = site_it_budget(budgets, policy.pue, measured_pue)
            bound = dr_loss_bounds(job_class, inp.loss_bound, dr_bound)
            plan = decide_with_dr(inp, budgets, policy, dr_bound=bound, throughput_fn=throughput_fn,
                                  job_class=job_class, label=f"demand response by {w.actor}")
        else:
            plan = decide_caps(inp, budgets, policy, throughput_fn=throughput_fn)
        self.cycle_done(plan)
        return plan


def site_it_budget(budgets: Budgets, assumed_pue: float, measured_pue: float | None) -> Budgets:
    """*budgets* with the site's IT budget converted from facility W by the metered facility ÷ IT
    ratio of this cycle instead of *assumed_pue* (the model's prediction, or 1.3 without one).

    Why: a grid commitment is on the metered facility power and must hold within the cycle that
    meets it; an assumed ratio above the site's cuts more than asked, one below it misses the
    budget. The ratio rises as IT load falls (fixed overheads), so the ratio now is a little
    low for the cut state: ``decide_caps``' budget margin (3 % of the IT budget, ~2.4 % of the
    facility's at PUE 1.25) covers that and the meters' class-0.5 error (tested against the
    twin in tests/optimizer/test_demand_response.py and bench/savings_extra.py). A job that
    starts between two cycles runs at its default limit until the next one caps it."""
    site = budgets.budget_w.get("site")
    if site is None:
        return budgets
    facility_w = site * max(assumed_pue, 1.0)
    pue = measured_pue if measured_pue is not None and math.isfinite(measured_pue) and measured_pue >= 1.0 \
        else max(assumed_pue, 1.0)
    return replace(budgets, budget_w={**budgets.budget_w, "site": facility_w / pue})


def dr_loss_bounds(job_class: np.ndarray, efficiency_bound: np.ndarray, dr_bound: dict[str, float]) -> np.ndarray:
    """Per GPU, the loss its job may take during DR: its class's DR bound, never tighter than its
    efficiency bound; a class the DR table does not list (or an unknown class) keeps its
    efficiency bound."""
    table = np.array([dr_bound.get(c, -1.0) if c else -1.0 for c in job_class.tolist()], dtype=float)
    return np.maximum(table, efficiency_bound)


def dr_floor_w(inp: CapInputs, bound: np.ndarray, throughput_fn=None, margin: float = 0.0) -> np.ndarray:
    """Per GPU, the lowest cap (on a grid of its hardware range) at and above which the predicted
    loss stays within *bound* − *margin*; the hardware minimum for idle GPUs."""
    lo, hi = inp.min_w.astype(float), inp.max_w.astype(float)
    t = np.linspace(0.0, 1.0, GRID_POINTS)
    caps = lo[:, None] + (hi - lo)[:, None] * t[None, :]
    if throughput_fn is None:
        r = relative_throughput(caps / hi[:, None], inp.saturation[:, None], inp.beta[:, None])
    else:
        r = np.asarray(throughput_fn(caps), dtype=float)
    ok = (1.0 - r) <= np.maximum(bound - margin, 0.0)[:, None] + 1e-9
    ok[:, -1] = True  # the maximum is always allowed
    # the lowest cap from which every higher cap is within the bound
    suffix_ok = np.flip(np.logical_and.accumulate(np.flip(ok, axis=1), axis=1), axis=1)
    first = np.argmax(suffix_ok, axis=1)
    floor = caps[np.arange(caps.shape[0]), first]
    return np.where(inp.busy, floor, lo)


def pessimistic_floor_w(inp: CapInputs, job_class: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Per busy GPU, the cap at which even the pessimistic end of the published curves of its
    class (:mod:`optimizer.static_policy`) loses no more than *bound*; the hardware minimum when idle.

    Why: a job's own curve is learned only within its efficiency bound (its probes stay there),
    so a DR bound several times deeper is extrapolation; the published worst case is not."""
    frac = np.ones(inp.max_w.size)
    keys = {}
    for i in np.flatnonzero(inp.busy).tolist():
        key = (str(job_class[i]), round(float(bound[i]), 6))
        if key not in keys:
            keys[key] = pessimistic_min_fraction(*key)
        frac[i] = keys[key]
    # whole watts, rounded up: a cap a hair under the fraction could read the step below it
    return np.where(inp.busy, np.maximum(np.ceil(frac * inp.max_w - 1e-9), inp.min_w), inp.min_w)


def decide_with_dr(inp: CapInputs, budgets: Budgets, policy: CapPolicy, *, dr_bound: np.ndarray,
                   throughput_fn=None, job_class: np.ndarray | None = None, label: str = "") -> CapPlan:
    """:func:`decide_caps` under a DR site budget with every busy GPU held within *dr_bound*.

    Two solves: the first without the site budget gives the caps safety alone asks (racks,
    PDUs, cooling); each GPU's lower limit becomes the lower of its DR floor and that cap, and the
    second solve fits the site budget above those limits. With *job_class* the DR floor is also
    never below the pessimistic published curve's (:func:`pessimistic_floor_w`). *label* names
    the window in the reason of every cap the site budget set."""
    no_site = Budgets(budget_w={k: v for k, v in budgets.budget_w.items() if k != "site"},
                      base_w={k: v for k, v in budgets.base_w.items() if k != "site"}, names=budgets.names)
    safety = decide_caps(inp, no_site, policy, throughput_fn=throughput_fn)
    floor = dr_floor_w(inp, dr_bound, throughput_fn, policy.loss_margin)
    if job_class is not None:
        floor = np.maximum(floor, pessimistic_floor_w(inp, job_class, dr_bound))
    lower = np.where(inp.busy & inp.fresh, np.minimum(floor, safety.cap_w), inp.min_w)
    lower = np.clip(lower, inp.min_w, inp.max_w)
    plan = decide_caps(replace(inp, min_w=lower), budgets, policy, throughput_fn=throughput_fn)
    if label:
        site = np.array([str(g).startswith("site:") for g in plan.budget_group.tolist()], dtype=bool)
        plan.budget_group[site] = [f"{g}, {label}" for g in plan.budget_group[site].tolist()]
    return plan
