"""The twin's Slurm: its jobs as slurmrestd (Slurm 22.05) answers ``GET /slurm/v0.0.38/jobs``.

The twin tells no lies (DESIGN.md): which job holds which GPU reaches dcim the way it does on a
real site, as the scheduler's JSON read by the Slurm workload source
(``collectors.workload.slurm``). Under ``dcim up`` the twin serves that JSON over HTTP on
loopback (:class:`SlurmRestServer`) and the collector polls it like any slurmrestd; where the
twin is stepped in-process (backfilled history, tests, benchmarks) :func:`workload_points` runs
the same JSON through the same ``parse_jobs`` and ``workload_points`` instead of writing job,
tenant and class itself. ``simulator`` imports ``collectors.workload`` for that (its pure
parsing and mapping, no I/O): the price of one code path, where DESIGN.md only forbids
importing ``simulator`` from elsewhere.

Scheduler names: each tenant runs under a Slurm *account*, each job class in a *partition*.
Where the config's ``[workload]`` maps an account to a tenant (or a partition to a class), the
twin uses that account (partition); otherwise the tenant's own name and the partitions in
``DEFAULT_PARTITIONS``. The job records are shaped after one that Slurm 22.05.8's slurmrestd
printed on the test cluster (tests/fixtures/slurm.py), identity and allocation rewritten.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from collectors.workload.mapping import WorkloadMapping
from collectors.workload.mapping import workload_points as map_holds
from collectors.workload.slurm import REST_API, parse_jobs
from dcim.metrics import Point

log = logging.getLogger(__name__)

JOBS_PATH = f"/slurm/{REST_API}/jobs"
DEFAULT_PARTITIONS = {"training": "train", "fine_tuning": "finetune", "inference": "infer", "batch": "batch"}
TIME_LIMIT_MIN = 14 * 24 * 60  # every partition's MaxTime: the twin's longest job (14 days)
CPUS_PER_GPU = 16  # [assumption] a 2 x 64-core node with 8 GPUs
MEM_PER_GPU_MB = 256_000  # [assumption] 2 TB host memory per 8-GPU node
FIRST_USER_ID = 20_000

# What slurmrestd 22.05.8 answers (checked against the real one, tests/fixtures/slurm.py):
META = {"plugin": {"type": f"openapi/{REST_API}", "name": f"Slurm OpenAPI {REST_API}"},
        "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}}
# no X-SLURM-USER-TOKEN: 401 with this text/plain body;
NO_AUTH_BODY = b"Authentication failure"
# a token slurmctld refuses: slurmrestd forwards it, and answers 500 with slurmctld's refusal;
REFUSED_ERROR = {"description": "Failed while looking for jobs", "error_number": -1,
                 "error": "Unspecified error", "source": "slurm_load_jobs"}
# a path it does not serve: 404, text/plain.
NOT_FOUND_BODY = b"Unable find requested URL. Please view /openapi/v3 for API reference."

_MODEL_TYPE = re.compile(r"\b([A-Z]{1,2}\d{2,3}[A-Z]?)\b")  # "NVIDIA H100 80GB HBM3" → h100


@dataclass(frozen=True)
class SlurmNames:
    """The twin's Slurm identities: tenant → account, job class → partition."""

    accounts: Mapping[str, str]
    partitions: Mapping[str, str]

    @classmethod
    def from_config(cls, config, tenants: list[str] | None = None) -> SlurmNames:
        """*tenants*: those the twin's jobs run for (default: the config's)."""
        wl = config.workload
        accounts = {}
        for tenant in [t.name for t in config.tenants] if tenants is None else tenants:
            mapped = [a for a, t in wl.tenants.items() if t == tenant]
            accounts[tenant] = mapped[0] if mapped else tenant
        partitions = {}
        for job_class, default in DEFAULT_PARTITIONS.items():
            mapped = [p for p, c in wl.job_classes.items() if c == job_class]
            partitions[job_class] = mapped[0] if mapped else default
        return cls(accounts, partitions)

    def account(self, tenant: str) -> str:
        return self.accounts.get(tenant, tenant)

    def mapping(self, config) -> WorkloadMapping:
        """The config's ``[workload]`` mapping, completed with the twin's own names: what
        ``dcim up`` configures the collector with, and what the in-process path maps with."""
        wl = config.workload
        tenants = {**{a: t for t, a in self.accounts.items()}, **wl.tenants}
        classes = {**{p: c for c, p in self.partitions.items()}, **wl.job_classes}
        return WorkloadMapping(tenants, classes, wl.record_users)


# --- the JSON ------------------------------------------------------------------------------------


def jobs_document(twin, names: SlurmNames, *, detail: bool = True) -> dict:
    """The twin's jobs now, as slurmrestd's ``jobs`` answer: running jobs with their nodes and
    GPU indices (``gres_detail``), queued ones PENDING. *detail*: every key Slurm prints (the
    HTTP endpoint); without it only the keys a reader of allocations uses (the in-process path,
    which serialises a record per job per GPU step of a backfill)."""
    wl = twin.workload
    now_s = twin.now_ns // 1_000_000_000
    jobs = [_running(twin, job, names, now_s, detail) for job in wl.jobs.values()]
    jobs += [_pending(twin, job, names, now_s, detail) for job in wl.queue if job.start_ns is None]
    jobs.sort(key=lambda j: j["job_id"])
    return {"meta": META, "errors": [], "jobs": jobs}


def jobs_body(twin, names: SlurmNames, *, detail: bool = True) -> bytes:
    return json.dumps(jobs_document(twin, names, detail=detail), separators=(",", ":")).encode()


def _running(twin, job, names: SlurmNames, now_s: int, detail: bool) -> dict:
    by_host: dict[str, list[int]] = {}
    for pos in sorted(job.slots):  # slot order is the node table's: gres_detail's order
        slot = twin.slots[pos]
        by_host.setdefault(slot.host, []).append(slot.index)
    hosts = list(by_host)
    gres = [f"{_gres_name(twin, host)}:{len(idx)}(IDX:{_ranges(idx)})" for host, idx in by_host.items()]
    record = _common(job, names, state="RUNNING")
    record.update(nodes=compress(hosts), gres_detail=gres, start_time=job.start_ns // 1_000_000_000,
                  job_resources={"nodes": compress(hosts), "allocated_hosts": len(hosts),
                                 "allocated_nodes": [{"nodename": h} for h in hosts]})
    if detail:
        cpus = CPUS_PER_GPU * job.gpus
        record.update(_DETAIL)
        record.update(_identity(job, names, twin), batch_host=hosts[0], node_count=len(hosts), cpus=cpus,
                      tasks=len(hosts), end_time=record["start_time"] + TIME_LIMIT_MIN * 60,
                      last_sched_evaluation=record["start_time"], state_reason="None",
                      tres_per_node=f"gres:gpu:{len(next(iter(by_host.values())))}",
                      tres_req_str=f"cpu={cpus},mem={MEM_PER_GPU_MB * job.gpus}M,node={len(hosts)},billing={cpus}",
                      tres_alloc_str=(f"cpu={cpus},mem={MEM_PER_GPU_MB * job.gpus}M,node={len(hosts)},"
                                      f"billing={cpus},gres/gpu={job.gpus}"))
        record["job_resources"].update(allocated_cores=cpus, allocated_nodes=[
            {"sockets": {"0": {"cores": {str(c): "allocated" for c in range(CPUS_PER_GPU * len(idx) // 2)}},
                         "1": {"cores": {str(c): "allocated" for c in range(CPUS_PER_GPU * len(idx) // 2)}}},
             "nodename": h, "cpus_used": CPUS_PER_GPU * len(idx), "memory_used": 0,
             "memory_allocated": MEM_PER_GPU_MB * len(idx)} for h, idx in by_host.items()])
    return record


def _pending(twin, job, names: SlurmNames, now_s: int, detail: bool) -> dict:
    record = _common(job, names, state="PENDING")
    record.update(nodes="", gres_detail=[], start_time=0, job_resources={})
    if detail:
        record.update(_DETAIL)
        nodes = max(1, -(-job.gpus // 8))
        record.update(_identity(job, names, twin), state_reason="Resources", last_sched_evaluation=now_s,
                      batch_host="", cpus=CPUS_PER_GPU * job.gpus, tasks=nodes, node_count=nodes, end_time=0,
                      tres_per_node=f"gres:gpu:{min(job.gpus, 8)}", tres_alloc_str="",
                      tres_req_str=f"cpu={CPUS_PER_GPU * job.gpus},node={nodes},billing={CPUS_PER_GPU * job.gpus}")
    return record


def _common(job, names: SlurmNames, *, state: str) -> dict:
    return {"job_id": int(job.id), "array_job_id": 0, "array_task_id": None, "het_job_id": 0, "het_job_offset": 0,
            "account": names.account(job.tenant), "partition": names.partitions.get(job.job_class, job.job_class),
            "qos": "normal", "user_name": _user(job, names), "job_state": state}


def _identity(job, names: SlurmNames, twin) -> dict:
    submit_s = job.submit_ns // 1_000_000_000
    uid = FIRST_USER_ID + int(job.id) % 40
    return {"name": job.job_class, "cluster": twin.site, "submit_time": submit_s, "eligible_time": submit_s,
            "accrue_time": submit_s, "user_id": uid, "group_id": uid, "group_name": names.account(job.tenant),
            "time_limit": TIME_LIMIT_MIN, "current_working_directory": f"/home/{_user(job, names)}"}


def _user(job, names: SlurmNames) -> str:
    # A stable made-up user per job (8 per account), drawn from no random stream: the twin's
    # seeded streams stay untouched by whoever reads its scheduler.
    return f"{names.account(job.tenant)}-u{int(job.id) % 8 + 1}"


def _gres_name(twin, host: str) -> str:
    model = twin.slots[twin.gpu_positions(host)[0]].model
    match = _MODEL_TYPE.search(model or "")
    return f"gpu:{match.group(1).lower()}" if match else "gpu"


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] → "0-2,5" (Slurm's bitmap format)."""
    parts, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            parts.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ",".join(parts)


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def compress(hosts: list[str]) -> str:
    """A Slurm hostlist for *hosts* in their order: ``A01-n01,A01-n02,B01-n04`` →
    ``A01-n[01-02],B01-n04`` (runs of one prefix and digit width)."""
    groups: list[tuple[str, int, list[int]] | str] = []
    for host in hosts:
        m = _NUMBERED.match(host)
        if m is None:
            groups.append(host)
            continue
        prefix, digits = m.group(1), m.group(2)
        last = groups[-1] if groups else None
        if isinstance(last, tuple) and last[0] == prefix and last[1] == len(digits):
            last[2].append(int(digits))
        else:
            groups.append((prefix, len(digits), [int(digits)]))
    out = []
    for g in groups:
        if isinstance(g, str):
            out.append(g)
        elif len(g[2]) == 1:
            out.append(f"{g[0]}{g[2][0]:0{g[1]}d}")
        else:
            spans = _ranges(g[2]).split(",")
            padded = ["-".join(f"{int(n):0{g[1]}d}" for n in span.split("-")) for span in spans]
            out.append(f"{g[0]}[{','.join(padded)}]")
    return ",".join(out)


# Keys of a 22.05 job record that say nothing the twin models, as Slurm printed them.
_DETAIL = json.loads("""{"admin_comment": "", "array_max_tasks": 0, "array_task_string": "", "association_id": 0,
"batch_features": "", "batch_flag": true, "flags": ["JOB_WAS_RUNNING"], "burst_buffer": "", "burst_buffer_state": "",
"cluster_features": "", "command": "", "comment": "", "container": "", "contiguous": false, "core_spec": null,
"thread_spec": null, "cores_per_socket": null, "billable_tres": 1.0, "cpus_per_task": null,
"cpu_frequency_minimum": null, "cpu_frequency_maximum": null, "cpu_frequency_governor": null, "cpus_per_tres": "",
"deadline": 0, "delay_boot": 0, "dependency": "", "derived_exit_code": 0, "excluded_nodes": "", "exit_code": 0,
"features": "", "federation_origin": "", "federation_siblings_active": "", "federation_siblings_viable": "",
"licenses": "", "max_cpus": 0, "max_nodes": 0, "mcs_label": "", "memory_per_tres": "", "nice": null,
"tasks_per_core": null, "tasks_per_node": 0, "tasks_per_socket": null, "tasks_per_board": 0, "het_job_id_set": "",
"prefer": "", "memory_per_node": null, "memory_per_cpu": null, "minimum_cpus_per_node": 1,
"minimum_tmp_disk_per_node": 0, "preempt_time": 0, "pre_sus_time": 0, "priority": 4294901759, "profile": null,
"reboot": false, "required_nodes": "", "requeue": true, "resize_time": 0, "restart_cnt": 0, "resv_name": "",
"shared": null, "show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"], "sockets_per_board": 0,
"sockets_per_node": null, "state_description": "", "standard_error": "/dev/null", "standard_input": "/dev/null",
"standard_output": "/dev/null", "suspend_time": 0, "system_comment": "", "time_minimum": 0,
"threads_per_core": null, "tres_bind": "", "tres_freq": "", "tres_per_job": "", "tres_per_socket": "",
"tres_per_task": "", "wckey": ""}""")


# --- in-process: the same reader as a real site ---------------------------------------------------


def workload_points(twin, names: SlurmNames, mapping: WorkloadMapping) -> list[Point]:
    """The twin's ``workload`` points now, through the Slurm source's own parsing and mapping:
    the JSON the twin's slurmrestd would answer → ``parse_jobs`` → ``workload_points``, with the
    GPUs' (host, index) → UUID as the twin's GPU telemetry reports them."""
    holds = parse_jobs(jobs_body(twin, names, detail=False), "the twin's slurmrestd")
    gpus = {(s.host, s.index): u for s, u in zip(twin.slots, twin.uuids)}
    return map_holds(holds, gpus, mapping, site=twin.site, source="slurm", now_ns=twin.now_ns).points


# --- over HTTP -----------------------------------------------------------------------------------


class SlurmRestServer:
    """slurmrestd's ``GET /slurm/v0.0.38/jobs`` for the twin, on loopback (waitress, as every
    dcim service). *render* returns the body (called per request: under ``dcim up`` it runs on
    the twin's own loop, so an answer never sees a half-done step). *token*: the JWT the twin
    accepts in X-SLURM-USER-TOKEN; no token or no user name → 401, another token → the 500
    with which slurmrestd passes on slurmctld's refusal."""

    def __init__(self, render: Callable[[], bytes], token: str, *, host: str = "127.0.0.1", port: int = 0):
        from dcim.web import Limits, WsgiServer

        if not token:
            raise ValueError("the twin's slurmrestd needs a token")
        self._render = render
        self._token = token.encode()
        self._server = WsgiServer(self.wsgi, host, port, name="twin-slurmrestd",
                                  limits=Limits(connection_limit=64, max_body_bytes=64 * 1024, threads=2))

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> SlurmRestServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def wsgi(self, environ, start_response):
        if environ.get("PATH_INFO") != JOBS_PATH or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, "404 Not Found", "text/plain", NOT_FOUND_BODY)
        token = environ.get("HTTP_X_SLURM_USER_TOKEN", "").encode()
        if not token or not environ.get("HTTP_X_SLURM_USER_NAME"):
            return _answer(start_response, "401 Unauthorized", "text/plain", NO_AUTH_BODY)
        if not hmac.compare_digest(token, self._token):
            body = json.dumps({"meta": META, "errors": [REFUSED_ERROR], "jobs": []}, indent=2).encode()
            return _answer(start_response, "500 Internal Server Error", "application/json", body)
        try:
            body = self._render()
        except Exception:  # noqa: BLE001 — slurmrestd answers 500 when it cannot reach slurmctld
            log.exception("the twin's slurmrestd could not render its jobs")
            body = json.dumps({"meta": META, "errors": [REFUSED_ERROR], "jobs": []}).encode()
            return _answer(start_response, "500 Internal Server Error", "application/json", body)
        return _answer(start_response, "200 OK", "application/json", body)


def _answer(start_response, status: str, content_type: str, body: bytes):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
