"""What the optimizer may do to a job it cannot measure: a static per-class cap, bounded by the
pessimistic end of the published power-capping curves.

A job that reports no progress gives the optimizer no way to see what a cap costs it. Such a job
gets only the operator's configured static cap for its class (``[optimizer]
static_cap_fraction``, a fraction of the GPU's max limit; the MIT Lincoln Lab approach: LLSC caps
its V100/A100 fleet at 60-80 % of TDP for training and inference alike, reference §3.3), and never
deeper than the cap at which the **most sensitive** published job of its class loses its loss
bound (:data:`PESSIMISTIC`). A class with no static policy, or unknown, is not capped.

The same floor bounds the exploration of jobs that do report progress (``job_curves``): their
probes never go below it, so a probe cannot break the bound of a job inside the published spread.

The pessimistic curves are data copied here (the optimizer never imports the simulator), each
point with its source; ``tests/optimizer/test_static_policy.py`` holds them to the published
points. Axis: cap as a fraction of the GPU's maximum power limit (Zeus's axis, PL / max), value:
throughput relative to the job's own at the max limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Pessimistic end of the published throughput-vs-cap curves, copied as data (the optimizer
# never imports the simulator; the twin holds the same sweep, simulator/capping_curves.py, and
# docs/published-capping.md lists it as the 'anchor-pess' rows): Zeus NSDI'23 trace
# ml-energy/zeus examples/research_reproducibility/zeus_nsdi23/trace/summary_power_a40.csv,
# Sentiment140 BERT-base, batch 128, on an A40 — the steepest energy-vs-slowdown sweep of the
# published spread (−10.6 % GPU energy at +5 % time; the medians and MIT Lincoln Lab's
# −12 to −15 % lie above it). Rows: (power limit W, time per epoch s, average power W).
ZEUS_A40_BERT_SENTIMENT_B128 = (
    (300, 2002.34, 274.61), (250, 2079.35, 241.47), (200, 2226.90, 196.07), (150, 3334.48, 150.30),
    (100, 8836.89, 103.88))
# No per-class or H100 cap sweep is published (POLCA and ML.ENERGY publish draw, not sweeps), so
# every class is bounded by this one sweep. Its axis is the job's own power ratio (power under the
# cap / power at the max limit); as a fraction of the GPU's max limit it is the worst case: a job
# drawing less than the max at its default runs at a higher ratio under the same cap and loses
# less (a cap above its draw costs it nothing).
_P0 = ZEUS_A40_BERT_SENTIMENT_B128[0]
PESSIMISTIC_POINTS: tuple[tuple[float, float], ...] = tuple(sorted(
    [(0.0, 0.0)] + [(p / _P0[2], _P0[1] / t) for _, t, p in ZEUS_A40_BERT_SENTIMENT_B128]))
PESSIMISTIC: dict[str, tuple[tuple[float, float], ...]] = {
    cls: PESSIMISTIC_POINTS for cls in ("training", "fine_tuning", "inference", "batch")}
_TABLE = {cls: (np.array([f for f, _ in pts]), np.array([r for _, r in pts])) for cls, pts in PESSIMISTIC.items()}
# A class without a published curve is judged by the steepest curve of all (here: the same one).
_WORST = _TABLE["training"]


def pessimistic_throughput(job_class: str, cap_fraction) -> np.ndarray:
    """Relative throughput at the pessimistic end of the published curves for *job_class* at cap
    fraction(s) of max (array), interpolated between the published points (toward 0 at 0)."""
    f = np.clip(np.asarray(cap_fraction, dtype=float), 0.0, 1.0)
    xs, rs = _TABLE.get(job_class, _WORST)
    return np.interp(f, xs, rs)


@lru_cache(maxsize=256)
def pessimistic_min_fraction(job_class: str, loss_bound: float) -> float:
    """The lowest cap (fraction of max) at which even the pessimistic curve of *job_class* loses
    no more than *loss_bound*; 1.0 where no cap that bites is allowed (e.g. bound 0)."""
    if loss_bound <= 0:
        return 1.0
    fine = np.linspace(0.0, 1.0, 1001)
    ok = (1.0 - pessimistic_throughput(job_class, fine)) <= loss_bound + 1e-12
    # the curve is monotone: the first admissible point starts the admissible range
    return float(fine[np.argmax(ok)])


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
