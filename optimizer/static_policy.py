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

import numpy as np

# Pessimistic end of the published throughput-vs-cap curves per job class, as
# ((cap fraction of max, relative throughput), ...), ascending in the fraction, ending at (1, 1).
# Sources (reference energy-and-gpu.md §3.3, §3.6; docs/published-capping.md):
# - training / fine_tuning: the steepest Zeus NSDI'23 sweeps (V100: 0.6 PL -> T/Tmax 1.11 median,
#   the slow end of the spread ~1.20; 0.7 PL -> 1.06 median, ~1.10 at the slow end), Patel et al.
#   POLCA (ASPLOS'24) training: ~0.85 x max costs up to ~3-5 %; "H100 at 600 W typically loses
#   10-15 % step throughput" (factryze.ai, anecdotal: not used as the bound);
# - inference (LLM prefill-heavy serving, the sensitive end of ML.ENERGY / POLCA inference):
#   latency-bound, loss bound 0 in the default config, so any cap that bites is out;
# - batch: between the two (image/embedding batch jobs, compute-bound like training).
PESSIMISTIC: dict[str, tuple[tuple[float, float], ...]] = {
    "training": ((0.4, 0.58), (0.5, 0.72), (0.6, 0.83), (0.7, 0.91), (0.8, 0.955), (0.9, 0.985), (1.0, 1.0)),
    "fine_tuning": ((0.4, 0.58), (0.5, 0.72), (0.6, 0.83), (0.7, 0.91), (0.8, 0.955), (0.9, 0.985), (1.0, 1.0)),
    "inference": ((0.4, 0.55), (0.5, 0.68), (0.6, 0.80), (0.7, 0.89), (0.8, 0.95), (0.9, 0.985), (1.0, 1.0)),
    "batch": ((0.4, 0.58), (0.5, 0.72), (0.6, 0.83), (0.7, 0.91), (0.8, 0.955), (0.9, 0.985), (1.0, 1.0)),
}
# A class without a published curve is judged by the steepest curve of all.
_ALL = np.array([[r for _, r in pts] for pts in PESSIMISTIC.values()])
_XS = np.array([f for f, _ in next(iter(PESSIMISTIC.values()))])
assert all(tuple(f for f, _ in pts) == tuple(_XS) for pts in PESSIMISTIC.values()), "one fraction grid"
_TABLE = {cls: np.array([r for _, r in pts]) for cls, pts in PESSIMISTIC.items()}
_WORST = _ALL.min(axis=0)


def pessimistic_throughput(job_class: str, cap_fraction) -> np.ndarray:
    """Relative throughput at the pessimistic end of the published curves for *job_class* at cap
    fraction(s) of max (array). Below the lowest published point: linear toward 0 at 0."""
    f = np.clip(np.asarray(cap_fraction, dtype=float), 0.0, 1.0)
    rs = _TABLE.get(job_class, _WORST)
    return np.interp(f, np.concatenate(([0.0], _XS)), np.concatenate(([0.0], rs)))


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
