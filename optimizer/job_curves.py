"""Each job's own power-cap curve, learned from its real progress (Zeus-style just-in-time
profiling, You et al., NSDI'23, reference §3.1), with the noise of real progress in mind.

The signal is the ``progress`` measurement: a job's ``work_done`` counter in its own unit
(steps, tokens, samples), stored raw. Per job and cycle, :class:`ProgressSampler` turns two
reports into one **rate sample** (work per second per GPU of the job) if, and only if, the
job's cap stayed the same over the whole interval; a counter that went down (the job restarted
from a checkpoint) starts a new interval, and an interval that straddles a cap change is thrown
away. A job's throughput under a cap is its rate there relative to **its own** rate at its
default (uncapped) limit: units and job sizes never mix.

Safety rests on two bounds, whichever is tighter: the job's **own samples** (a one-sided upper
confidence bound, :data:`Z`, noise estimated from the job's samples, never below
:data:`SIGMA_FLOOR`) and a **prediction** made before a level is tried: the loss's upper bound at
a level above plus the largest throughput drop that any published sweep (:data:`SWEEPS`, Zeus
NSDI'23's steepest and gentlest A40 sweeps, the twin's two ends) shows between the two levels'
power ratios, on the job's **own axis** (GPU draw under the cap / its own draw at default, the axis
on which the sweeps transfer; a cap as a fraction of the GPU's max limit is not, see
``static_policy``). :class:`JobCurve` runs a small state machine per job, as Zeus's power-limit
optimizer does (Ready → Warmup → Profiling → Done):

- **baseline**: at the default limit until :data:`BASE_SAMPLES` rate samples (and the job's own
  draw) are in;
- **probing**: straight to the lowest cap the published sweeps allow for the class bound less
  :data:`LOSS_MARGIN` from the job's own draw (no published job loses more there), then, while
  the job's samples prove a level within the bound with room to spare, down in bounded steps
  (at most ``probe_step_w``, at least :data:`MIN_STEP_W`) as far as the prediction from that
  level allows; :data:`LEVEL_SAMPLES` samples at each level (up to :data:`LEVEL_MAX_SAMPLES` while
  the evidence is undecided). A level whose samples put it over the bound (by
  :data:`REJECT_Z` standard errors: a job steeper than anything published) ends the probe;
- **settled**: at the admissible level (default included) with the least node energy per unit of
  work, ``(GPU draw + host share) / rate`` (the draw measured there, not modelled), ties to the
  higher cap. The rate at that level keeps being sampled: evidence over the bound moves the job
  back up; a tighter bound after :data:`RETRY_SAMPLES` more samples may allow one more step down;
  when the mean of the last :data:`DRIFT_SAMPLES` leaves the settled mean by more than the noise
  band (:data:`DRIFT_MIN` or :data:`Z_DRIFT` standard errors, whichever is wider), the job changed (a
  new phase, a new dataset): the curve is forgotten and the job is re-profiled from its baseline.

Every decision carries its reason (``probing …``, ``learned curve n=… …``), so advise mode says
why and enforce mode acts only on measured, bounded steps. Pure logic: no store, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from optimizer.static_policy import ZEUS_A40_BERT_SENTIMENT_B128

BASE_SAMPLES = 6  # rate samples at the default limit before the first probe
LEVEL_SAMPLES = 3  # rate samples per probed level, at least
# ... and up to this many while the loss's point estimate is within the bound but its upper
# confidence bound is not yet (a sequential test: more evidence before giving up a level)
LEVEL_MAX_SAMPLES = 8
DRIFT_SAMPLES = 6  # the settled level's recent window checked for drift
# ... outside this many standard errors: it is checked at every sample, and each false alarm
# costs a whole baseline at default (2 standard errors fired on a third of the twin's jobs)
Z_DRIFT = 4.0
RETRY_SAMPLES = 6  # more samples at the settled level before one more step down is considered
Z = 2.0  # one-sided confidence multiplier on the loss (≈ 97.7 %)
# A step below what the published sweeps allow rests on the job's own samples alone: a stricter
# bound (≈ 99.9 %) on more of them, as each settled job asks again every RETRY_SAMPLES
Z_DEEPER = 3.0
REJECT_Z = 2.0  # a level is over the bound when its loss less this many standard errors is
# Relative noise of one rate sample assumed at least (the progress a job reports is jittery, ±3 %
# per report; a sample averages the reports of a cycle, so the floor is below 3 %).
SIGMA_FLOOR = 0.01
# Aim this far inside each loss bound: the job's GPUs' demand jitters from step to step (a
# synchronous job runs at its slowest GPU) and a cap's power ratio is read, not set.
LOSS_MARGIN = 0.005
DRAW_SAMPLES = 30  # cycles of draw at default remembered
# A cap is read against the top draw plus this many standard deviations of its cycle-to-cycle
# jitter: the bound is graded at every step, and a step when a GPU draws more runs slower
DRAW_Z = 3.0
# ... never a smaller deviation than this share of the draw (NVML reads to a few W). The sd of a
# few cycles' top draws is itself uncertain (7 cycles read 2.6 W on a twin job whose GPUs swing
# 10 W each): the GPUs' spread within each cycle, pooled, bounds it from below.
DRAW_SD_FLOOR = 0.003
DRIFT_MIN = 0.03  # a settled rate moving less than this (relative) is noise, never drift
MIN_SAMPLE_S = 20.0  # two reports closer than this make no rate sample (wait for more)
MIN_STEP_W = 10.0  # a probe lowers the cap by at least this (less saves too little to measure)
TIE = 0.005  # energies per work within 0.5 % are a tie: the higher cap wins
LEVEL_TOLERANCE_W = 1.0  # a job's GPUs within this of each other are at one level

# The published sweeps the prediction takes its largest drop from (rows: power limit W, time per
# epoch s, average power W; the top row at the max limit), read on the job's own axis: Zeus
# NSDI'23 trace ml-energy/zeus examples/research_reproducibility/zeus_nsdi23/trace/
# summary_power_a40.csv, A40: Sentiment140 BERT-base (static_policy's, the most time per joule
# near the max) and ImageNet ResNet-50, batch 128, adadelta (its knee below a 0.73 power ratio is
# steeper than BERT's there); the twin's two ends (docs/published-capping.md).
ZEUS_A40_RESNET50_B128 = (
    (300, 3739.50, 244.26), (275, 3777.29, 230.76), (250, 3804.21, 216.22), (225, 3862.42, 198.38),
    (200, 3992.39, 179.23), (175, 4463.24, 160.86), (150, 6147.46, 144.26), (125, 9375.09, 125.06),
    (100, 11009.39, 114.71))


def _own_axis(rows) -> tuple[np.ndarray, np.ndarray]:
    """(x, r) ascending, closed by (0, 0): x = power / power at the max limit, r = time there / time."""
    _, t0, p0 = rows[0]
    pts = sorted([(0.0, 0.0)] + [(p / p0, t0 / t) for _, t, p in rows])
    return np.array([x for x, _ in pts]), np.array([r for _, r in pts])


SWEEPS = (_own_axis(ZEUS_A40_RESNET50_B128), _own_axis(ZEUS_A40_BERT_SENTIMENT_B128))


def spread_drop(x_hi: float, x_lo) -> np.ndarray:
    """The largest relative-throughput drop any published sweep shows from power ratio *x_hi*
    down to *x_lo* (array): a job inside their spread (a mix of them) drops no more."""
    x_lo = np.clip(np.asarray(x_lo, dtype=float), 0.0, 1.0)
    x_hi = min(max(float(x_hi), 0.0), 1.0)
    return np.max([np.interp(x_hi, xs, rs) - np.interp(x_lo, xs, rs) for xs, rs in SWEEPS], axis=0)


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
    floor_w: float  # the lowest cap a probe may reach (policy floor, hardware min)
    power_max_w: float = float("nan")  # the draw of the job's hungriest GPU now (a synchronous job runs at its pace)
    power_sd_w: float = float("nan")  # the sd of its GPUs' draws now (across GPUs)


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
        self.draws: list[float] = []  # the job's hungriest GPU's draw at each cycle at default
        self.spreads: list[float] = []  # the variance of its GPUs' draws at each such cycle
        self.n_gpus = view.n_gpus
        self.pred: dict[float, float] = {}  # level → the loss bound predicted for it before it was tried
        self.rejected: set[float] = set()  # levels the job's own evidence put over its bound
        self._settled_n = 0  # samples at the chosen level when it was chosen (deeper tries are spaced)
        self._checked = -1  # the sample version the settled level was last checked at
        self._se_memo: tuple[tuple[int, float, float] | None, tuple[float, float]] = (None, (0.0, 0.0))
        self._draw_stats = (float("nan"), 0.0)  # mean and sd of the top draws at default
        self._version = 0  # bumped with every sample: cached summaries are valid while it holds
        self._cache: dict[str, tuple[int, object]] = {}
        self._set_view(view)

    def _set_view(self, view: JobView) -> None:
        # levels are whole watts (NVML sets milliwatts, agents may round): a probe's level and
        # the limit read back match by key
        self.default_w = float(round(view.default_w))
        self.floor_w = float(min(math.ceil(view.floor_w - 1e-9), self.default_w))
        self.loss_bound = view.loss_bound
        self.aim = view.loss_bound - LOSS_MARGIN  # what a probe may be predicted to lose at most
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

    def loss_se(self, level_w: float) -> tuple[float, float]:
        """(point estimate, standard error) of the throughput loss at *level_w* against the job's
        own default-limit rate (delta method on the ratio of two means); (nan, inf) unmeasured."""
        w = float(round(level_w))
        if self._se_memo[0] == (self._version, w, self.default_w):  # a cycle asks several times; samples unchanged
            return self._se_memo[1]
        base, lv = self.levels.get(self.default_w), self.levels.get(w)
        if base is None or lv is None or not base.n or not lv.n:
            out = (float("nan"), float("inf"))
        else:
            r = lv.mean() / max(base.mean(), 1e-12)
            out = (1.0 - r, r * self.sigma_rel() * math.sqrt(1.0 / lv.n + 1.0 / base.n))
        self._se_memo = ((self._version, w, self.default_w), out)
        return out

    def loss_bounds(self, level_w: float) -> tuple[float, float]:
        """(point estimate, upper confidence bound) of the loss at *level_w* from its samples alone."""
        loss, se = self.loss_se(level_w)
        return loss, loss + Z * se

    def loss_ucb(self, level_w: float, z: float = Z, min_n: int = LEVEL_SAMPLES) -> float:
        """The tighter of two upper bounds on the loss at *level_w*: its own samples' (*z*
        standard errors, once it has *min_n*) and the one predicted before it was tried (a level
        above plus the largest drop the published sweeps show between the two power ratios)."""
        w = float(round(level_w))
        if w >= self.default_w:
            return 0.0
        lv = self.levels.get(w)
        if lv is not None and lv.n >= min_n:
            loss, se = self.loss_se(w)
            measured = loss + z * se
        else:
            measured = float("inf")
        return min(measured, self.pred.get(w, float("inf")))

    def over_bound(self, level_w: float) -> bool:
        """The job's own samples say the level loses more than the bound (by REJECT_Z standard errors)."""
        w = float(round(level_w))
        lv = self.levels.get(w)
        if w >= self.default_w or lv is None or lv.n < 2:
            return w in self.rejected
        loss, se = self.loss_se(w)
        if loss - REJECT_Z * se > self.loss_bound:
            self.rejected.add(w)
        return w in self.rejected

    def energy_per_work(self, level_w: float) -> float:
        lv = self.levels[float(round(level_w))]
        return (lv.power() + self.host_share_w) / max(lv.mean(), 1e-12)

    def observe_draw(self, view: JobView) -> None:
        """At the default limit, note the draw of the job's hungriest GPU (its x = 1) and the
        spread of its GPUs' draws."""
        if view.level_w is not None and abs(view.level_w - self.default_w) < LEVEL_TOLERANCE_W:
            top = view.power_max_w if math.isfinite(view.power_max_w) else view.power_w
            self.draws = (self.draws + [float(top)])[-DRAW_SAMPLES:]
            if view.n_gpus >= 2 and math.isfinite(view.power_sd_w):
                self.spreads = (self.spreads + [float(view.power_sd_w) ** 2])[-DRAW_SAMPLES:]
            self.n_gpus = view.n_gpus
            self._draw_stats = self._draw_stats_now()

    def own_draw_w(self, z: float = DRAW_Z) -> float:
        """The job's own draw at its default limit, high side: its hungriest GPU's mean plus *z*
        standard deviations over the cycles seen (GPUs' demand jitters from step to step and a
        synchronous job runs at its slowest GPU's pace, so a cap is read against the top draw);
        *z* 0: the typical top draw, at which a level's measured (mean) loss holds."""
        mean, sd = self._draw_stats
        return mean + z * sd

    def _draw_stats_now(self) -> tuple[float, float]:
        d = self.draws
        if not d:
            return float("nan"), 0.0
        mean = sum(d) / len(d)
        sd = DRAW_SD_FLOOR * mean
        if len(d) >= 2:  # the top draw's own sd over cycles, one standard error high (few cycles)
            var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
            sd = max(sd, math.sqrt(var) * (1.0 + 1.0 / math.sqrt(2.0 * (len(d) - 1))))
        if self.spreads and self.n_gpus >= 2:
            # the GPUs' spread, pooled over cycles (many more readings), as the sd of the top of
            # n: about 1.28 / sqrt(2 ln n) of one GPU's (the Gumbel limit; exact to ~0.1 by n = 4)
            one = math.sqrt(sum(self.spreads) / len(self.spreads))
            sd = max(sd, one * min(1.0, 1.28 / math.sqrt(2.0 * math.log(self.n_gpus))))
        return mean, sd

    # -- decisions ---------------------------------------------------------------------------------

    def deeper(self, level_w: float) -> float | None:
        """The lowest cap below *level_w* whose loss, predicted from *level_w*'s upper bound plus
        the largest drop any published sweep shows between the two power ratios (on the job's own
        axis: draw / its draw at default), stays within the aim; None when no cap at least
        MIN_STEP_W lower qualifies. Below the first level the step is at most ``step_w``."""
        p0 = self.own_draw_w()
        w = float(round(level_w))
        ucb = self.loss_ucb(w, Z_DEEPER, LEVEL_MAX_SAMPLES)
        if not (p0 > 0) or ucb >= self.aim:
            return None
        # the loss measured at w is a mean over steps at the typical top draw; the predicted one
        # must hold at a step when the top GPU draws more (p0): the drop spans both
        x_hi = 1.0 if w >= self.default_w else min(w / self.own_draw_w(0.0), 1.0)
        lowest = max(self.floor_w, w - self.step_w) if w < self.default_w else self.floor_w
        caps = np.arange(w - MIN_STEP_W, lowest - 0.5, -1.0)
        if caps.size == 0:
            return None
        if w >= self.default_w:
            caps = caps[caps <= p0 - MIN_STEP_W]  # a cap above the job's draw saves nothing
        if caps.size == 0:
            return None
        pred = ucb + spread_drop(x_hi, caps / p0)
        ok = np.flatnonzero(pred <= self.aim)
        if ok.size == 0:
            return None
        k = int(ok[-1])  # the drop grows as the cap falls: the last admissible is the deepest
        cap = float(caps[k])
        self.pred[cap] = min(self.pred.get(cap, float("inf")), float(pred[k]))
        return cap

    def decide(self, view: JobView) -> CurveDecision:
        self._set_view(view)
        self.observe_draw(view)
        if self.aim <= 0 or self.floor_w >= self.default_w:  # nothing to learn: no cap is allowed at all
            return CurveDecision(self.default_w, f"not capped: a {self.loss_bound:.0%} loss bound allows no cap "
                                                 f"({view.job_class or 'unknown'} class)")
        if self.phase == "settled":
            self._check_drift()
        if self.phase == "baseline":
            base = self.levels.get(self.default_w)
            n = base.n if base else 0
            if n < BASE_SAMPLES:
                return CurveDecision(self.default_w, f"probing: baseline at default {n}/{BASE_SAMPLES} samples")
            self.phase, self.probe_w = "probing", self.deeper(self.default_w)
            if self.probe_w is None:  # nothing to probe (the job draws too little for any cap to bite)
                return self._settle()
        if self.phase == "probing":
            return self._probe()
        return self._settled_check()

    def _probe(self) -> CurveDecision:
        w = self.probe_w
        if w is None:
            return self._settle()
        lv = self.levels.get(w)
        n = lv.n if lv else 0
        if self.over_bound(w):  # the job's evidence says over: back to the best level above
            return self._settle()
        if n < LEVEL_SAMPLES:
            return CurveDecision(w, f"probing: {w:.0f} W {n}/{LEVEL_SAMPLES} samples")
        if self.loss_ucb(w) <= self.aim:
            nxt = self.deeper(w)
            if nxt is None:
                return self._settle()
            self.probe_w = nxt
            return CurveDecision(nxt, f"probing: {nxt:.0f} W 0/{LEVEL_SAMPLES} samples")
        loss, _ = self.loss_bounds(w)
        if loss <= self.aim and n < LEVEL_MAX_SAMPLES:
            return CurveDecision(w, f"probing: {w:.0f} W {n}/{LEVEL_MAX_SAMPLES} samples "
                                    f"(loss {loss:.1%}, not yet sure it is within {self.loss_bound:.0%})")
        return self._settle()

    def admissible(self) -> list[float]:
        """Tried levels (default included) whose loss's upper bound is within the aim and that no
        evidence puts over the bound. A level under the floor (a budget held the job there) is
        never chosen for efficiency."""
        out = [self.default_w] if self.default_w in self.levels else []
        for w in self.levels:
            if (self.floor_w - 1e-6 <= w < self.default_w and self.loss_ucb(w) <= self.aim
                    and not self.over_bound(w)):
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
        self._settled_n = self.levels[best].n if best in self.levels else 0
        return self._settled_decision()

    def _settled_check(self) -> CurveDecision:
        """A settled job keeps sampling its level: evidence over the bound moves it back up; a
        tighter bound there (more samples) may allow one more step down, tried now and then."""
        if self._checked == self._version:  # nothing new since the last check
            return self._settled_decision()
        self._checked = self._version
        w = self.chosen_w
        if w is not None and w < self.default_w:
            if self.over_bound(w) or self.loss_ucb(w) > self.aim:
                return self._settle()
            lv = self.levels.get(w)
            if lv is not None and lv.n >= self._settled_n + RETRY_SAMPLES and w == min(self.admissible()):
                self._settled_n = lv.n
                nxt = self.deeper(w)
                if nxt is not None:
                    self.phase, self.probe_w = "probing", nxt
                    return CurveDecision(nxt, f"probing: {nxt:.0f} W 0/{LEVEL_SAMPLES} samples")
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
        loss, _ = self.loss_bounds(w) if w != self.default_w else (0.0, 0.0)
        ucb = self.loss_ucb(w)
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
        band = max(DRIFT_MIN, Z_DRIFT * self.sigma_rel() * math.sqrt(1.0 / DRIFT_SAMPLES + 1.0 / n_ref))
        if abs(now / ref - 1.0) > band:
            self.reprobes += 1
            self._version += 1
            self.levels.clear()
            self.pred.clear()
            self.draws, self.spreads = [], []
            self._draw_stats = self._draw_stats_now()
            self.rejected.clear()
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
