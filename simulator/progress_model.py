"""What the twin's jobs would report as progress: like real jobs, imperfectly.

Each job's true work advances with its true throughput (``Job.done_gpu_s``, the physics'
hidden truth). What a job *reports* is a counter in its class's unit
(:data:`simulator.progress_poster.UNITS`) whose every increment between two reads carries
multiplicative noise (default ±3 % sd, what step-time jitter and token-length variation give
a real job's rate), and a share of jobs never report at all (default 20 %: jobs nobody
instrumented, servers whose metrics are not scraped). Both are drawn per job from
(seed, job id), so a job keeps its fate whatever else the twin does; none of this touches the
twin's random streams or physics.

Two ways out, the same numbers: :class:`simulator.progress_poster.ProgressPoster` posts the
readings over HTTP to ``POST /v1/progress`` (the demo); :func:`progress_points` returns them as
the ``progress`` Points the intake would store (the benchmark writes them to its store without
HTTP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dcim.metrics import Point
from simulator.capping_curves import job_rng

# Default share of jobs that report progress and the sd of the noise on each reported increment.
REPORTING_SHARE = 0.8
RATE_NOISE = 0.03

_STREAM_REPORTS = 0x9E
_STREAM_NOISE = 0x9F


@dataclass
class _JobCounter:
    true_last: float
    reported: float
    rng: np.random.Generator = field(repr=False)


class ProgressModel:
    """Which jobs report and the noisy counters they report. *share*: share of jobs that report
    (0..1); *noise*: sd of the relative noise on each reported increment (≥ 0)."""

    def __init__(self, seed: int, *, share: float = REPORTING_SHARE, noise: float = RATE_NOISE):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"progress share must be within 0..1, got {share!r}")
        if not 0.0 <= noise < 0.5:
            raise ValueError(f"progress noise must be within 0..0.5, got {noise!r}")
        self.seed, self.share, self.noise = seed, share, noise
        self._counters: dict[str, _JobCounter] = {}

    def reports_progress(self, job_id: str) -> bool:
        """Whether this job ever reports (drawn once per job from seed and id)."""
        if self.share >= 1.0:
            return True
        return bool(job_rng(self.seed, job_id, _STREAM_REPORTS).random() < self.share)

    def reading(self, job) -> tuple[float, str] | None:
        """The job's reported work done now (counter, unit), or None for a job that never
        reports. Each call reads the truth and adds the increment since the last call, noised."""
        from simulator.progress_poster import work_done  # the units live with the poster
        if not self.reports_progress(job.id):
            return None
        true, unit = work_done(job)
        c = self._counters.get(job.id)
        if c is None:  # first read: the job's own counter starts where its true work is
            c = self._counters[job.id] = _JobCounter(true, true, job_rng(self.seed, job.id, _STREAM_NOISE))
            return c.reported, unit
        step = max(true - c.true_last, 0.0)
        factor = 1.0 + self.noise * float(c.rng.standard_normal()) if self.noise > 0 else 1.0
        c.reported += step * max(factor, 0.0)  # a counter never goes back
        c.true_last = true
        return c.reported, unit

    def forget_ended(self, running_ids) -> None:
        """Drop the counters of jobs no longer running."""
        for job_id in [j for j in self._counters if j not in running_ids]:
            del self._counters[job_id]


def progress_points(twin, time_ns: int | None = None) -> list[Point]:
    """This step's ``progress`` Points for every running job that reports, as the optimizer's
    progress intake stores a POST (tags site, job, tenant; fields work_done, unit, source)."""
    t = twin.now_ns if time_ns is None else time_ns
    model = twin.progress_model
    running = twin.workload.jobs
    model.forget_ended(running)
    out = []
    for job_id, job in running.items():
        reading = model.reading(job)
        if reading is None:
            continue
        value, unit = reading
        out.append(Point("progress", {"site": twin.site, "job": job_id, "tenant": job.tenant},
                         {"work_done": float(value), "unit": unit, "source": "post"}, t))
    return out
