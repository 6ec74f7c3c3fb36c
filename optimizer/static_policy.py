"""What the optimizer may do to a job it cannot measure: a static per-class cap, bounded by a
true lower bound of the published power-capping curves.

A job that reports no progress gives the optimizer no way to see what a cap costs it. Such a job
gets only the operator's configured static cap for its class (``[optimizer]
static_cap_fraction``, a fraction of the GPU's max limit; the MIT Lincoln Lab approach: LLSC caps
its V100/A100 fleet at 60-80 % of TDP for training and inference alike, reference §3.3), and never
deeper than the cap at which the lower bound of the published sweeps (:func:`pessimistic_throughput`)
loses the class's loss bound. A class with no static policy, or unknown, is not capped.

The same floor bounds the exploration of jobs that do report progress (``job_curves``) and the
demand-response floor (``demand_response``): a cap above it cannot break the bound of a job
inside the published spread, whatever the job's curve does between the published points.

**The bound.** Each published sweep (copied here as data, each with its source; the optimizer
never imports the simulator) gives, per power limit, a point (x, r) on the job's own axes:
x = average power under the limit / at the max limit, r = time at the max / time under the
limit. What is known between two points of a sweep is only that throughput grows with power,
so the safe value there is the LOWER point's r (not the straight line between them), and
below a sweep's lowest point it is 0. The bound is the least of these steps over the sweeps
that span the published spread: Zeus's Sentiment140 BERT loses the most time per joule near the
max, ResNet-50 the most throughput at deep caps (at x = 0.55 ResNet-50 runs at 0.51, BERT at
0.61: the "pessimistic" end by energy is not the lowest by throughput).

**The axis.** The optimizer knows a cap as a fraction f of the GPU's max limit, the sweep's x
is the job's own power ratio. f ≤ x always: a job's draw at the max limit is at most the max,
and under a cap its average is at most the cap and, in every published row, no less than
f × its own draw (A40 ResNet-50 at 200 of 300 W: f = 0.67, x = 0.73; BERT at 150 W: f = 0.50,
x = 0.55); the twin's cap→power (``simulator/capping_curves.py``, a soft minimum of the cap and
the job's draw) keeps it too. As r grows with x, the bound read at f is ≤ the job's r at x.
``tests/optimizer/test_pessimistic_bound_vs_twin.py`` checks it against the twin's truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Published sweeps, rows (power limit W, time per epoch s, average power W), the top row at the
# max limit: Zeus NSDI'23 trace ml-energy/zeus examples/research_reproducibility/zeus_nsdi23/
# trace/summary_power_a40.csv, A40 (100-300 W). The twin is built from the same two
# (simulator/capping_curves.py; docs/published-capping.md, rows 'anchor-opt' and 'anchor-pess').
ZEUS_A40_RESNET50_B128 = (  # ImageNet ResNet-50, batch 128, adadelta
    (300, 3739.50, 244.26), (275, 3777.29, 230.76), (250, 3804.21, 216.22), (225, 3862.42, 198.38),
    (200, 3992.39, 179.23), (175, 4463.24, 160.86), (150, 6147.46, 144.26), (125, 9375.09, 125.06),
    (100, 11009.39, 114.71))
ZEUS_A40_BERT_SENTIMENT_B128 = (  # Sentiment140 BERT-base, batch 128
    (300, 2002.34, 274.61), (250, 2079.35, 241.47), (200, 2226.90, 196.07), (150, 3334.48, 150.30),
    (100, 8836.89, 103.88))
PUBLISHED_SWEEPS = {"zeus-a40-resnet50-b128": ZEUS_A40_RESNET50_B128,
                    "zeus-a40-bert-sentiment140-b128": ZEUS_A40_BERT_SENTIMENT_B128}


def sweep_points(rows) -> tuple[np.ndarray, np.ndarray]:
    """(x, r) of a sweep's rows, ascending in x: x = power / power at the max limit, r = time at
    the max limit / time."""
    _, t0, p0 = rows[0]
    pts = sorted((p / p0, t0 / t) for _, t, p in rows)
    return np.array([x for x, _ in pts]), np.array([r for _, r in pts])


def _step(xs: np.ndarray, rs: np.ndarray, x) -> np.ndarray:
    """A sweep's safe throughput at power ratio(s) *x*: r of its highest point at or below x,
    0 below its lowest point (throughput grows with power, nothing more is known)."""
    k = np.searchsorted(xs, np.asarray(x, dtype=float), side="right") - 1
    return np.where(k >= 0, rs[np.maximum(k, 0)], 0.0)


def lower_bound_points(sweeps) -> tuple[np.ndarray, np.ndarray]:
    """The steps' least over *sweeps*, as breakpoints: (x ascending, r from x up to the next)."""
    pts = [sweep_points(rows) for rows in sweeps]
    xs = np.unique(np.concatenate([x for x, _ in pts] + [np.array([0.0, 1.0])]))
    rs = np.min([_step(x, r, xs) for x, r in pts], axis=0)
    return xs, rs


# No per-class or H100 cap sweep is published (POLCA and ML.ENERGY publish draw, not sweeps), so
# every class is bounded by the same published spread.
CLASSES = ("training", "fine_tuning", "inference", "batch")
_BOUND = lower_bound_points(PUBLISHED_SWEEPS.values())
PESSIMISTIC: dict[str, tuple[tuple[float, float], ...]] = {
    cls: tuple(zip(_BOUND[0].tolist(), _BOUND[1].tolist())) for cls in CLASSES}
_TABLE = {cls: (np.array([f for f, _ in pts]), np.array([r for _, r in pts])) for cls, pts in PESSIMISTIC.items()}
# A class without a published curve is judged by the lowest bound of all (here: the same one).
_WORST = _TABLE["training"]


def pessimistic_throughput(job_class: str, cap_fraction) -> np.ndarray:
    """A lower bound of the relative throughput of any job of *job_class* inside the published
    spread at cap fraction(s) of the GPU's max limit (array; a step function: see the module
    docstring); 1 at the max limit."""
    f = np.clip(np.asarray(cap_fraction, dtype=float), 0.0, 1.0)
    xs, rs = _TABLE.get(job_class, _WORST)
    return _step(xs, rs, f)


@lru_cache(maxsize=256)
def pessimistic_min_fraction(job_class: str, loss_bound: float) -> float:
    """The lowest cap (fraction of max) at and above which the lower bound of *job_class* loses
    no more than *loss_bound*; 1.0 where no cap that bites is allowed (e.g. bound 0)."""
    if loss_bound <= 0:
        return 1.0
    xs, rs = _TABLE.get(job_class, _WORST)
    ok = (1.0 - rs) <= loss_bound + 1e-12  # the steps only rise with x: the first ok one starts the range
    return float(xs[np.argmax(ok)]) if ok.any() else 1.0


@dataclass(frozen=True)
class StaticCap:
    """A static policy's decision for one job: *fraction* of max (1.0: not capped) and why."""

    fraction: float
    label: str


def static_cap(job_class: str, loss_bound: float | None, fractions: dict[str, float]) -> StaticCap:
    """The static cap for a job of *job_class* that reports no progress: the configured fraction,
    never below the pessimistic floor for its loss bound; no cap for an unknown class, a class
    without a loss bound or one without a configured fraction."""
    if not job_class or job_class == "unknown" or loss_bound is None:
        return StaticCap(1.0, "no progress and class unknown: not capped")
    want = fractions.get(job_class)
    if want is None:
        return StaticCap(1.0, f"no progress and no static policy for {job_class}: not capped")
    floor = pessimistic_min_fraction(job_class, loss_bound)
    if floor >= 1.0:
        return StaticCap(1.0, f"static policy: {job_class} bound {loss_bound:.0%} allows no cap")
    frac = max(want, floor)
    why = "" if frac == want else f", raised to the pessimistic floor for its {loss_bound:.0%} bound"
    return StaticCap(frac, f"static policy: {job_class} {frac:.2f} x max{why}")
