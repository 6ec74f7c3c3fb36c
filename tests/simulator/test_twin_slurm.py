"""The twin's scheduler is a Slurm: its jobs reach dcim through the Slurm workload source, as a
real site's do (simulator/slurm_api.py).

Against the twin's slurmrestd over HTTP on loopback, read by the production ``SlurmSource``
(mode "rest"): what it reads equals the twin's hidden job placement; its records carry every
key a real Slurm 22.05.8 slurmrestd printed (tests/fixtures/slurm.py's cluster, captured in
``REAL_JOB_KEYS``); refusals are the real one's. In-process, the twin's ``workload`` points are
what the same parsing and mapping make of the same JSON. End to end, ``dcim up`` on the demo
records the twin's jobs with ``source = "slurm"``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import pytest

from collectors.workload.base import WorkloadError
from collectors.workload.collector import WorkloadCollector
from collectors.workload.hostlist import expand
from collectors.workload.slurm import SlurmSource, parse_jobs
from dcim.config import SecretRef, load_config
from simulator import slurm_api
from simulator.facility import FacilityTwin
from simulator.service import TwinService, twin_slurm_config, twin_slurm_token
from tests.simulator.conftest import JAN_NS

TOKEN_ENV = "DCIM_T_TWIN_SLURM_JWT"
TOKEN = "twin-jwt-Qm9vdGgK"

# The keys of a job record (and of its job_resources, allocated_nodes) in slurmrestd 22.05.8's
# GET /slurm/v0.0.38/jobs, as the real one answered on the test cluster.
REAL_JOB_KEYS = frozenset("""account accrue_time admin_comment array_job_id array_max_tasks array_task_id
array_task_string association_id batch_features batch_flag batch_host billable_tres burst_buffer burst_buffer_state
cluster cluster_features command comment container contiguous core_spec cores_per_socket cpu_frequency_governor
cpu_frequency_maximum cpu_frequency_minimum cpus cpus_per_task cpus_per_tres current_working_directory deadline
delay_boot dependency derived_exit_code eligible_time end_time excluded_nodes exit_code features federation_origin
federation_siblings_active federation_siblings_viable flags gres_detail group_id group_name het_job_id
het_job_id_set het_job_offset job_id job_resources job_state last_sched_evaluation licenses max_cpus max_nodes
mcs_label memory_per_cpu memory_per_node memory_per_tres minimum_cpus_per_node minimum_tmp_disk_per_node name nice
node_count nodes partition pre_sus_time preempt_time prefer priority profile qos reboot requeue required_nodes
resize_time restart_cnt resv_name shared show_flags sockets_per_board sockets_per_node standard_error
standard_input standard_output start_time state_description state_reason submit_time suspend_time system_comment
tasks tasks_per_board tasks_per_core tasks_per_node tasks_per_socket thread_spec threads_per_core time_limit
time_minimum tres_alloc_str tres_bind tres_freq tres_per_job tres_per_node tres_per_socket tres_per_task
tres_req_str user_id user_name wckey""".split())
REAL_RESOURCES_KEYS = {"allocated_cores", "allocated_hosts", "allocated_nodes", "nodes"}
REAL_NODE_KEYS = {"cpus_used", "memory_allocated", "memory_used", "nodename", "sockets"}


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return SecretRef(env=TOKEN_ENV)


@pytest.fixture
def served(demo_config, token_env):
    """The demo twin an hour into January, its slurmrestd on a free loopback port."""
    twin = FacilityTwin(demo_config, seed=42, start_ns=JAN_NS)
    for _ in range(12):
        twin.advance(300.0)
    server = slurm_api.SlurmRestServer(lambda: slurm_api.jobs_body(twin, twin.slurm_names), TOKEN).start()
    try:
        yield twin, server
    finally:
        server.stop()


def _source(url: str, ref: SecretRef, **kw) -> SlurmSource:
    return SlurmSource(mode="rest", rest_url=url, rest_user="dcim", rest_token=ref, timeout_s=5, **kw)


def _truth(twin) -> dict[tuple[str, int], str]:
    """The twin's hidden placement: (host, GPU index) → the job running there."""
    return {(s.host, s.index): job.id for s, job in zip(twin.slots, twin.workload.gpu_job) if job is not None}


def test_the_twins_slurmrestd_answers_its_job_placement(served, token_env):
    twin, server = served
    holds = _source(server.url, token_env).poll()
    assert {(h.host, h.gpu_index): h.job for h in holds} == _truth(twin) != {}
    assert len(holds) == len(_truth(twin))  # no GPU twice
    names = twin.slurm_names
    for h in holds:
        job = twin.workload.jobs[h.job]
        assert (h.account, h.partition, h.start_ns) == (names.account(job.tenant), names.partitions[job.job_class],
                                                      job.start_ns // 10**9 * 10**9)
    # the demo's accounts and partitions are the ones its [workload] maps back
    assert {h.account for h in holds} <= {"hanbit", "kai", "neuron"}
    assert {h.partition for h in holds} <= {"train", "finetune", "infer", "batch"}


def test_its_records_are_shaped_like_slurm_22_05s(served):
    twin, server = served
    req = urllib.request.Request(server.url + "/slurm/v0.0.38/jobs",
                                 headers={"X-SLURM-USER-NAME": "dcim", "X-SLURM-USER-TOKEN": TOKEN})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        doc = json.loads(resp.read())
    assert doc["errors"] == [] and doc["meta"]["Slurm"]["release"] == "22.05.8"
    running = [j for j in doc["jobs"] if j["job_state"] == "RUNNING"]
    assert len(running) == len(twin.workload.jobs)
    for job in doc["jobs"]:
        assert set(job) == REAL_JOB_KEYS, set(job) ^ REAL_JOB_KEYS
    for job in running:
        res = job["job_resources"]
        assert set(res) == REAL_RESOURCES_KEYS and all(set(n) == REAL_NODE_KEYS for n in res["allocated_nodes"])
        hosts = [n["nodename"] for n in res["allocated_nodes"]]
        assert expand(job["nodes"]) == hosts and len(job["gres_detail"]) == len(hosts)
        assert all(re.fullmatch(r"gpu:h100:\d\(IDX:[\d,-]+\)", g) for g in job["gres_detail"])


def test_queued_jobs_are_pending_and_hold_nothing(demo_config, token_env):
    twin = FacilityTwin(demo_config, seed=7, start_ns=JAN_NS, arrivals=False)
    tenant = demo_config.tenants[2].name  # neuron-labs: 4 racks, 128 GPUs
    big = [twin.submit_job(job_class="training", tenant=tenant, gpus=64) for _ in range(3)]
    assert [j.start_ns is not None for j in big] == [True, True, False]
    doc = slurm_api.jobs_document(twin, twin.slurm_names)
    assert [(j["job_id"], j["job_state"]) for j in doc["jobs"]] == [(int(j.id), s) for j, s in
                                                                     zip(big, ["RUNNING", "RUNNING", "PENDING"])]
    holds = parse_jobs(json.dumps(doc))
    assert {h.job for h in holds} == {big[0].id, big[1].id} and len(holds) == 128


def test_refusals_are_slurmrestds_and_never_show_the_token(served, monkeypatch):
    twin, server = served
    monkeypatch.setenv("DCIM_T_WRONG", "not-the-jwt")
    # slurmrestd passes a token on to slurmctld, which refuses it: 500 with slurmctld's error
    with pytest.raises(WorkloadError, match="HTTP 500 Failed while looking for jobs") as info:
        _source(server.url, SecretRef(env="DCIM_T_WRONG")).poll()
    assert "not-the-jwt" not in str(info.value)
    # no token at all: 401 from slurmrestd itself
    with pytest.raises(WorkloadError, match="HTTP 401 Authentication failure"):
        SlurmSource(mode="rest", rest_url=server.url, timeout_s=5).poll()
    for path in ("/slurm/v0.0.38/nodes", "/openapi/v3"):
        req = urllib.request.Request(server.url + path, headers={"X-SLURM-USER-TOKEN": TOKEN})
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(req, timeout=5)
        assert http.value.code == 404


def test_the_collector_maps_the_twins_jobs_to_their_tenants_and_classes(served, token_env, demo_config):
    twin, server = served
    gpus = {(s.host, s.index): u for s, u in zip(twin.slots, twin.uuids)}
    collector = WorkloadCollector(_source(server.url, token_env), twin.slurm_names.mapping(demo_config),
                                  site=twin.site, gpus=lambda: gpus)
    [result] = asyncio.run(collector.poll(10.0))
    assert result.ok and result.counters == {"jobs": len(twin.workload.jobs), "jobs_unplaced": 0}
    by_uuid = {p.tags["uuid"]: p.fields for p in result.points}
    for i, job in enumerate(twin.workload.gpu_job):
        fields = by_uuid[twin.uuids[i]]
        if job is None:
            assert fields == {"job": "", "source": "slurm"}
        else:
            assert (fields["job"], fields["tenant"], fields["job_class"]) == (job.id, job.tenant, job.job_class)
    # In-process (backfill, tests) the twin's workload points are the same reading of the same
    # JSON, and nothing else: the twin writes no field of its own (no true throughput).
    inproc = {p.tags["uuid"]: p.fields for p in twin.points() if p.measurement == "workload"}
    assert inproc == by_uuid


def test_reading_the_scheduler_leaves_the_twin_deterministic(demo_config, token_env):
    def run(read: bool):
        twin = FacilityTwin(demo_config, seed=3, start_ns=JAN_NS)
        bodies = []
        for _ in range(6):
            twin.advance(600.0)
            if read:
                bodies.append(slurm_api.jobs_body(twin, twin.slurm_names))
        return twin, bodies

    a, bodies_a = run(True)
    b, _ = run(False)
    c, bodies_c = run(True)
    assert bodies_a == bodies_c
    assert [j.id for j in a.workload.gpu_job if j] == [j.id for j in b.workload.gpu_job if j]
    assert a.gpu_state.power_w.tolist() == b.gpu_state.power_w.tolist()


@pytest.mark.parametrize("hosts,text", [
    (["A01-n01", "A01-n02", "A01-n03"], "A01-n[01-03]"), (["A01-n04", "A02-n01"], "A01-n04,A02-n01"),
    (["n1", "n2", "n4", "x"], "n[1-2,4],x"), (["gpu009", "gpu010"], "gpu[009-010]"),
])
def test_hostlists_round_trip(hosts, text):
    assert slurm_api.compress(hosts) == text and expand(text) == hosts


def test_the_service_serves_it_on_its_loop_and_configures_the_collector(demo_config, monkeypatch):
    monkeypatch.delenv("DCIM_SLURM_JWT", raising=False)
    env: dict[str, str] = {}
    token, ref, generated = twin_slurm_token(demo_config, env)
    assert generated and ref == SecretRef(env="DCIM_SLURM_JWT") and env["DCIM_SLURM_JWT"] == token
    assert twin_slurm_token(demo_config, env) == (token, ref, False)  # a set one is kept
    monkeypatch.setenv("DCIM_SLURM_JWT", token)
    svc = TwinService(demo_config, twin=FacilityTwin(demo_config, seed=5, start_ns=JAN_NS), speed=0,
                      serve_snmp=False)
    svc.start_background()
    try:
        url = svc.serve_slurm(token)
        cfg = twin_slurm_config(demo_config, url, ref, svc.twin.slurm_names)
        assert (cfg.workload.source, cfg.workload.slurm.mode, cfg.workload.slurm.rest_url) == ("slurm", "rest", url)
        holds = SlurmSource.from_config(cfg).poll()
        assert {(h.host, h.gpu_index): h.job for h in holds} == svc.call(lambda: _truth(svc.twin)) != {}
    finally:
        svc.stop_slurm()
        svc.stop_background()


# --- dcim up, end to end --------------------------------------------------------------------------


@pytest.mark.slow
def test_dcim_up_records_the_twins_jobs_through_slurm(tmp_path):
    from dcim.inventory import build_inventory
    from dcim.store import open_store
    from tests.e2e.test_up import run_up, wait_for, write_config

    config = write_config(tmp_path, {"path": str(tmp_path / "dcim.sqlite"), "spool": {"path": str(tmp_path / "spool")}})
    cfg = load_config(config)
    proc, _port, _launched = run_up(tmp_path, config)
    try:
        wait_for(lambda: re.search(r"dashboard on (http://\S+)", proc.stdout.readline() or ""), 240,
                 "the dashboard URL", proc)
        started_ns = time.time_ns()
        with open_store(cfg, readonly=True) as store:
            def polled():
                rows = store.latest("collector", where={"collector": "workload-slurm"}, since_ns=started_ns)
                return rows and rows[0]
            health = wait_for(polled, 120, "the workload collector's first poll", proc)
            assert health.fields["ok"] is True and health.fields["jobs"] > 10, health.fields
            assert re.fullmatch(r"127\.0\.0\.1:\d+", health.tags["target"])
            points = store.latest("workload", since_ns=started_ns)
        assert len(points) == 512 and all(p.fields["source"] == "slurm" for p in points)
        busy = [p for p in points if p.fields["job"]]
        assert busy and {p.fields["account"] for p in busy} <= {"hanbit", "kai", "neuron"}
        # The twin's hidden truth: every demo rack belongs to a tenant and the twin places a job
        # only on its tenant's racks, so the tenant Slurm's account maps to is the rack's owner.
        host_tenant = {g.host: g.tenant for g in build_inventory(cfg).gpus}
        assert all(p.fields["tenant"] == host_tenant[p.tags["host"]] for p in busy)
        assert {p.fields["tenant"] for p in busy} == {"hanbit-univ", "k-ai-institute", "neuron-labs"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    log = (tmp_path / "up.log").read_text()
    assert "Traceback" not in log, log[-3000:]
