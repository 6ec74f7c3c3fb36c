"""Slurm as a workload source: which job holds which GPU index on which node.

Read from the controller once per poll, either ``squeue --json`` (mode "cli", on a host that
is a Slurm client) or slurmrestd's ``GET /slurm/v0.0.38/jobs`` (mode "rest", JWT auth). Both
answer the same OpenAPI v0.0.38 job records (Slurm 22.05 serves v0.0.36-38, 23.02 and 23.11
serve v0.0.38 too). Per job we use ``job_state``, ``job_id`` (with the array/het parts Slurm
displays), ``account``, ``partition``, ``qos``, ``user_name``, ``start_time``, the node list
and ``gres_detail``: one string per allocated node, e.g. ``gpu:h100:3(IDX:0-2)``, whose IDX
are the GPU indices on that node.

Jobs in RUNNING or COMPLETING hold their GPUs (a completing job's GRES stay allocated until
its epilog ends). Pending, suspended and finished jobs are not recorded: a suspended job keeps
its allocation in Slurm but does no work, and the GPU then reads as idle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from collectors.workload.base import GpuHold, WorkloadError, WorkloadSource
from collectors.workload.hostlist import HostlistError, expand, split_outside

REST_API = "v0.0.38"
HOLDING_STATES = frozenset({"RUNNING", "COMPLETING"})
MAX_BODY_BYTES = 256 * 1024 * 1024  # 2,000 jobs are ~10 MB; a runaway answer stops here
_IDX = re.compile(r"\(IDX:([^)]*)\)")


class SlurmSource(WorkloadSource):
    name = "slurm"

    def __init__(self, *, mode: str = "cli", squeue: str = "squeue", slurm_conf: Path | None = None,
                 rest_url: str | None = None, rest_user: str | None = None, rest_token=None,
                 timeout_s: float = 10.0):
        """*rest_token*: a SecretRef (read at each poll, so a rotated JWT file is picked up)."""
        if mode == "rest" and not rest_url:
            raise ValueError("Slurm mode 'rest' needs rest_url")
        self.mode = mode
        self.squeue = squeue
        self.slurm_conf = slurm_conf
        self.rest_url = (rest_url or "").rstrip("/")
        self.rest_user = rest_user
        self.rest_token = rest_token
        self.timeout_s = timeout_s
        self.target = urllib.parse.urlsplit(self.rest_url).netloc.rpartition("@")[2] if mode == "rest" else "slurmctld"
        # Never follow a redirect: it would carry the token to another host.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)

    @classmethod
    def from_config(cls, cfg) -> SlurmSource:
        s = cfg.workload.slurm
        return cls(mode=s.mode, squeue=s.squeue, slurm_conf=s.slurm_conf, rest_url=s.rest_url,
                   rest_user=s.rest_user, rest_token=s.rest_token, timeout_s=s.timeout_s)

    def poll(self) -> list[GpuHold]:
        body = self._read_rest() if self.mode == "rest" else self._read_cli()
        return parse_jobs(body, self._what())

    def _what(self) -> str:
        return f"slurmrestd {self.rest_url}" if self.mode == "rest" else "squeue --json"

    # --- reading ----------------------------------------------------------------------------

    def _read_cli(self) -> bytes:
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = str(self.slurm_conf)
        try:
            proc = subprocess.run([self.squeue, "--json"], env=env, capture_output=True, stdin=subprocess.DEVNULL,
                                  timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise WorkloadError(f"squeue not found: {self.squeue!r} (install slurm-client or set "
                                "[workload.slurm] squeue)") from None
        except subprocess.TimeoutExpired:
            raise WorkloadError(f"squeue --json: no answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise WorkloadError(f"squeue --json: cannot run {self.squeue!r}: {exc.strerror}") from None
        if proc.returncode != 0:
            raise WorkloadError(f"squeue --json exited {proc.returncode}: {_first_line(proc.stderr)}")
        return proc.stdout

    def _read_rest(self) -> bytes:
        from dcim.config import ConfigError, read_secret

        try:
            token = read_secret(self.rest_token, "workload.slurm.rest_token")
        except ConfigError as exc:
            raise WorkloadError(f"slurmrestd: {exc}") from None
        headers = {"Accept": "application/json"}
        if self.rest_user:
            headers["X-SLURM-USER-NAME"] = self.rest_user
        if token:
            headers["X-SLURM-USER-TOKEN"] = token
        url = f"{self.rest_url}/slurm/{REST_API}/jobs"
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout_s) as resp:
                return _read_bounded(resp, deadline, self.timeout_s)
        except urllib.error.HTTPError as exc:
            raise WorkloadError(f"slurmrestd {url}: HTTP {exc.code} {_rest_error(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WorkloadError(f"slurmrestd {url}: {reason}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx surfaces as an HTTPError


def _read_bounded(resp, deadline: float, timeout_s: float) -> bytes:
    """The body, within the total deadline (a socket timeout alone bounds each read, not the
    sum: a server trickling bytes would hold the poll forever) and MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise WorkloadError(f"slurmrestd: answer not complete within {timeout_s:g} s")
        chunk = resp.read1(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise WorkloadError(f"slurmrestd: answer larger than {MAX_BODY_BYTES:,} bytes")
        chunks.append(chunk)


def _rest_error(exc: urllib.error.HTTPError) -> str:
    """slurmrestd's own words: errors[0].description of a JSON body, or the body's first line."""
    try:
        body = exc.read(65536)
    except OSError:
        body = b""
    try:
        errors = json.loads(body).get("errors") or []
        return str(errors[0].get("description") or errors[0].get("error") or exc.reason)[:200]
    except (ValueError, AttributeError, IndexError, TypeError):
        return _first_line(body) or str(exc.reason)


def _first_line(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")[:300]


# --- parsing (pure) ----------------------------------------------------------------------------


def parse_jobs(body: bytes | str, what: str = "squeue --json") -> list[GpuHold]:
    """Every GPU hold of every RUNNING or COMPLETING job in a v0.0.3x ``jobs`` answer."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{what}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise WorkloadError(f"{what}: no 'jobs' list in the answer")
    # With slurmctld down, squeue --json exits 0 with an empty job list and an error entry
    # (checked on 22.05): without this check a dead controller would read as an idle site.
    errors = doc.get("errors")
    if isinstance(errors, list) and errors:
        raise WorkloadError(f"{what}: {_slurm_error(errors[0])}")
    jobs = doc.get("jobs")
    if not isinstance(jobs, list):
        raise WorkloadError(f"{what}: no 'jobs' list in the answer")
    holds: list[GpuHold] = []
    for n, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise WorkloadError(f"{what}: job #{n} is not an object")
        if _states(job, what, n) & HOLDING_STATES:
            holds.extend(_job_holds(job, what, n))
    return holds


def _slurm_error(error) -> str:
    """``{"source": "slurm_load_jobs", "description": "Failed while looking for jobs", "error":
    "Unspecified error"}`` → ``slurm_load_jobs: Failed while looking for jobs (Unspecified error)``."""
    if not isinstance(error, dict):
        return str(error)[:300]
    text = str(error.get("description") or error.get("error") or "error")
    if error.get("source"):
        text = f"{error['source']}: {text}"
    if error.get("error") and error.get("error") != error.get("description"):
        text += f" ({error['error']})"
    return text[:300]


def _states(job: dict, what: str, n: int) -> set[str]:
    # A string up to v0.0.38 (22.05); a list of flags from v0.0.39 (23.02) on.
    state = job.get("job_state")
    if isinstance(state, str):
        return {state}
    if isinstance(state, list) and all(isinstance(s, str) for s in state):
        return set(state)
    raise WorkloadError(f"{what}: job #{n} has no valid 'job_state'")


def _job_holds(job: dict, what: str, n: int) -> list[GpuHold]:
    for key in ("job_id", "nodes", "gres_detail"):
        if key not in job:
            raise WorkloadError(f"{what}: job #{n} has no '{key}'")
    job_id = display_id(job)
    gres = job["gres_detail"]
    if not isinstance(gres, list):
        raise WorkloadError(f"{what}: job {job_id}: 'gres_detail' is not a list")
    if not gres:
        return []  # a job without GRES holds no GPU
    nodes = _node_names(job, what, job_id)
    start_s = _number(job.get("start_time"))
    account, partition, qos = _text(job.get("account")), _text(job.get("partition")), _text(job.get("qos"))
    user = _text(job.get("user_name")) or None
    start_ns = int(start_s) * 1_000_000_000 if start_s else None
    holds = []
    for host, entry in zip(nodes, gres):  # gres_detail: one entry per allocated node, in node order
        indices = gpu_indices(entry)
        # indices None: GPUs held, indices not said: one unplaced hold, visible, never dropped
        for i in [None] if indices is None else indices:
            holds.append(GpuHold(job_id, host, account, gpu_index=i, partition=partition, qos=qos, user=user,
                                 start_ns=start_ns))
    return holds


def display_id(job: dict) -> str:
    """The id Slurm displays: ``123_4`` for an array task, ``123+1`` for a het job component."""
    array_job, task = _number(job.get("array_job_id")), _number(job.get("array_task_id"))
    if array_job and task is not None:
        return f"{array_job}_{task}"
    het_job = _number(job.get("het_job_id"))
    if het_job:
        return f"{het_job}+{_number(job.get('het_job_offset')) or 0}"
    job_id = _number(job.get("job_id"))
    if job_id is None:
        raise WorkloadError(f"squeue --json: job id {str(job.get('job_id'))[:40]!r} is not a number")
    return str(job_id)


def _node_names(job: dict, what: str, job_id: str) -> list[str]:
    """The job's nodes in gres_detail's order. That order is the node table's (the allocation
    bitmap), as in ``job_resources.allocated_nodes``; ``nodes`` is the same set as a sorted
    hostlist, which differs only where slurm.conf lists nodes out of order."""
    allocated = (job.get("job_resources") or {}).get("allocated_nodes") if isinstance(
        job.get("job_resources"), dict) else None
    if isinstance(allocated, dict):  # keyed by position in some versions
        allocated = [allocated[k] for k in sorted(allocated, key=lambda k: int(k) if str(k).isdigit() else 0)]
    if isinstance(allocated, list) and allocated:
        names = [a.get("nodename") for a in allocated if isinstance(a, dict)]
        valid = [name for name in names if isinstance(name, str) and name]
        if names and len(valid) == len(names):
            return valid
    try:
        return expand(_text(job.get("nodes")))
    except HostlistError as exc:
        raise WorkloadError(f"{what}: job {job_id}: {exc}") from None


def gpu_indices(entry) -> list[int] | None:
    """GPU indices in one node's gres_detail entry: ``gpu:h100:3(IDX:0-2)`` → [0, 1, 2];
    ``gpu:a100:1(IDX:0),gpu:v100:2(IDX:1-2)`` → [0, 1, 2]; no GPU (``(null)``, ``gpu:0``,
    ``nic:1(IDX:0)``) → []; GPUs held but the indices unreadable (``IDX:N/A``) → None."""
    if not isinstance(entry, str):
        return None
    indices: list[int] = []
    unknown = False
    for item in _split_gres(entry):
        head = item.split("(", 1)[0]
        fields = head.split(":")
        if fields[0] != "gpu":
            continue
        count = fields[-1] if len(fields) > 1 else ""
        if count.isdigit() and int(count) == 0:
            continue
        match = _IDX.search(item)
        parsed = _index_ranges(match.group(1)) if match else None
        if parsed is None:
            unknown = True
        else:
            indices.extend(parsed)
    if unknown and not indices:
        return None
    return sorted(set(indices))


def _split_gres(entry: str) -> list[str]:
    """Split at commas outside parentheses (``IDX:0,3`` has its own commas)."""
    return [item.strip() for item in split_outside(entry, "(", ")") if item.strip()]


def _index_ranges(spec: str) -> list[int] | None:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        lo_i, hi_i = int(lo), int(hi or lo)
        if hi_i < lo_i or hi_i - lo_i > 4096:  # no node has thousands of GPUs: garbage
            return None
        out.extend(range(lo_i, hi_i + 1))
    return out


def _number(value):
    """An integer field: a bare number (v0.0.38) or ``{"set": true, "number": N}`` (v0.0.39+)."""
    if isinstance(value, dict):
        value = value.get("number") if value.get("set", True) and not value.get("infinite") else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _text(value) -> str:
    return value if isinstance(value, str) else ""
