"""The twin's jobs report their progress to dcim as real jobs do: ``POST /v1/progress``.

A real training loop counts its steps and posts the total (``dcim.progress.Reporter``); an
inference server counts tokens. The twin's jobs count the work they did — the physics' hidden
truth, :attr:`simulator.workload.Job.done_gpu_s` (GPU-seconds at full speed, each step advanced
at the throughput the GPU's power cap allows) — in the unit a real job of their class counts
(:data:`UNITS`), as imperfectly as real jobs do (simulator/progress_model.py: ±3 % noise on
each reported increment, 20 % of jobs never report; ``FacilityTwin(progress_share=1,
progress_noise=0)`` reports the exact truth), and post it over HTTP with the optimizer's bearer
token to the same endpoint a real site's jobs use. Nothing reaches the store but what the
optimizer API accepts. Without HTTP, :func:`simulator.progress_model.progress_points` gives the
same readings as the ``progress`` Points the intake would store.

**Transport: one poster for all running jobs, in batches** (``{"reports": [...]}``, at most
:data:`BATCH_REPORTS` per request), every *every_s* seconds of twin time. On a real site each
job posts its own total from its own process; here the twin's jobs share one process, and one
``Reporter`` (a thread and a connection) per job would cost hundreds of threads for the demo's
~75 running jobs and tens of thousands at a national-centre scale. What dcim receives is the same:
per job a counter, its unit, and the wall-clock time the total was read (as every collector
stamps its readings; under ``--speed`` the twin's time runs ahead of the wall clock, and the
API refuses reports more than 60 s in its future).

**The first report of a job** comes *first_report_after_s* (wall clock) after the poster first
sees it running. On a real site a job's first report can beat the workload source's next poll
and be refused ``unknown_job`` (the Reporter backs off and retries); the twin waits until the
site's poll has seen the job, so that refusals in the demo count real faults only. A job's last
total after it ends is not sent (the workload source has moved on by then).

**Determinism**: the poster only reads the jobs (``Workload.jobs``, ``done_gpu_s``), on the
twin's own loop between two steps (a :class:`~simulator.service.TwinService` listener), and
hands the totals to a thread of its own for the HTTP side. The reporting noise comes from
per-job streams of the progress model (seeded by seed and job id), never from the twin's, and
nothing is written to the physics, so the twin's physics and random streams are the same with
or without it.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# A job's first report waits this many polls of the site's workload source, plus the intake's
# refresh of its job map (5 s) and the store writer's flush, with room to spare.
FIRST_REPORT_POLLS = 2
FIRST_REPORT_MARGIN_S = 15.0


def first_report_after_s(workload_interval_s: float) -> float:
    """How long (wall clock) a job runs before its first report, for a workload source polled
    every *workload_interval_s*: by then the intake knows the job (see the module docstring)."""
    return FIRST_REPORT_POLLS * workload_interval_s + FIRST_REPORT_MARGIN_S


# Bodies are capped at 64 KiB by the API; a report is ~95 bytes of JSON, so 400 fit with room.
BATCH_REPORTS = 400


@dataclass(frozen=True)
class WorkUnit:
    """How a job of one class counts its work. *per_gpu_s*: units per GPU-second at full
    speed, for classes whose every GPU counts its own (tokens, samples); *step_s*: seconds per
    step at full speed, for synchronous data-parallel classes (every GPU takes the same step)."""

    unit: str
    per_gpu_s: float | None = None
    step_s: float | None = None


# [assumption] Orders of magnitude for H100s, not a measurement: an LLM pre-training step of
# ~2 s, a fine-tuning step of ~0.5 s, ~2,000 generated tokens/s per GPU for a served LLM under
# load, ~1,000 samples/s per GPU for an offline batch (embedding, image) job. The optimizer only
# compares a job's rate with itself over time and caps, so the scale does not matter; the unit
# is what a real job of the class reports.
UNITS: dict[str, WorkUnit] = {
    "training": WorkUnit("steps", step_s=2.0),
    "fine_tuning": WorkUnit("steps", step_s=0.5),
    "inference": WorkUnit("tokens", per_gpu_s=2000.0),
    "batch": WorkUnit("samples", per_gpu_s=1000.0),
}


def work_done(job) -> tuple[float, str]:
    """A twin job's work done so far in its class's unit: (counter, unit)."""
    how = UNITS[job.job_class]
    if how.step_s is not None:  # every GPU at the pace of the slowest: steps = job-seconds / step
        return job.done_gpu_s / job.gpus / how.step_s, how.unit
    return job.done_gpu_s * how.per_gpu_s, how.unit


class ProgressPoster:
    """Posts the twin's running jobs' work done to ``<url>/v1/progress`` with *token*.

    Call :meth:`on_step` after each twin step (``service.listeners.append(poster.on_step)``);
    :meth:`start` runs the HTTP side on a daemon thread, :meth:`close` stops it. Tests may call
    :meth:`collect` and :meth:`post` directly instead. *clock_ns*: the wall clock that stamps
    each total; *monotonic*: the clock of *first_report_after_s*."""

    def __init__(self, twin, url: str, token: str, *, every_s: float = 10.0, first_report_after_s: float = 0.0,
                 timeout_s: float = 5.0, clock_ns: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic):
        if every_s <= 0:
            raise ValueError("every_s must be > 0")
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"progress URL must be http://host:port, got {url!r}")
        self.twin = twin
        self.url = url.rstrip("/")
        self._target = (parts.hostname, parts.port or 80, parts.path)
        self._token = token
        self.every_ns = int(every_s * 1e9)
        self.first_report_after_s = first_report_after_s
        self.timeout_s = timeout_s
        self.clock_ns = clock_ns
        self.monotonic = monotonic
        self.stats = dict.fromkeys(("posts", "reports", "accepted", "refused", "failed"), 0)
        self.last_error: str | None = None
        self._next_ns = twin.now_ns  # the first on_step collects
        self._seen: dict[str, float] = {}  # job → when first seen running (monotonic)
        self._pending: list[dict] | None = None  # the latest totals not yet sent (older ones superseded)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None

    # -- on the twin's loop ------------------------------------------------------------------------

    def on_step(self, _snapshot=None) -> None:
        """After a twin step: every *every_s* of twin time, read the totals and wake the sender."""
        if self.twin.now_ns < self._next_ns:
            return
        self._next_ns = self.twin.now_ns + self.every_ns
        reports = self.collect()
        if reports:
            with self._lock:
                self._pending = reports  # a newer total supersedes one the sender has not sent yet
            self._wake.set()

    def collect(self) -> list[dict]:
        """One report per running job old enough to report: its work done, unit and the time
        read. Reads the twin, writes nothing to it."""
        now_ns, now_s = self.clock_ns(), self.monotonic()
        running = self.twin.workload.jobs
        model = self.twin.progress_model
        for job_id in [j for j in self._seen if j not in running]:
            del self._seen[job_id]
        model.forget_ended(running)
        reports = []
        for job_id, job in running.items():
            seen = self._seen.setdefault(job_id, now_s)
            if now_s - seen < self.first_report_after_s:
                continue
            reading = model.reading(job)
            if reading is None:  # a job that never reports
                continue
            value, unit = reading
            reports.append({"job": job_id, "work_done": value, "unit": unit, "time_ns": now_ns})
        return reports

    # -- the HTTP side -----------------------------------------------------------------------------

    def start(self) -> ProgressPoster:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="twin-progress", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._drop_connection()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            with self._lock:
                reports, self._pending = self._pending, None
            if reports:
                self.post(reports)

    def post(self, reports: list[dict]) -> bool:
        """Send *reports* in batches; True when every batch was answered 200. Failures are
        counted and logged, never raised: the next round carries newer totals anyway."""
        ok = True
        for start in range(0, len(reports), BATCH_REPORTS):
            ok = self._post_batch(reports[start:start + BATCH_REPORTS]) and ok
        return ok

    def _post_batch(self, batch: list[dict]) -> bool:
        body = json.dumps({"reports": batch}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"}
        self.stats["posts"] += 1
        self.stats["reports"] += len(batch)
        try:
            conn = self._connection()
            conn.request("POST", self._target[2] + "/v1/progress", body, headers)
            resp = conn.getresponse()
            answer = resp.read()
        except (OSError, http.client.HTTPException) as exc:  # dcim down, reset, timed out
            self._drop_connection()
            return self._failed(f"{type(exc).__name__}: {exc}")
        if resp.status != 200:
            return self._failed(f"HTTP {resp.status}: {answer[:200].decode('utf-8', 'replace')}")
        try:
            result = json.loads(answer)
            accepted, refused = int(result["accepted"]), int(result["refused"])
        except (ValueError, KeyError, TypeError):
            return self._failed(f"an answer that is not the API's: {answer[:200]!r}")
        self.stats["accepted"] += accepted
        self.stats["refused"] += refused
        if refused:
            reasons = sorted({r.get("reason") for r in result.get("results", []) if r.get("status") == "refused"},
                             key=str)
            log.info("twin progress: %d of %d reports refused (%s)", refused, len(batch), ", ".join(map(str, reasons)))
        self.last_error = None
        return True

    def _failed(self, error: str) -> bool:
        self.stats["failed"] += 1
        if self.last_error is None:  # once per outage, not every round
            log.warning("twin progress: posting to %s failed: %s", self.url, error)
        self.last_error = error
        return False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port, _ = self._target
            self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
