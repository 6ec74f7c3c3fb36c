"""GPU throughput and power versus power limit, per job, from published power-cap sweeps.

The axis (the bug this module fixes): a published sweep gives, per power limit, the time and
the average power of a job. Its *cap as a fraction of the GPU's maximum limit* (Zeus's x-axis)
is NOT the fraction of the job's own draw: a job that draws 244 W under a 300 W limit runs at
179 W under a 200 W limit, so the 0.67 cap is a 0.73 power ratio. Here every published row
becomes a point on the job's own axes:

    x = P(cap) / P(max limit)   (power ratio, = energy ratio / time ratio)
    r = T(max limit) / T(cap)   (relative throughput = 1 / slowdown)

and energy per unit of work at that cap is x / r. That pair is what transfers from one GPU to
another; the watts come from the twin's GPU (its demand at the default limit).

**A job's curve**: r(x) interpolated between two published sweeps that bound the spread of
energy-per-work versus slowdown in the operating range (slowdown up to ~25 %):

- optimistic end (u = 0): Zeus NSDI'23 trace, A40, ImageNet ResNet-50, batch 128 (the row
  ``imagenet,resnet50,128,adadelta`` of ``summary_power_a40.csv``): −19 % energy at +5 % time;
- pessimistic end (u = 1): same trace, Sentiment140 BERT-base, batch 128: −10.6 % at +5 %.

The published medians (Zeus A40 −13 % at +5 %, V100 −15 % at +6 %), MIT Lincoln Lab's
transformer training (−15 %, "marginal" time) and Samsi et al.'s LLaMA inference (−23 % at
+6.5 %) fall between the two ends; ``docs/published-capping.md`` holds every point with its
source, and ``tests/simulator/test_capping_curves.py`` holds the curves to them.

A job draws u in [0, 1] (seeded by the job id) when the twin runs with ``curve_end="spread"``;
``"optimistic"`` and ``"pessimistic"`` put every job at one end. No published curve of this
kind exists for the H100 or per job class (POLCA and ML.ENERGY publish power draw, not cap
sweeps), so every class uses this family; what differs by class is the demand (memory-bound
inference draws ~400 W on an H100 and a cap above that costs nothing) and its burstiness.

**Cap → power**: a cap well below the job's average draw pins the average at the cap; near
the average it only clips the bursts. The power ratio is a soft minimum of 1 and cap/demand
with the job's burst width b [assumption: b 0.02–0.08 by class]: s(y) = y − b·ln(1 + e^((y−1)/b)),
y = cap / demand, x = min(y, s(y) / s(default / demand)): 1 at the default limit, where the
published sweeps and the measured duty curve put the job's own power and speed, and never an
average above the cap. Zeus's rows show the effect (DeepSpeech2 on an A40 at 225 W: 162 W average,
below the cap, and +1.6 % time).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

CurveEnd = Literal["optimistic", "pessimistic", "spread"]
CURVE_ENDS = ("optimistic", "pessimistic", "spread")


@dataclass(frozen=True)
class GpuModel:
    """NVML power-limit constraints of a GPU model (W)."""

    name: str
    min_limit_w: float
    max_limit_w: float
    default_limit_w: float


# H100 SXM: [200, 700] W, default 700 (ref §2.2 "Cap range", read on an H100 [measured]).
# A100 SXM4: [100, 400] W, default 400; A40: [100, 300]; V100 (Zeus's, 250 W board): [100, 250]
# (nvidia-smi -q on those boards [mem]; the A40/V100 maxima are the Zeus traces' top limits).
GPU_MODELS: dict[str, GpuModel] = {
    "H100": GpuModel("H100", 200.0, 700.0, 700.0),
    "A100": GpuModel("A100", 100.0, 400.0, 400.0),
    "A40": GpuModel("A40", 100.0, 300.0, 300.0),
    "V100": GpuModel("V100", 100.0, 250.0, 250.0),
}


def gpu_model(name: str) -> GpuModel:
    """The GpuModel for an NVML model name ("NVIDIA H100 80GB HBM3" → H100)."""
    for key, model in GPU_MODELS.items():
        if key.lower() in name.lower():
            return model
    raise KeyError(f"no power-limit data for GPU model {name!r} (known: {', '.join(GPU_MODELS)})")


# Published sweep rows: (power limit W, time per epoch s, average power W), straight from
# ml-energy/zeus examples/research_reproducibility/zeus_nsdi23/trace/summary_power_a40.csv
# (Zeus, You et al., NSDI'23). The top row is the default (maximum) limit.
ZEUS_A40_RESNET50_B128 = (
    (300, 3739.50, 244.26), (275, 3777.29, 230.76), (250, 3804.21, 216.22), (225, 3862.42, 198.38),
    (200, 3992.39, 179.23), (175, 4463.24, 160.86), (150, 6147.46, 144.26), (125, 9375.09, 125.06),
    (100, 11009.39, 114.71))
ZEUS_A40_BERT_SENTIMENT_B128 = (
    (300, 2002.34, 274.61), (250, 2079.35, 241.47), (200, 2226.90, 196.07), (150, 3334.48, 150.30),
    (100, 8836.89, 103.88))


def sweep_points(rows) -> tuple[np.ndarray, np.ndarray]:
    """(x, r) anchors of a sweep, ascending in x and closed by (0, 0)."""
    _, t0, p0 = rows[0]
    x = [p / p0 for _, _, p in rows]
    r = [t0 / t for _, t, _ in rows]
    order = np.argsort(x)
    return (np.concatenate([[0.0], np.asarray(x)[order]]), np.concatenate([[0.0], np.asarray(r)[order]]))


OPTIMISTIC_X, OPTIMISTIC_R = sweep_points(ZEUS_A40_RESNET50_B128)
PESSIMISTIC_X, PESSIMISTIC_R = sweep_points(ZEUS_A40_BERT_SENTIMENT_B128)

# Burst width b of the cap → power soft minimum, drawn per job in this range [assumption: LLM
# training swings between compute and communication phases (POLCA; Microsoft's power
# stabilisation study, arXiv 2508.14318); decode-bound serving draws steadily and no cap above
# its draw binds (Ma et al., arXiv 2605.11999), so its width is small].
BURST_RANGE: dict[str, tuple[float, float]] = {
    "training": (0.02, 0.06), "fine_tuning": (0.03, 0.08), "inference": (0.02, 0.05), "batch": (0.02, 0.05),
}


def _soft_min1(y, b):
    """min(1, y), softened over a width *b*."""
    z = (y - 1.0) / b
    softplus = np.where(z > 30.0, z, np.log1p(np.exp(np.minimum(z, 30.0))))
    return y - b * softplus


def power_ratio(cap_w, demand_w, burst, default_w=700.0) -> np.ndarray:
    """Average power under *cap_w* / average power at the default limit *default_w* (0..1), for
    a job drawing *demand_w* at the default limit: a soft minimum of 1 and cap/demand of width
    *burst* (see the module docstring), scaled so that the default limit gives exactly 1, and
    never above cap/demand (NVML holds the average under the limit)."""
    d = np.maximum(np.asarray(demand_w, dtype=float), 1e-9)
    b = np.maximum(np.asarray(burst, dtype=float), 1e-6)
    y = np.asarray(cap_w, dtype=float) / d
    soft = _soft_min1(y, b) / _soft_min1(np.asarray(default_w, dtype=float) / d, b)
    return np.clip(np.minimum(y, soft), 0.0, 1.0)  # the average never exceeds the cap


def throughput_at_ratio(x, u) -> np.ndarray:
    """Relative throughput (0..1) at power ratio *x* on the curve *u* (0 optimistic … 1 pessimistic)."""
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    opt = np.interp(x, OPTIMISTIC_X, OPTIMISTIC_R)
    pess = np.interp(x, PESSIMISTIC_X, PESSIMISTIC_R)
    return (1.0 - u) * opt + u * pess


def ratio_at_throughput(r: float, u: float) -> float:
    """The power ratio x at which curve *u* runs at relative throughput *r* (inverse, by bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(throughput_at_ratio(mid, u)) < r:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def energy_at_slowdown(slowdown: float, u: float) -> float:
    """Energy per unit of work relative to uncapped (1 = no change) at *slowdown* (T/T0 ≥ 1)."""
    r = 1.0 / slowdown
    return ratio_at_throughput(r, u) / r


@dataclass(frozen=True)
class JobCurve:
    """One job's true power → throughput curve: where it sits in the published spread (*u*)
    and how bursty its draw is (*burst*). Demand is the caller's (it moves with utilisation)."""

    job_class: str
    u: float
    burst: float
    default_limit_w: float = 700.0  # the GPU's default limit, where throughput is 1 (H100)

    def power_w(self, cap_w, demand_w):
        """Average board power (W) under *cap_w* for a GPU of this job drawing *demand_w* at the
        default limit."""
        return power_ratio(cap_w, demand_w, self.burst, self.default_limit_w) * np.asarray(demand_w, dtype=float)

    def throughput(self, cap_w, demand_w):
        """Relative throughput (1 = at the default limit) under *cap_w*."""
        return throughput_at_ratio(power_ratio(cap_w, demand_w, self.burst, self.default_limit_w), self.u)

    def energy_per_work(self, cap_w, demand_w):
        """GPU energy per unit of work relative to the default limit (< 1 saves energy)."""
        x = power_ratio(cap_w, demand_w, self.burst, self.default_limit_w)
        return x / np.maximum(throughput_at_ratio(x, self.u), 1e-9)


def job_rng(seed: int, job_id: str, stream: int) -> np.random.Generator:
    """A generator of its own for one job and purpose: the same draws whatever else the twin does."""
    digest = hashlib.blake2b(f"{seed}:{job_id}:{stream}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def draw_curve(seed: int, job_id: str, job_class: str, curve_end: CurveEnd = "spread",
               gpu: GpuModel = GPU_MODELS["H100"]) -> JobCurve:
    """The job's curve on *gpu*: u uniform over the published spread (or pinned to one end),
    burst width uniform in its class's range; seeded by (seed, job id) only."""
    if curve_end not in CURVE_ENDS:
        raise ValueError(f"curve_end must be one of {', '.join(CURVE_ENDS)}, got {curve_end!r}")
    rng = job_rng(seed, job_id, 0xC0)
    u_draw, b_draw = rng.random(2)
    u = {"optimistic": 0.0, "pessimistic": 1.0}.get(curve_end, float(u_draw))
    lo, hi = BURST_RANGE[job_class]
    return JobCurve(job_class, u, lo + (hi - lo) * float(b_draw), gpu.default_limit_w)
