"""Job progress posted to ``POST /v1/progress``: validation and bookkeeping, no I/O.

A report is ``{"job": "1234", "tenant"?: "...", "work_done": 15360.0, "unit": "samples",
"time_ns"?: ...}``; a body is one report or ``{"reports": [ ... ]}`` (at most
:data:`MAX_REPORTS`). :class:`ProgressBook` checks each report and turns the accepted ones into
``progress`` points (source ``post``). The rules, and why:

- **Shape**: ``job`` 1-253 characters of letters, digits and ``_ . - : / + @`` (Slurm ``123``,
  arrays ``123_4``, het jobs ``123+0``, Kubernetes ``namespace/pod``); ``work_done`` a finite
  number in [0, 1e18]; ``unit`` one of :data:`UNITS` or a lower-case name; ``tenant`` a name;
  ``time_ns`` (default: the server's clock) no more than 60 s ahead of the server's clock nor
  older than a day. Unknown keys are refused, so a typo (``workdone``) is not silently lost.
- **Whose job**: the tenant comes from the scheduler's ``workload`` points whenever the job is
  there, never from the post: a job cannot bill itself to another tenant (a post that names
  another tenant is counted ``tenant_overridden``). Where a workload source runs
  (``require_known_job``), a job it does not know is refused (``unknown_job``): the token is
  shared by every job, and a job must not fill the store with series of made-up jobs. Where no
  source runs, the post's tenant is kept and the report counted ``unverified``.
- **Counters**: each job's last accepted (work_done, time) is kept in memory (at most
  ``max_jobs`` jobs, least recently reported dropped first). A value below the last is a
  **reset** (a job restarted from a checkpoint counts from there): accepted, stored raw as the
  contract says (resets are detected downstream), counted ``resets``. A report not newer than
  the job's last is refused (``out_of_order``); one implying more than ``max_rate_per_s`` units
  per second since the last is refused (``absurd_rate``), and the last value stays, so one wild
  value cannot poison the next.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dcim.metrics import Point

MAX_REPORTS = 1000
JOB = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/+@-]{0,252}")
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
UNIT = re.compile(r"[a-z][a-z0-9_]{0,31}")
UNITS = frozenset({"steps", "samples", "tokens", "requests", "images", "sequences"})
REPORT_KEYS = frozenset({"job", "tenant", "work_done", "unit", "time_ns"})
MAX_WORK_DONE = 1e18
FUTURE_S = 60.0
MAX_AGE_S = 86400.0
MAX_RATE_PER_S = 1e9
MAX_JOBS = 100_000
WORKLOAD_CACHE_S = 5.0

REFUSALS = ("bad_report", "unknown_job", "workload_unavailable", "out_of_order", "absurd_rate", "too_old",
            "in_future")
FLAGS = ("resets", "unverified", "tenant_overridden")


class Refused(ValueError):
    """A report not accepted; *reason* is one of :data:`REFUSALS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Report:
    job: str
    work_done: float
    unit: str
    time_ns: int
    tenant: str | None = None


def parse_body(body) -> tuple[list, bool]:
    """The reports of a decoded JSON body (each to check with :func:`parse_report`), and whether
    it was a batch. Raises ValueError for a body that is neither a report nor ``{"reports": [...]}``."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    if "reports" not in body:
        return [body], False
    reports = body["reports"]
    if len(body) != 1 or not isinstance(reports, list):
        raise ValueError("a batch is {\"reports\": [...]} and nothing else")
    if not 1 <= len(reports) <= MAX_REPORTS:
        raise ValueError(f"a batch holds 1 to {MAX_REPORTS} reports")
    return reports, True


def parse_report(raw, now_ns: int) -> Report:
    """One report, checked for shape and time window (not against state); raises Refused."""
    if not isinstance(raw, dict):
        raise Refused("bad_report", "a report must be a JSON object")
    extra = raw.keys() - REPORT_KEYS
    if extra:
        raise Refused("bad_report", f"unknown key(s) {sorted(map(str, extra))[:5]}")
    job, unit, tenant = raw.get("job"), raw.get("unit", "steps"), raw.get("tenant")
    if not isinstance(job, str) or not JOB.fullmatch(job):
        raise Refused("bad_report", "'job' must be 1-253 letters, digits or _ . - : / + @")
    if not isinstance(unit, str) or not (unit in UNITS or UNIT.fullmatch(unit)):
        raise Refused("bad_report", "'unit' must be steps, samples, tokens, requests, images, sequences or a "
                                    "lower-case name")
    if tenant is not None and (not isinstance(tenant, str) or not TENANT.fullmatch(tenant)):
        raise Refused("bad_report", "'tenant' must be a name (letters, digits, _ . -)")
    work = raw.get("work_done")
    if isinstance(work, bool) or not isinstance(work, (int, float)) or not 0 <= work <= MAX_WORK_DONE:
        # NaN fails both comparisons; an int past float range would not be finite: refused here too
        raise Refused("bad_report", f"'work_done' must be a finite number in [0, {MAX_WORK_DONE:g}]")
    time_ns = raw.get("time_ns", now_ns)
    if isinstance(time_ns, bool) or not isinstance(time_ns, int):
        raise Refused("bad_report", "'time_ns' must be an integer (ns since the epoch, UTC)")
    if time_ns > now_ns + FUTURE_S * 1e9:
        raise Refused("in_future", f"'time_ns' is more than {FUTURE_S:g} s ahead of the server's clock")
    if time_ns < now_ns - MAX_AGE_S * 1e9:
        raise Refused("too_old", f"'time_ns' is more than {MAX_AGE_S:g} s old")
    return Report(job, float(work), unit, time_ns, tenant)


class ProgressBook:
    """Checks reports against the workload and each job's last value; counts everything.

    *workload* returns job → tenant from the store's latest ``workload`` points (raising when
    the store cannot be read); it is called at most every *cache_s* seconds. Thread-safe."""

    def __init__(self, site: str, *, workload: Callable[[], dict[str, str]] | None = None,
                 require_known_job: bool = False, clock_ns: Callable[[], int] = time.time_ns,
                 max_rate_per_s: float = MAX_RATE_PER_S, max_jobs: int = MAX_JOBS,
                 cache_s: float = WORKLOAD_CACHE_S, monotonic: Callable[[], float] = time.monotonic):
        self.site = site
        self.workload = workload
        self.require_known_job = require_known_job
        self.clock_ns = clock_ns
        self.max_rate_per_s = max_rate_per_s
        self.max_jobs = max_jobs
        self.cache_s = cache_s
        self.monotonic = monotonic
        self._last: dict[str, tuple[float, int]] = {}  # job → (work_done, time_ns), oldest first
        self._lock = threading.Lock()
        self._jobs: dict[str, str] | None = None
        self._jobs_at = -math.inf
        self._refresh_lock = threading.Lock()
        self.counts = dict.fromkeys(("requests", "received", "accepted", "refused", "unauthorized",
                                     "bad_body", "write_failed", "jobs_forgotten", *REFUSALS, *FLAGS), 0)

    # -- the workload map, cached ------------------------------------------------------------------

    def known_jobs(self) -> dict[str, str] | None:
        """job → tenant, at most *cache_s* old; None when it cannot be read. One thread refreshes
        it while the others keep using the previous map (a slow store does not stall posts)."""
        if self.workload is None:
            return None
        if self.monotonic() - self._jobs_at < self.cache_s:
            return self._jobs
        if not self._refresh_lock.acquire(blocking=self._jobs is None):
            return self._jobs
        try:
            if self.monotonic() - self._jobs_at >= self.cache_s:
                try:
                    self._jobs = self.workload()
                except Exception:  # noqa: BLE001 — the store down: no map this time; counted per report
                    self._jobs = None
                self._jobs_at = self.monotonic()
            return self._jobs
        finally:
            self._refresh_lock.release()

    # -- reports -----------------------------------------------------------------------------------

    def accept(self, raw_reports: list) -> tuple[list[Point], list[dict]]:
        """The points of the accepted reports, and one result per report: ``{"job", "status":
        "accepted" | "reset" | "refused", "reason"?, "error"?}``."""
        now = self.clock_ns()
        jobs = self.known_jobs()
        points, results = [], []
        for raw in raw_reports:
            job = raw.get("job") if isinstance(raw, dict) and isinstance(raw.get("job"), str) else None
            try:
                report = parse_report(raw, now)
                point, status = self._check(report, jobs)
            except Refused as exc:
                self._count(exc.reason, "refused")
                results.append({"job": job[:253] if job else None, "status": "refused", "reason": exc.reason,
                                "error": str(exc)})
                continue
            points.append(point)
            results.append({"job": report.job, "status": status})
        with self._lock:
            self.counts["received"] += len(raw_reports)
            self.counts["accepted"] += len(points)
        return points, results

    def _check(self, report: Report, jobs: dict[str, str] | None) -> tuple[Point, str]:
        tenant = jobs.get(report.job) if jobs else None
        if tenant is None:
            if self.require_known_job:
                if jobs is None:
                    raise Refused("workload_unavailable", "the workload (which job runs where) cannot be read now")
                raise Refused("unknown_job", f"job {report.job!r} is not running on any GPU the workload "
                                             "source reports")
            tenant = report.tenant or ""
            flag: str | None = "unverified"
        else:
            flag = "tenant_overridden" if report.tenant not in (None, tenant) else None
        status = self._advance(report)
        for name in (flag, "resets" if status == "reset" else None):
            if name:
                self._count(name)
        fields: dict[str, float | int | bool | str] = {"work_done": report.work_done, "unit": report.unit,
                                                       "source": "post"}
        return Point("progress", {"site": self.site, "job": report.job, "tenant": tenant}, fields,
                     report.time_ns), status

    def _advance(self, report: Report) -> str:
        """Compare with the job's last value and remember this one; raises Refused."""
        with self._lock:
            last = self._last.get(report.job)
            status = "accepted"
            if last is not None:
                last_work, last_ns = last
                if report.time_ns <= last_ns:
                    raise Refused("out_of_order", "not newer than the job's last report")
                if report.work_done < last_work:
                    status = "reset"
                elif (report.work_done - last_work) / ((report.time_ns - last_ns) / 1e9) > self.max_rate_per_s:
                    raise Refused("absurd_rate", f"more than {self.max_rate_per_s:g} {report.unit}/s since "
                                                 "the job's last report")
                del self._last[report.job]  # re-inserted last: the dict stays oldest-reported first
            self._last[report.job] = (report.work_done, report.time_ns)
            while len(self._last) > self.max_jobs:
                del self._last[next(iter(self._last))]
                self.counts["jobs_forgotten"] += 1
            return status

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.counts[name] += 1

    def count(self, name: str) -> None:
        """Count a request-level outcome (``requests``, ``unauthorized``, ``bad_body``)."""
        self._count(name)

    def stats(self) -> dict:
        with self._lock:
            out: dict[str, int | bool | None] = dict(self.counts)
            out["jobs_tracked"] = len(self._last)
        out["workload_jobs"] = len(self._jobs) if self._jobs is not None else None
        out["require_known_job"] = self.require_known_job
        return out


def jobs_from_store(store, site: str, max_age_s: float = 3600.0) -> Callable[[], dict[str, str]]:
    """job → tenant from the store's latest ``workload`` point of each GPU, at most *max_age_s*
    old: a job that ended has been replaced on its GPUs by the next (or by job "")."""

    def read() -> dict[str, str]:
        since = time.time_ns() - int(max_age_s * 1e9)
        out: dict[str, str] = {}
        for p in store.latest("workload", where={"site": site}, since_ns=since):
            job = p.fields.get("job")
            if isinstance(job, str) and job:
                tenant = p.fields.get("tenant")
                out[job] = tenant if isinstance(tenant, str) else ""
        return out

    return read
