"""The Slurm workload source against a real Slurm 22.05 (munged, slurmctld, slurmd, slurmrestd on
loopback, tests/fixtures/slurm.py): what dcim records equals what ``scontrol show job -d`` says,
for running, finished, cancelled and requeued jobs, through squeue --json and slurmrestd.
Parsing cases this one-node Slurm cannot produce (jobs on several nodes, other GRES strings)
are checked on JSON in the shape Slurm answers, and labelled so."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from datetime import datetime

import pytest

from collectors.workload import slurm as slurm_mod
from collectors.workload.base import WorkloadError
from collectors.workload.collector import WorkloadCollector
from collectors.workload.hostlist import HostlistError, expand
from collectors.workload.mapping import WorkloadMapping
from collectors.workload.slurm import SlurmSource, gpu_indices, parse_jobs
from dcim.config import SecretRef

MAPPING = WorkloadMapping({"hanbit": "hanbit-univ"}, {"gpu": "training", "infer": "inference"})


@pytest.fixture
def cluster(slurm):
    """The session's Slurm with no job left over from another test."""
    slurm.cancel_all()
    yield slurm
    slurm.cancel_all()


def _cli(cluster, **kw) -> SlurmSource:
    return SlurmSource(mode="cli", slurm_conf=cluster.conf, **kw)


def _holds_of(holds, job_id: str) -> dict[str, list[int]]:
    by_node: dict[str, list[int]] = {}
    for h in holds:
        if h.job == job_id:
            by_node.setdefault(h.host, []).append(h.gpu_index)
    return {host: sorted(idx) for host, idx in by_node.items()}


def _start_ns(cluster, job_id: str) -> int:
    # scontrol prints local time; squeue's JSON epoch seconds
    return int(datetime.fromisoformat(cluster.show_job(job_id)["StartTime"]).timestamp()) * 1_000_000_000


# --- against the real Slurm ----------------------------------------------------------------------


def test_running_jobs_hold_what_scontrol_says(cluster):
    a = cluster.sbatch("--gres=gpu:3", "-A", "hanbit", "-p", "gpu", "--wrap", "sleep 60")
    b = cluster.sbatch("--gres=gpu:1", "-A", "startup-x", "-p", "infer", "--array=0-1", "--wrap", "sleep 60")
    for job in (a, f"{b}_0", f"{b}_1"):
        cluster.wait_state(job, {"RUNNING"})
    holds = _cli(cluster).poll()
    for job, account, partition in ((a, "hanbit", "gpu"), (f"{b}_0", "startup-x", "infer"),
                                    (f"{b}_1", "startup-x", "infer")):
        slurm_view = cluster.gres_by_node(job)
        assert slurm_view and _holds_of(holds, job) == slurm_view, job
        mine = [h for h in holds if h.job == job]
        assert {(h.account, h.partition, h.start_ns) for h in mine} == {(account, partition, _start_ns(cluster, job))}
        assert {h.user for h in mine} == {"root"}
    assert len(holds) == 5
    # no GPU held twice
    assert len({(h.host, h.gpu_index) for h in holds}) == 5


def test_finished_and_cancelled_jobs_are_gone(cluster):
    short = cluster.sbatch("--gres=gpu:2", "-A", "hanbit", "--wrap", "sleep 8")
    long = cluster.sbatch("--gres=gpu:2", "-A", "hanbit", "--wrap", "sleep 60")
    cluster.wait_state(short, {"RUNNING"})
    cluster.wait_state(long, {"RUNNING"})
    source = _cli(cluster)
    assert {h.job for h in source.poll()} == {short, long}
    cluster.run("scancel", long)
    cluster.wait_state(short, {"COMPLETED", "GONE"}, timeout_s=30)
    cluster.wait_state(long, {"CANCELLED", "GONE"}, timeout_s=30)
    assert source.poll() == []


def test_a_requeued_job_is_gone_then_back_where_slurm_puts_it(cluster):
    # Slurm holds a requeued job back for the credential lifetime (AuthInfo cred_expire, 120 s by
    # default, 10 s in this cluster): the node has revoked the old credential, and a job forced
    # to start sooner ("scontrol update StartTime=now") is killed as "Job credential revoked".
    job = cluster.sbatch("--gres=gpu:4", "-A", "hanbit", "--wrap", "sleep 60")
    cluster.wait_state(job, {"RUNNING"})
    source = _cli(cluster)
    assert _holds_of(source.poll(), job) == cluster.gres_by_node(job)
    cluster.run("scontrol", "requeue", job)
    cluster.wait_state(job, {"PENDING"})
    assert _holds_of(source.poll(), job) == {}
    cluster.wait_state(job, {"RUNNING"}, timeout_s=60)
    back = _holds_of(source.poll(), job)
    assert back == cluster.gres_by_node(job) and sum(len(i) for i in back.values()) == 4


def test_the_collector_writes_slurms_view_per_gpu_with_unmapped_accounts_visible(cluster):
    mapped = cluster.sbatch("--gres=gpu:2", "-A", "hanbit", "-p", "gpu", "--wrap", "sleep 60")
    stranger = cluster.sbatch("--gres=gpu:1", "-A", "nobody-knows", "-p", "infer", "--wrap", "sleep 60")
    for job in (mapped, stranger):
        cluster.wait_state(job, {"RUNNING"})
    gpus = {(cluster.host, i): f"GPU-{cluster.host}-{i}" for i in range(8)}
    collector = WorkloadCollector(_cli(cluster), MAPPING, site="s", gpus=lambda: gpus)
    [result] = asyncio.run(collector.poll(30.0))
    assert result.ok and result.target == "slurmctld" and result.counters == {"jobs": 2, "jobs_unplaced": 0}
    fields = {p.tags["uuid"]: p.fields for p in result.points}
    expected = {}
    for job, tenant, job_class, account in ((mapped, "hanbit-univ", "training", "hanbit"),
                                            (stranger, "unmapped:nobody-knows", "inference", "nobody-knows")):
        for host, indices in cluster.gres_by_node(job).items():
            for i in indices:
                expected[gpus[(host, i)]] = {"job": job, "tenant": tenant, "job_class": job_class,
                                             "account": account, "source": "slurm",
                                             "start_ns": _start_ns(cluster, job)}
    assert len(expected) == 3
    for uuid in gpus.values():
        assert fields[uuid] == expected.get(uuid, {"job": "", "source": "slurm"}), uuid


def test_a_stopped_controller_is_a_clear_failure_then_recovers(cluster):
    job = cluster.sbatch("--gres=gpu:1", "-A", "hanbit", "--wrap", "sleep 120")
    cluster.wait_state(job, {"RUNNING"})
    collector = WorkloadCollector(_cli(cluster, timeout_s=30), MAPPING, site="s", gpus=lambda: {})
    cluster.stop_controller()
    try:
        [down] = asyncio.run(collector.poll(40.0))
    finally:
        cluster.start_controller()
    assert not down.ok and down.points == []
    # squeue exits 0 here, with an empty job list and an error entry: never read as "no jobs"
    assert down.error == "squeue --json: slurm_load_jobs: Failed while looking for jobs (Unspecified error)"
    [up] = asyncio.run(collector.poll(30.0))
    assert up.ok and up.counters["jobs"] == 1  # slurmctld recovered the running job from its state
    assert _holds_of(_cli(cluster).poll(), job) == cluster.gres_by_node(job) != {}


# --- slurmrestd (mode "rest") -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest(slurm, tmp_path_factory):
    """slurmrestd on loopback with a JWT from `scontrol token`, in a secret file."""
    token = slurm.start_rest()
    path = tmp_path_factory.mktemp("jwt") / "slurm.jwt"
    path.write_text(token + "\n")
    return SecretRef(file=path), token


def test_rest_mode_reads_the_same_holds_as_squeue(cluster, rest):
    ref, token = rest
    job = cluster.sbatch("--gres=gpu:3", "-A", "hanbit", "-p", "gpu", "--wrap", "sleep 60")
    cluster.wait_state(job, {"RUNNING"})
    source = SlurmSource(mode="rest", rest_url=cluster.rest_url, rest_user="nobody", rest_token=ref, timeout_s=10)
    assert source.target == f"127.0.0.1:{cluster.rest_port}"
    holds = source.poll()
    assert _holds_of(holds, job) == cluster.gres_by_node(job)
    assert holds == _cli(cluster).poll()


def test_rest_refusals_are_clear_and_never_show_the_token(cluster, rest, tmp_path):
    ref, token = rest
    bad = tmp_path / "bad.jwt"
    bad.write_text("not-a-jwt")
    cases = [
        (SecretRef(file=bad), cluster.rest_url, "HTTP "),
        (SecretRef(file=tmp_path / "missing.jwt"), cluster.rest_url, "cannot read secret file"),
        (ref, f"http://127.0.0.1:{_closed_port()}", "refused"),
    ]
    for secret, url, reason in cases:
        with pytest.raises(WorkloadError) as info:
            SlurmSource(mode="rest", rest_url=url, rest_user="nobody", rest_token=secret, timeout_s=5).poll()
        assert reason in str(info.value) and token not in str(info.value), str(info.value)


def test_rest_body_limit_against_the_real_slurmrestd(cluster, rest, monkeypatch):
    monkeypatch.setattr(slurm_mod, "MAX_BODY_BYTES", 1000)
    source = SlurmSource(mode="rest", rest_url=cluster.rest_url, rest_user="nobody", rest_token=rest[0])
    with pytest.raises(WorkloadError, match="larger than 1,000 bytes"):
        source.poll()


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A loopback server that trickles its answer or redirects (what slurmrestd never does)."""

    seen_tokens: list = []

    def do_GET(self):  # noqa: N802 — http.server's name
        _Hostile.seen_tokens.append((self.path, self.headers.get("X-SLURM-USER-TOKEN")))
        if self.path.startswith("/elsewhere"):
            self.send_response(200)
            self.end_headers()
            return
        if self.server.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        for _ in range(60):
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.1)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode,reason", [("trickle", "not complete within 1 s"), ("redirect", "HTTP 302")])
def test_rest_deadline_and_no_redirects(mode, reason, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.mode = mode
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "t.jwt"
    secret.write_text("tok-123")
    _Hostile.seen_tokens = []
    try:
        source = SlurmSource(mode="rest", rest_url=f"http://127.0.0.1:{server.server_port}", rest_user="u",
                             rest_token=SecretRef(file=secret), timeout_s=1)
        started = time.monotonic()
        with pytest.raises(WorkloadError, match=reason):
            source.poll()
        assert time.monotonic() - started < 3
        assert [path for path, _ in _Hostile.seen_tokens] == ["/slurm/v0.0.38/jobs"]  # never followed
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    from tests.fixtures.slurm import free_port

    return free_port()


# --- squeue itself failing ---------------------------------------------------------------------


@pytest.mark.parametrize("script,reason", [
    ("sleep 5", "no answer within 0.5 s"),
    ("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
     "squeue --json exited 1: slurm_load_jobs error: Unable to contact slurm controller"),
    ("echo '<html>'", "squeue --json: not JSON"),
    ("echo '{\"errors\": [\"boom\"], \"jobs\": []}'", "squeue --json: boom"),
    ("echo '{\"meta\": {}}'", "no 'jobs' list in the answer"),
])
def test_squeue_failures_are_workload_errors(tmp_path, script, reason):
    fake = tmp_path / "squeue"  # a broken squeue on PATH: what a site with a sick client sees
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    with pytest.raises(WorkloadError) as info:
        SlurmSource(squeue=str(fake), timeout_s=0.5).poll()
    assert reason in str(info.value)


def test_a_missing_squeue_names_the_command():
    with pytest.raises(WorkloadError, match="squeue not found: '/nonexistent/squeue'"):
        SlurmSource(squeue="/nonexistent/squeue").poll()


# --- parsing cases one node cannot produce (JSON in Slurm's v0.0.38 shape) -------------------------


@pytest.mark.parametrize("entry,indices", [
    ("gpu:h100:3(IDX:0-2)", [0, 1, 2]), ("gpu:2(IDX:0,3)", [0, 3]), ("gpu:h100:4(IDX:0-1,4-5)", [0, 1, 4, 5]),
    ("gpu:a100:1(IDX:0),gpu:v100:2(IDX:1-2)", [0, 1, 2]), ("mps:100(0/100),gpu:1(IDX:5)", [5]),
    ("gpu:h100:2(S:0-1)(IDX:2-3)", [2, 3]), ("gpu:0", []), ("(null)", []), ("", []), ("nic:1(IDX:0)", []),
    ("gpu:h100:2(IDX:N/A)", None), ("gpu:h100:2", None), ("gpu:1(IDX:3-1)", None), (None, None),
])
def test_gres_detail_forms(entry, indices):
    assert gpu_indices(entry) == indices


@pytest.mark.parametrize("text,hosts", [
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]), ("vm", ["vm"]), ("", []),
    ("a[1-2]b[3,5],x-[08-10]", ["a1b3", "a1b5", "a2b3", "a2b5", "x-08", "x-09", "x-10"]),
])
def test_hostlists(text, hosts):
    assert expand(text) == hosts


@pytest.mark.parametrize("text", ["node[01-", "node]1[", "node[3-1]", "node[a-b]", "n[0-99999999]"])
def test_bad_hostlists_are_named(text):
    with pytest.raises(HostlistError, match="hostlist"):
        expand(text)


def _job(**kw) -> dict:
    job = {"job_id": 7, "array_job_id": 0, "array_task_id": None, "het_job_id": 0, "het_job_offset": 0,
           "account": "hanbit", "partition": "gpu", "qos": "normal", "user_name": "kim", "job_state": "RUNNING",
           "nodes": "node[01-02]", "gres_detail": ["gpu:h100:2(IDX:0-1)", "gpu:h100:2(IDX:4,6)"],
           "start_time": 1700000000}
    return {**job, **kw}


def test_a_job_on_several_nodes_holds_gpus_on_each_in_node_order():
    holds = parse_jobs(json.dumps({"jobs": [_job()]}))
    assert _holds_of(holds, "7") == {"node01": [0, 1], "node02": [4, 6]}
    assert {(h.qos, h.start_ns) for h in holds} == {("normal", 1_700_000_000 * 10**9)}
    # gres_detail follows the node table (the allocation), which job_resources names when given
    listed = _job(job_resources={"allocated_nodes": [{"nodename": "node02"}, {"nodename": "node01"}]})
    assert _holds_of(parse_jobs(json.dumps({"jobs": [listed]})), "7") == {"node02": [0, 1], "node01": [4, 6]}


@pytest.mark.parametrize("extra,job_id,held", [
    ({"array_job_id": 5, "array_task_id": 3}, "5_3", True), ({"het_job_id": 9, "het_job_offset": 1}, "9+1", True),
    ({"job_state": "COMPLETING"}, "7", True), ({"job_state": ["RUNNING"]}, "7", True),
    ({"job_state": "SUSPENDED"}, "7", False), ({"job_state": "PENDING"}, "7", False),
    ({"start_time": {"set": True, "number": 5}}, "7", True), ({"gres_detail": []}, "7", False),
])
def test_job_ids_and_states(extra, job_id, held):
    holds = parse_jobs(json.dumps({"jobs": [_job(**extra)]}))
    assert bool(holds) == held and all(h.job == job_id for h in holds)


@pytest.mark.parametrize("body,reason", [
    ("{", "not JSON"), ("[]", "no 'jobs' list"), ('{"jobs": {}}', "no 'jobs' list"), ('{"jobs": [1]}', "not an object"),
    (json.dumps({"jobs": [{"job_id": 1}]}), "job #0 has no valid 'job_state'"),
    (json.dumps({"jobs": [_job(nodes="n[1-")]}), "job 7: hostlist 'n[1-'"),
    (json.dumps({"jobs": [{k: v for k, v in _job().items() if k != "gres_detail"}]}), "job #0 has no 'gres_detail'"),
])
def test_garbage_is_a_workload_error_naming_the_problem(body, reason):
    with pytest.raises(WorkloadError, match=reason.replace("[", r"\[")):
        parse_jobs(body)


# --- `dcim collect --once` with [workload] source = "slurm" ------------------------------------


def test_dcim_collect_once_records_slurms_jobs_on_the_gpus_in_the_store(cluster, tmp_path, capsys):
    from dcim.cli.main import main
    from dcim.metrics import Point
    from dcim.store.sqlite import SqliteStore

    job = cluster.sbatch("--gres=gpu:2", "-A", "hanbit", "-p", "gpu", "--wrap", "sleep 60")
    cluster.wait_state(job, {"RUNNING"})
    db = tmp_path / "collect.sqlite"
    store = SqliteStore(db)  # the GPU telemetry an agent wrote: index → UUID on this host
    try:
        store.write([Point("gpu", {"site": "slurm-site", "room": "hall", "rack": "R1", "host": cluster.host,
                                   "gpu": str(i), "uuid": f"GPU-{i:04d}", "model": "NVIDIA H100 80GB HBM3"},
                           {"power_w": 100.0}) for i in range(8)])
    finally:
        store.close()
    cfg = tmp_path / "slurm.toml"
    cfg.write_text(f"""
[site]
name = "slurm-site"
[[tenants]]
name = "hanbit-univ"
[[rooms]]
name = "hall"
[[rooms.rows]]
name = "A"
[[rooms.rows.racks]]
name = "R1"
[workload]
source = "slurm"
tenants = {{ hanbit = "hanbit-univ" }}
job_classes = {{ gpu = "training" }}
[workload.slurm]
slurm_conf = "{cluster.conf}"
[store]
backend = "sqlite"
path = "{db}"
[store.spool]
path = "{tmp_path / 'spool'}"
""")
    rc = main(["collect", "--config", str(cfg), "--once", "--no-gpu"])
    out = capsys.readouterr().out
    assert rc == 0, out
    [line] = [line for line in out.splitlines() if "slurmctld" in line]
    assert line.split()[:3] == ["workload-slurm", "slurmctld", "ok"] and "8 points" in line
    held = cluster.gres_by_node(job)[cluster.host]
    store = SqliteStore(db)
    try:
        fields = {p.tags["uuid"]: p.fields for p in store.latest("workload", where={"site": "slurm-site"})}
        health = {p.tags["target"]: p.fields for p in store.latest("collector")}
    finally:
        store.close()
    assert len(fields) == 8 and len(held) == 2
    for i in range(8):
        expected = ({"job": job, "tenant": "hanbit-univ", "job_class": "training", "account": "hanbit",
                     "start_ns": _start_ns(cluster, job)} if i in held else {"job": ""})
        assert {k: v for k, v in fields[f"GPU-{i:04d}"].items() if k != "source"} == expected, i
    assert health["slurmctld"]["ok"] is True and health["slurmctld"]["jobs"] == 1
