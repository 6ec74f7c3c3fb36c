"""Power → throughput curves per GPU model and job class: published priors and offline fits.

Shape (relative throughput of a job under a power cap, 1.0 = uncapped)::

    r(f) = 1                      if f >= s
    r(f) = (f / s) ** beta        otherwise

where ``f = cap_w / max_w`` is the cap as a fraction of the GPU's maximum limit, ``s`` is the
*saturation* fraction (what the job draws uncapped, as a share of max) and ``beta`` the
elasticity of throughput to power below it. It is the shape of the published sweeps: flat
until the cap bites, then a concave fall (Zeus NSDI'23 traces, reference §3.6: at ~0.7 of max
power training runs ~5 % slower, at ~0.6 ~9–11 % slower; memory-bound LLM decode barely
changes until the cap reaches its ~0.6 × max draw).

The priors below encode those published figures. They are a starting point, never truth, and
the daemon does **not** decide on them: it caps a job only on that job's own measured curve
(``optimizer.job_curves``, from its ``progress``) or, without progress, on a static policy
bounded by the pessimistic end of the published curves (``optimizer.static_policy``). What
stays here serves the offline fits and :func:`power_caps.decide_caps`' curve path (a caller
that passes no per-job target, e.g. a what-if on a known curve):

- :class:`CurveLearner` / :func:`fit_beta`: samples ``x = cap / the job's own uncapped draw``
  against the measured relative throughput there (a job's rate under the cap over its own rate
  at its default limit, e.g. from a Zeus-style sweep); ``beta`` is fitted in log–log space and
  shrunk toward the prior with the amount of evidence.
- :func:`fit_curve` (e.g. a sweep of one job): ``s`` and ``beta`` from relative throughput
  against ``power_limit_w / power_limit_max_w`` when per-job demand is unknown. Pooling jobs of
  different demand this way flattens the slope.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Curve:
    """A relative-throughput curve. ``saturation`` and ``f`` are fractions of max power (0..1].

    A learned curve also carries a monotone table ``(table_x, table_r)``: throughput measured
    at ``x = cap / the job's uncapped demand`` over the range the fleet has run at. Inside the
    table it is used as measured (a low quantile per bin, see :func:`fit_beta`); below its
    lowest point throughput is extrapolated
    pessimistically — over one short hop (:data:`EXPLORE_HOP`) with ``explore_beta``, a bound
    from the slope measured at the table's low end, then with :data:`EXPLORE_BETA` — so caps
    deeper than anything seen are reached only in small, checked steps (safety-first
    exploration)."""

    saturation: float
    beta: float
    source: str = "prior"  # "prior", "learned", or "blend"
    samples: int = 0
    table_x: tuple = ()
    table_r: tuple = ()
    explore_beta: float = 0.0  # elasticity assumed just below the table (0: EXPLORE_BETA)

    def throughput_x(self, x) -> np.ndarray:
        """Relative throughput at ``x = cap / demand`` (array; ≥ 1 means the cap does not bite)."""
        x = np.clip(np.asarray(x, dtype=float), 1e-6, 1.0)
        if not self.table_x:
            return x ** self.beta
        xs, rs = np.asarray(self.table_x), np.asarray(self.table_r)
        inside = np.interp(x, xs, rs)
        far = max(EXPLORE_BETA, self.beta)
        near = min(self.explore_beta or far, far)
        # one short hop (EXPLORE_HOP of x) below the data at the measured-slope bound, then the
        # pessimistic elasticity
        x_hop = xs[0] * (1.0 - EXPLORE_HOP)
        below = rs[0] * (np.maximum(x, x_hop) / xs[0]) ** near * (np.minimum(x, x_hop) / x_hop) ** far
        return np.where(x < xs[0], below, inside)

    def throughput(self, cap_fraction) -> np.ndarray:
        """Relative throughput (0..1] at cap fraction(s) ``cap_fraction``."""
        f = np.asarray(cap_fraction, dtype=float)
        return relative_throughput(f, self.saturation, self.beta)

    def to_dict(self) -> dict:
        return asdict(self)


def relative_throughput(f, saturation, beta) -> np.ndarray:
    """Vectorised r(f): broadcast over arrays of cap fractions, saturations and betas."""
    f = np.asarray(f, dtype=float)
    s = np.asarray(saturation, dtype=float)
    b = np.asarray(beta, dtype=float)
    ratio = np.clip(f / np.maximum(s, 1e-6), 1e-6, 1.0)
    return ratio ** b


# Priors per job class (see module docstring for where the numbers come from).
#   training/fine_tuning: compute-bound, runs against the limit (H100 GEMM draws 694 of 700 W);
#     0.7^beta ≈ 0.945 and 0.6^beta ≈ 0.91 in the Zeus medians → beta ≈ 0.18.
#   inference: LLM decode is memory-bound (H100 copy kernel draws ~400 of 700 W → s ≈ 0.6);
#     prefill scales with power, hence a steeper beta once the cap bites.
#   batch: mixed, between the two.
PRIORS: dict[str, Curve] = {
    "training": Curve(0.95, 0.18),
    "fine_tuning": Curve(0.95, 0.18),
    "inference": Curve(0.60, 0.35),
    "batch": Curve(0.90, 0.22),
}
DEFAULT_PRIOR = Curve(0.95, 0.18)

# Below the measured range, assume throughput falls this steeply with power (pessimistic: the
# published curves' local elasticity stays below ~0.45 above 0.5 × demand, reference §3.6).
EXPLORE_BETA = 0.5
# Where the table is well measured near its low end, the first EXPLORE_HOP (relative x) below it
# is extrapolated with EXPLORE_SAFETY × the elasticity measured over its lowest EXPLORE_SPAN of x
# (at least EXPLORE_BETA_MIN, at most EXPLORE_BETA): a curve's slope does not jump by more than
# that factor within a few percent of power (the published curves' kinks: ≤ 2.2×), and each hop is
# measured before the next. Without enough data there, EXPLORE_BETA throughout.
EXPLORE_SAFETY = 2.5
EXPLORE_BETA_MIN = 0.2
EXPLORE_HOP = 0.03
EXPLORE_SPAN = 0.05
EXPLORE_MIN_SAMPLES = 100  # samples in that lowest span needed to trust its slope
BIN_X = 0.01  # table resolution in x
MIN_BIN_SAMPLES = 5
TABLE_Z = 3.0  # table value = bin mean − TABLE_Z σ of the throughput measured in the bin
TABLE_SIGMA_PSEUDO = 20.0

# Evidence needed before the data outweighs the prior (samples, pseudo-count).
PRIOR_WEIGHT_SAMPLES = 200
MIN_CAP_SPREAD = 0.08  # caps must vary by ≥ 8 % of max, or the slope is unidentifiable

_S_GRID = np.linspace(0.35, 1.0, 27)
_B_GRID = np.linspace(0.03, 1.2, 40)


def prior_for(job_class: str) -> Curve:
    return PRIORS.get(job_class, DEFAULT_PRIOR)


def fit_curve(cap_fraction: np.ndarray, rel_throughput: np.ndarray, job_class: str) -> Curve:
    """Fit (saturation, beta) to samples of (cap fraction, relative throughput) of busy GPUs.

    ``rel_throughput`` may carry a per-job scale (a job that uses 80 % of the GPU reads 0.8
    uncapped), so a free amplitude is fitted alongside the shape and dropped. With few
    samples or caps that never varied the prior is returned; in between, the parameters are
    a weighted blend (pseudo-count :data:`PRIOR_WEIGHT_SAMPLES`).
    """
    prior = prior_for(job_class)
    f = np.asarray(cap_fraction, dtype=float)
    r = np.asarray(rel_throughput, dtype=float)
    ok = np.isfinite(f) & np.isfinite(r) & (f > 0) & (r > 0)
    f, r = f[ok], r[ok]
    n = int(f.size)
    if n < 20 or (f.max() - f.min()) < MIN_CAP_SPREAD:
        return Curve(prior.saturation, prior.beta, "prior", n)
    # Grid search: shape g[s, b, i]; best amplitude in closed form; sum of squared errors.
    g = relative_throughput(f[None, None, :], _S_GRID[:, None, None], _B_GRID[None, :, None])
    amp = (g * r).sum(-1) / np.maximum((g * g).sum(-1), 1e-12)
    sse = ((amp[..., None] * g - r) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(sse)), sse.shape)
    s_fit, b_fit = float(_S_GRID[i]), float(_B_GRID[j])
    w = n / (n + PRIOR_WEIGHT_SAMPLES)
    s = w * s_fit + (1 - w) * prior.saturation
    b = w * b_fit + (1 - w) * prior.beta
    return Curve(round(s, 4), round(b, 4), "learned" if w > 0.9 else "blend", n)



def curve_for(curves: dict[tuple[str, str], Curve], model: str, job_class: str) -> Curve:
    return curves.get((model, job_class)) or prior_for(job_class)


def fit_beta(x: np.ndarray, rel_throughput: np.ndarray, job_class: str) -> Curve:
    """Learn the elasticity ``beta`` from samples where the cap bites: ``x = cap / the job's
    own uncapped demand`` (< 1) and ``rel_throughput`` = relative throughput there.

    Least squares through the origin in log–log space (``ln r = beta · ln x``), shrunk toward
    the prior with pseudo-count :data:`PRIOR_WEIGHT_SAMPLES`. Samples where the cap does not
    bite carry no information about the slope and are dropped. The saturation stays the
    class prior: per GPU it is replaced by the demand observed on that GPU."""
    prior = prior_for(job_class)
    x = np.asarray(x, dtype=float)
    r = np.asarray(rel_throughput, dtype=float)
    ok = np.isfinite(x) & np.isfinite(r) & (x > 0.2) & (x < 0.995) & (r > 0.05) & (r <= 1.0)
    x, r = x[ok], r[ok]
    n = int(x.size)
    if n < 20 or (1.0 - x.min()) < MIN_CAP_SPREAD:
        return Curve(prior.saturation, prior.beta, "prior", n)
    lx = np.log(x)
    b_fit = float(np.clip((lx * np.log(r)).sum() / (lx * lx).sum(), 0.01, 2.0))
    w = n / (n + PRIOR_WEIGHT_SAMPLES)
    b = w * b_fit + (1 - w) * prior.beta
    # the measured table: per bin a low quantile of the throughput measured there (mean −
    # TABLE_Z σ), made monotone pessimistically (each point is the minimum of itself and
    # everything at larger x), closed by (1, 1). A quantile, not the mean: a job's draw jitters
    # around the demand remembered for it, so at one x the throughput it gets scatters, and a
    # cap aimed at the bound by the mean would be over it for half the steps. σ per bin is
    # shrunk toward the pooled within-bin σ (TABLE_SIGMA_PSEUDO samples), as 5 samples alone
    # estimate it poorly.
    bins = np.floor(x / BIN_X).astype(int)
    uniq, inv, counts = np.unique(bins, return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=r) / counts
    var = np.maximum(np.bincount(inv, weights=r * r) / counts - means ** 2, 0.0)
    pooled = float((var * counts).sum() / max(counts.sum() - uniq.size, 1))
    var = (var * counts + TABLE_SIGMA_PSEUDO * pooled) / (counts + TABLE_SIGMA_PSEUDO)
    low = np.maximum(means - TABLE_Z * np.sqrt(var), 1e-3)
    keep = counts >= MIN_BIN_SAMPLES
    # each point sits at the mean x of its samples, not the bin centre: a cap explored a little
    # below the lowest bin's samples then extends the table (at the centre it would vanish into
    # that bin, and the exploration below would stall at a bin edge)
    xmean = np.bincount(inv, weights=x) / counts
    tx, tr = xmean[keep], low[keep]
    if tx.size == 0:
        return Curve(prior.saturation, round(b, 4), "blend", n)
    tr = np.minimum.accumulate(np.minimum(tr, 1.0)[::-1])[::-1]
    explore = 0.0
    span = tx <= tx[0] * (1.0 + EXPLORE_SPAN)
    top = int(np.flatnonzero(span)[-1])
    if top > 0 and tx[top] >= tx[0] * (1.0 + EXPLORE_SPAN / 2) and counts[keep][span].sum() >= EXPLORE_MIN_SAMPLES:
        local = math.log(tr[top] / tr[0]) / math.log(tx[top] / tx[0])
        explore = float(np.clip(EXPLORE_SAFETY * local, EXPLORE_BETA_MIN, EXPLORE_BETA))
    if tx[-1] < 1.0:
        tx, tr = np.append(tx, 1.0), np.append(tr, 1.0)
    return Curve(prior.saturation, round(b, 4), "learned" if w > 0.9 else "blend", n,
                 tuple(np.round(tx, 4).tolist()), tuple(np.round(tr, 5).tolist()), round(explore, 4))


class CurveLearner:
    """Collects (x, relative throughput) samples per (GPU model, job class) from each cycle's telemetry
    and refits the curves. Bounded memory: the newest *max_samples* per key."""

    def __init__(self, max_samples: int = 20000):
        from collections import deque

        self.max_samples = max_samples
        self._samples: dict[tuple[str, str], deque] = {}
        self._deque = deque

    def add(self, model: str, job_class: str, x: float, rel_throughput: float) -> None:
        buf = self._samples.get((model, job_class))
        if buf is None:
            buf = self._samples[(model, job_class)] = self._deque(maxlen=self.max_samples)
        buf.append((x, rel_throughput))

    def curves(self) -> dict[tuple[str, str], Curve]:
        out = {}
        for key, buf in self._samples.items():
            arr = np.array(buf, dtype=float).reshape(-1, 2)
            out[key] = fit_beta(arr[:, 0], arr[:, 1], key[1])
        return out
