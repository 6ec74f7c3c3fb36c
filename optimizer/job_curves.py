"""Each job's own power-cap curve, learned from its real progress (Zeus-style just-in-time
profiling, You et al., NSDI'23, reference §3.1), with the noise of real progress in mind.

The signal is the ``progress`` measurement: a job's ``work_done`` counter in its own unit
(steps, tokens, samples), stored raw. Per job and cycle, :class:`ProgressSampler` turns two
reports into one **rate sample** (work per second per GPU of the job) if, and only if, the
job's cap stayed the same over the whole interval; a counter that went down (the job restarted
from a checkpoint) starts a new interval, and an interval that straddles a cap change is thrown
away. A job's throughput under a cap is its rate there relative to **its own** rate at its
default (uncapped) limit: units and job sizes never mix.

:class:`JobCurve` then runs a small state machine per job, as Zeus's power-limit optimizer does
(Ready → Warmup → Profiling → Done):

- **baseline**: at the default limit until :data:`BASE_SAMPLES` rate samples are in;
- **probing**: down a ladder of caps one bounded step (``probe_step_w``) at a time, never below
  the job's floor — the deeper of the policy floor and what the pessimistic end of the published
  curves allows for its class's loss bound (``static_policy.pessimistic_min_fraction``) — taking
  :data:`LEVEL_SAMPLES` samples at each level (up to :data:`LEVEL_MAX_SAMPLES` while the
  evidence is undecided). A level is admissible only if the **upper
  confidence bound** of its loss (one-sided, :data:`Z`, noise estimated from the job's own
  samples, never below :data:`SIGMA_FLOOR`) is within the bound; the first level that is not
  ends the probe (deeper ones would be worse);
- **settled**: at the admissible level (default included) with the least node energy per unit of
  work, ``(GPU draw + host share) / rate`` (the draw measured there, not modelled), ties to the
  higher cap. The rate at that level keeps being sampled; when the mean of the last
  :data:`DRIFT_SAMPLES` leaves the settled mean by more than the noise band (:data:`DRIFT_MIN`
  or :data:`Z` standard errors, whichever is wider), the job changed (a new phase, a new
  dataset): the curve is forgotten and the job is re-profiled from its baseline.

Every decision carries its reason (``probing …``, ``learned curve n=… …``), so advise mode says
why and enforce mode acts only on measured, bounded steps. Pure logic: no store, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BASE_SAMPLES = 6  # rate samples at the default limit before the first probe
LEVEL_SAMPLES = 3  # rate samples per probed level, at least
# ... and up to this many while the loss's point estimate is within the bound but its upper
# confidence bound is not yet (a sequential test: more evidence before giving up a level)
LEVEL_MAX_SAMPLES = 8
DRIFT_SAMPLES = 4  # the settled level's recent window checked for drift
Z = 2.0  # one-sided confidence multiplier on the loss (≈ 97.7 %)
# Relative noise of one rate sample assumed at least (the progress a job reports is jittery, ±3 %
# per report; a sample averages the reports of a cycle, so the floor is below 3 %).
SIGMA_FLOOR = 0.01
DRIFT_MIN = 0.03  # a settled rate moving less than this (relative) is noise, never drift
MIN_SAMPLE_S = 20.0  # two reports closer than this make no rate sample (wait for more)
TIE = 0.005  # energies per work within 0.5 % are a tie: the higher cap wins
LEVEL_TOLERANCE_W = 1.0  # a job's GPUs within this of each other are at one level


@dataclass(frozen=True)
class JobView:
    """What the daemon knows about one running job this cycle (per-GPU values are means over
    the job's GPUs)."""

    job: str
    job_class: str
    loss_bound: float
    n_gpus: int
    level_w: float | None  # the limit in force on all its GPUs (None: they differ)
    power_w: float  # GPU draw per GPU now
    host_share_w: float  # non-GPU node power per GPU while it works
    default_w: float
    max_w: float
    floor_w: float  # the lowest cap a probe may reach (policy and pessimistic floors, hardware min)


@dataclass(frozen=True)
class RateSample:
    level_w: float
    rate: float  # work per second per GPU
    power_w: float  # GPU draw per GPU at the end of the interval
    dt_s: float
    work: float  # work done in the interval (the job's unit)


@dataclass
class ProgressSampler:
    """Rate samples of one job from its raw ``work_done`` counter (see the module docstring)."""

    level_w: float | None = None
    level_since_ns: int = 0
    anchor: tuple[int, float] | None = None  # (report time ns, work_done) the next interval starts at
    resets: int = 0

    def observe(self, now_ns: int, view: JobView, report: tuple[int, float] | None) -> RateSample | None:
        level = view.level_w
        if level is None or self.level_w is None or abs(level - self.level_w) >= LEVEL_TOLERANCE_W:
            # a new cap (or GPUs at different caps): reports from now on start a clean interval.
            # The cap was in force before this telemetry showed it, so a report stamped now or
            # later already starts one.
            self.level_w, self.level_since_ns = level, now_ns
            self.anchor = report if report is not None and report[0] >= now_ns and level is not None else None
            return None
        if report is None:
            return None
        t_ns, work = report
        if t_ns < self.level_since_ns:  # made before this level was seen in force
            return None
        if self.anchor is None:
            self.anchor = (t_ns, work)
            return None
        t0, w0 = self.anchor
        if work < w0:  # the counter went back: a restart; the interval is lost, not negative
            self.resets += 1
            self.anchor = (t_ns, work)
            return None
        dt_s = (t_ns - t0) / 1e9
        if dt_s < MIN_SAMPLE_S:
            return None
        self.anchor = (t_ns, work)
        rate = (work - w0) / dt_s / max(view.n_gpus, 1)
        return RateSample(level, rate, view.power_w, dt_s, work - w0)


@dataclass
class Level:
    """Rate samples at one cap, with running sums (plain floats: a cycle reads thousands)."""

    rates: list[float] = field(default_factory=list)
    n: int = 0
    rate_sum: float = 0.0
    rate_sq: float = 0.0
    power_sum: float = 0.0

    def add(self, rate: float, power_w: float) -> None:
        self.rates.append(rate)
        self.n += 1
        self.rate_sum += rate
        self.rate_sq += rate * rate
        self.power_sum += power_w

    def mean(self) -> float:
        return self.rate_sum / self.n if self.n else float("nan")

    def power(self) -> float:
        return self.power_sum / self.n if self.n else float("nan")

    def sq_dev_rel(self) -> float:
        """Σ (rate / mean − 1)² over the samples."""
        m = self.mean()
        return max(self.rate_sq - self.n * m * m, 0.0) / (m * m) if self.n and m > 0 else 0.0


@dataclass(frozen=True)
class CurveDecision:
    target_w: float
    label: str
    learned: bool = False  # the target rests on this job's own measurements


class JobCurve:
    """One job's profile and state machine (see the module docstring)."""

    def __init__(self, view: JobView, probe_step_w: float):
        self.phase = "baseline"
        self.levels: dict[float, Level] = {}
        self.step_w = float(probe_step_w)
        self.chosen_w: float | None = None
        self.recent: list[float] = []
        self.reprobes = 0
        self.probe_w: float | None = None
        self._version = 0  # bumped with every sample: cached summaries are valid while it holds
        self._cache: dict[str, tuple[int, object]] = {}
        self._set_view(view)

    def _set_view(self, view: JobView) -> None:
        # levels are whole watts (NVML sets milliwatts, agents may round): a probe's level and
        # the limit read back match by key
        self.default_w = float(round(view.default_w))
        self.floor_w = float(min(math.ceil(view.floor_w - 1e-9), self.default_w))
        self.loss_bound = view.loss_bound
        self.host_share_w = view.host_share_w

    # -- evidence ----------------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        return sum(lv.n for lv in self.levels.values())

    def add(self, s: RateSample) -> None:
        key = float(round(s.level_w))
        self._version += 1
        lv = self.levels.setdefault(key, Level())
        lv.add(s.rate, s.power_w)
        if self.phase == "settled" and self.chosen_w is not None and abs(key - self.chosen_w) < LEVEL_TOLERANCE_W:
            self.recent = (self.recent + [s.rate])[-DRIFT_SAMPLES:]

    def sigma_rel(self) -> float:
        """Relative standard deviation of one rate sample, pooled over the job's levels."""
        return self._cached("sigma", self._sigma_rel_now)

    def _sigma_rel_now(self) -> float:
        ss, dof = 0.0, 0
        for lv in self.levels.values():
            if lv.n >= 2:
                ss += lv.sq_dev_rel()
                dof += lv.n - 1
        est = math.sqrt(ss / dof) if dof else 0.0
        return max(est, SIGMA_FLOOR)

    def loss_bounds(self, level_w: float) -> tuple[float, float]:
        """(point estimate, upper confidence bound) of the throughput loss at *level_w* against
        the job's own default-limit rate (delta method on the ratio of two means)."""
        base, lv = self.levels.get(self.default_w), self.levels.get(float(round(level_w)))
        if base is None or lv is None or not base.n or not lv.n:
            return float("nan"), float("inf")
        r = lv.mean() / max(base.mean(), 1e-12)
        sigma = self.sigma_rel()
        se = r * sigma * math.sqrt(1.0 / lv.n + 1.0 / base.n)
        return 1.0 - r, 1.0 - r + Z * se

    def energy_per_work(self, level_w: float) -> float:
        lv = self.levels[float(round(level_w))]
        return (lv.power() + self.host_share_w) / max(lv.mean(), 1e-12)

    # -- decisions ---------------------------------------------------------------------------------

    def next_level(self, level_w: float) -> float | None:
        nxt = level_w - self.step_w
        if level_w <= self.floor_w + 1e-6:
            return None
        return float(round(max(nxt, self.floor_w)))

    def decide(self, view: JobView) -> CurveDecision:
        self._set_view(view)
        if self.floor_w >= self.default_w:  # nothing to learn: no cap is allowed at all
            return CurveDecision(self.default_w, f"not capped: a {self.loss_bound:.0%} loss bound allows no cap on "
                                                 f"the pessimistic published curve ({view.job_class or 'unknown'} class)")
        if self.phase == "settled":
            self._check_drift()
        if self.phase == "baseline":
            base = self.levels.get(self.default_w)
            n = base.n if base else 0
            if n < BASE_SAMPLES:
                return CurveDecision(self.default_w, f"probing: baseline at default {n}/{BASE_SAMPLES} samples")
            self.phase, self.probe_w = "probing", self.next_level(self.default_w)
            if self.probe_w is None:  # nothing to probe (the floor is the default)
                return self._settle()
        if self.phase == "probing":
            return self._probe()
        return self._settled_decision()

    def _probe(self) -> CurveDecision:
        lv = self.levels.get(self.probe_w)
        n = lv.n if lv else 0
        if n >= 2:
            loss, ucb = self.loss_bounds(self.probe_w)
            if loss - (ucb - loss) > self.loss_bound:  # clearly over even at the low end: stop now
                return self._settle()
        if n < LEVEL_SAMPLES:
            return CurveDecision(self.probe_w, f"probing: {self.probe_w:.0f} W {n}/{LEVEL_SAMPLES} samples")
        loss, ucb = self.loss_bounds(self.probe_w)
        if loss <= self.loss_bound < ucb and n < LEVEL_MAX_SAMPLES:
            return CurveDecision(self.probe_w, f"probing: {self.probe_w:.0f} W {n}/{LEVEL_MAX_SAMPLES} samples "
                                               f"(loss {loss:.1%}, not yet sure it is within {self.loss_bound:.0%})")
        nxt = self.next_level(self.probe_w)
        if ucb > self.loss_bound or nxt is None:
            return self._settle()
        self.probe_w = nxt
        return CurveDecision(nxt, f"probing: {nxt:.0f} W 0/{LEVEL_SAMPLES} samples")

    def admissible(self) -> list[float]:
        """Probed levels (default included) whose loss's upper confidence bound is in the bound.
        A level under the floor (a budget held the job there) is never chosen for efficiency."""
        out = [self.default_w] if self.default_w in self.levels else []
        for w, lv in self.levels.items():
            if (self.floor_w - 1e-6 <= w < self.default_w and lv.n >= LEVEL_SAMPLES
                    and self.loss_bounds(w)[1] <= self.loss_bound):
                out.append(w)
        return sorted(out, reverse=True)

    def _settle(self) -> CurveDecision:
        self.phase = "settled"
        ok = self.admissible()
        best = self.default_w
        if ok:
            e = {w: self.energy_per_work(w) for w in ok}
            low = min(e.values())
            best = max(w for w in ok if e[w] <= low * (1.0 + TIE))  # ties → the higher cap
        self.chosen_w = best
        self.recent = []
        return self._settled_decision()

    def _cached(self, name: str, compute):
        hit = self._cache.get(name)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        value = compute()
        self._cache[name] = (self._version, value)
        return value

    def _settled_decision(self) -> CurveDecision:
        return self._cached(f"settled:{self.chosen_w}", self._settled_decision_now)

    def _settled_decision_now(self) -> CurveDecision:
        w = self.chosen_w if self.chosen_w is not None else self.default_w
        loss, ucb = self.loss_bounds(w) if w != self.default_w else (0.0, 0.0)
        where = "default" if w >= self.default_w else f"{w:.0f} W"
        return CurveDecision(w, f"learned curve n={self.samples}: {where}, loss {loss:.1%} (≤ {ucb:.1%} at 97.7 %)"
                                f" within {self.loss_bound:.0%}", learned=True)

    def _check_drift(self) -> None:
        """Re-profile when the rate at the settled level leaves what it was: the mean of the last
        DRIFT_SAMPLES against the mean of every earlier sample there, outside the noise band."""
        lv = self.levels.get(self.chosen_w) if self.chosen_w is not None else None
        if lv is None or len(self.recent) < DRIFT_SAMPLES or lv.n < DRIFT_SAMPLES + LEVEL_SAMPLES:
            return
        n_ref = lv.n - DRIFT_SAMPLES
        recent_sum = sum(lv.rates[-DRIFT_SAMPLES:])
        ref = (lv.rate_sum - recent_sum) / n_ref
        if ref <= 0:
            return
        now = recent_sum / DRIFT_SAMPLES
        band = max(DRIFT_MIN, Z * self.sigma_rel() * math.sqrt(1.0 / DRIFT_SAMPLES + 1.0 / n_ref))
        if abs(now / ref - 1.0) > band:
            self.reprobes += 1
            self._version += 1
            self.levels.clear()
            self.phase, self.chosen_w, self.probe_w, self.recent = "baseline", None, None, []

    def throughput_table(self) -> tuple[np.ndarray, np.ndarray]:
        return self._cached("table", self._throughput_table_now)

    def _throughput_table_now(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured (cap_w ascending, relative throughput at its lower confidence bound), closed
        by (default, 1): what budgets may price this job's caps with."""
        xs, rs = [], []
        for w in sorted(self.levels):
            if w < self.default_w and self.levels[w].n >= 2:
                xs.append(w)
                rs.append(min(max(1.0 - self.loss_bounds(w)[1], 0.0), 1.0))
        xs.append(self.default_w)
        rs.append(1.0)
        for k in range(len(rs) - 2, -1, -1):  # monotone, pessimistically: no higher cap is slower
            rs[k] = min(rs[k], rs[k + 1])
        return np.asarray(xs, float), np.asarray(rs, float)


class JobCurves:
    """Every running job's sampler and curve; finished jobs are forgotten."""

    def __init__(self, probe_step_w: float = 50.0):
        self.probe_step_w = probe_step_w
        self.samplers: dict[str, ProgressSampler] = {}
        self.curves: dict[str, JobCurve] = {}

    def sample(self, now_ns: int, view: JobView, report: tuple[int, float] | None) -> RateSample | None:
        sampler = self.samplers.setdefault(view.job, ProgressSampler())
        return sampler.observe(now_ns, view, report)

    def decide(self, view: JobView, sample: RateSample | None) -> CurveDecision:
        curve = self.curves.get(view.job)
        if curve is None:
            curve = self.curves[view.job] = JobCurve(view, self.probe_step_w)
        if sample is not None:
            curve.add(sample)
        return curve.decide(view)

    def forget_except(self, running: set[str]) -> None:
        for book in (self.samplers, self.curves):
            for job in [j for j in book if j not in running]:
                del book[job]
