"""Report a job's progress to dcim from a training loop: standard library only, one file.

    import dcim.progress                     # or copy this file into the training image
    reporter = dcim.progress.Reporter(unit="samples")
    for batch in loader:
        ...
        reporter.add(len(batch))             # ~0.3 µs: only a number under a lock

``add(n)`` / ``set(total)`` only update the running total. A daemon thread posts the latest total
to ``POST <url>/v1/progress`` every *interval_s* (one small request, short timeout, one kept-alive
connection), backs off exponentially while dcim is down or refuses, and never raises into the
job. Memory stays flat: only the latest total is kept, never a queue. At exit the last total is
sent once, within *exit_deadline_s*.

Defaults come from the environment: ``DCIM_URL``, ``DCIM_TOKEN``, and the job id from ``DCIM_JOB``,
else Slurm's
``SLURM_JOB_ID`` (``<array job>_<task>`` for array tasks), else Kubernetes'
``<POD_NAMESPACE>/<POD_NAME>`` (set them from the downward API; ``HOSTNAME`` is the pod name).
Without a URL or a job id the reporter stays silent (add() still works and costs nothing more).

``DCIM_URL`` is the base URL of dcim's progress intake: the ``dcim optimize`` host on
``[optimizer] progress_port`` (default 8088), e.g. ``http://dcim-opt:8088``; the reporter posts
to ``<DCIM_URL>/v1/progress``. That listener is built for many jobs posting often; the optimizer
API's own port (``[optimizer] port``, 8087) answers ``/v1/progress`` the same way, for clients
that only know that one. A bare host (``http://dcim-opt``) means the progress port, not port 80.
"""

from __future__ import annotations

import atexit
import http.client
import json
import logging
import os
import threading
import time
import urllib.parse

log = logging.getLogger("dcim.progress")

PROGRESS_PORT = 8088  # [optimizer] progress_port's default: a DCIM_URL without a port means it


def job_from_env(env=os.environ) -> str | None:
    """This job's id as dcim's workload source names it, from the scheduler's environment."""
    if env.get("DCIM_JOB"):
        return env["DCIM_JOB"]
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return env["SLURM_JOB_ID"]
    pod = env.get("POD_NAME") or (env.get("HOSTNAME") if env.get("KUBERNETES_SERVICE_HOST") else None)
    if pod and env.get("POD_NAMESPACE"):
        return f"{env['POD_NAMESPACE']}/{pod}"
    return None


class Reporter:
    """The job's running total of work done, posted in the background. Thread-safe."""

    def __init__(self, url: str | None = None, token: str | None = None, job: str | None = None,
                 unit: str = "steps", *, interval_s: float = 10.0, timeout_s: float = 2.0,
                 max_backoff_s: float = 300.0, exit_deadline_s: float = 1.0, start: bool = True):
        self.url = (url or os.environ.get("DCIM_URL") or "").rstrip("/")
        self.token = token or os.environ.get("DCIM_TOKEN")
        self.job = job or job_from_env()
        self.unit = unit
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.exit_deadline_s = exit_deadline_s
        self.posts = self.failures = 0  # requests sent, and of those the failed or refused
        self.last_error: str | None = None
        self._total = 0.0
        self._lock = threading.Lock()
        self._sent: float | None = None  # the total dcim last accepted
        self._post_lock = threading.Lock()  # the connection: the thread, and the exit flush
        self._conn: http.client.HTTPConnection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        parts = urllib.parse.urlsplit(self.url)
        port = parts.port or (PROGRESS_PORT if parts.scheme == "http" else None)
        # no hostname: reporting is off (enabled below) and the target is never used
        self._target = (parts.scheme, parts.hostname or "", port, parts.path)
        self.enabled = bool(parts.scheme in ("http", "https") and parts.hostname and self.job)
        if not self.enabled:
            log.warning("dcim progress reporting off: %s", "no job id" if self.url else "no DCIM_URL")
        elif start:
            self.start()

    def add(self, n: float = 1) -> None:
        """Add *n* units of work done (called once per step)."""
        with self._lock:
            self._total += n

    def set(self, total: float) -> None:
        """Set the total work done so far (e.g. the global step)."""
        with self._lock:
            self._total = total

    @property
    def total(self) -> float:
        return self._total

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dcim-progress", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def close(self) -> None:
        """Stop the thread and send the last total once, within *exit_deadline_s*."""
        if self._stop.is_set():
            return
        self._stop.set()
        deadline = time.monotonic() + self.exit_deadline_s
        if self._thread is not None:
            self._thread.join(self.exit_deadline_s)
            if self._thread.is_alive():  # stuck on a server that does not answer: leave it
                return
        left_s = deadline - time.monotonic()
        if self.enabled and left_s > 0.01:
            self.flush(timeout_s=min(self.timeout_s, left_s))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Post the latest total now if dcim has not got it yet; True when dcim has it."""
        total = self._total
        if total == self._sent:
            return True
        with self._post_lock:
            ok = self._post(total, self.timeout_s if timeout_s is None else timeout_s)
        if ok:
            self._sent = total
        return ok

    def _run(self) -> None:
        wait_s = self.interval_s
        while not self._stop.wait(wait_s):
            try:
                ok = self.flush()
            except Exception as exc:  # noqa: BLE001 — never let reporting take the job down
                ok, self.last_error = False, f"{type(exc).__name__}: {exc}"
            wait_s = self.interval_s if ok else min(self.max_backoff_s, max(wait_s, self.interval_s) * 2)

    def _post(self, total: float, timeout_s: float) -> bool:
        body = json.dumps({"job": self.job, "work_done": float(total), "unit": self.unit,
                           "time_ns": time.time_ns()}).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.posts += 1
        try:
            conn = self._connection(timeout_s)
            conn.request("POST", self._target[3] + "/v1/progress", body, headers)
            resp = conn.getresponse()
            answer = resp.read(65536)
            if resp.status == 200:
                self.last_error = None
                return True
            self.last_error = f"HTTP {resp.status}: {answer[:200].decode('utf-8', 'replace')}"
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, garbled
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._drop_connection()
        self.failures += 1
        return False

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._conn is None:
            scheme, host, port, _ = self._target
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            self._conn = cls(host, port, timeout=timeout_s)
        self._conn.timeout = timeout_s
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
