"""Job and tenant per GPU, and the Tenants page: what the workload source wrote, joined to the
GPUs' latest power, and the month's bill from the energy report."""

from __future__ import annotations

import time

import pytest

from dashboards.app import create_app
from dashboards.pages import gpus, make_ctx, tenants
from dcim.metrics import Point
from tests.dashboards import sitedata as S

NS = 1_000_000_000


@pytest.fixture
def app_and_store(tmp_path):
    store = S.open_test_store(tmp_path / "s.sqlite")
    now_ns = time.time_ns()
    S.populate(store, now_ns)
    gpu_points = [p for p in store.latest("gpu")]
    assert len(gpu_points) >= 4
    jobs = {gpu_points[0].tags["uuid"]: ("101", "kaist", "training"),
            gpu_points[1].tags["uuid"]: ("101", "kaist", "training"),
            gpu_points[2].tags["uuid"]: ("202", "unmapped:startup-x", "unknown")}
    workload = [Point("workload", {"site": S.SITE, "host": "ghost-node", "uuid": "unresolved:ghost-node:3"},
                      {"job": "303", "tenant": "kaist", "job_class": "training", "account": "kaist", "source": "slurm"},
                      now_ns - 5 * NS)]
    for p in gpu_points:
        job, tenant, cls = jobs.get(p.tags["uuid"], ("", "", ""))
        fields = {"job": job, "source": "slurm"}
        if job:
            fields.update(tenant=tenant, job_class=cls, account=tenant)
        workload.append(Point("workload", {"site": S.SITE, "host": p.tags["host"], "uuid": p.tags["uuid"]}, fields,
                              now_ns - 5 * NS))
    store.write(workload)
    cfg = S.make_config()
    app = create_app(cfg, store, alarms=S.engine_alarms(cfg, store))
    yield app, store, gpu_points, jobs
    store.close()


def test_the_gpu_table_shows_each_gpus_job_and_tenant(app_and_store):
    app, _store, gpu_points, jobs = app_and_store
    rows = {r["uuid"]: r for r in gpus.gpu_rows(app.data.gpus())}
    for uuid, (job, tenant, _cls) in jobs.items():
        assert (rows[uuid]["job"], rows[uuid]["tenant"]) == (job, tenant)
    idle = [p.tags["uuid"] for p in gpu_points if p.tags["uuid"] not in jobs]
    assert all(rows[u]["job"] == "" and rows[u]["tenant"] == "" for u in idle)


def test_the_tenants_page_adds_up_gpus_and_power_now(app_and_store):
    app, _store, gpu_points, jobs = app_and_store
    u = tenants.update.uncached(make_ctx(app.data, ""))
    rows = {r["tenant"]: r for r in u["tbl"]["tenants"]}
    power = {p.tags["uuid"]: p.fields["power_w"] for p in gpu_points}
    kaist = [uuid for uuid, (_, t, _) in jobs.items() if t == "kaist"]
    assert rows["kaist"]["jobs"] == 1 and rows["kaist"]["gpus"] == 2
    assert rows["kaist"]["gpu_kw"] == pytest.approx(sum(power[x] for x in kaist) / 1000, abs=0.05)
    assert rows["unmapped:startup-x"]["gpus"] == 1
    assert rows["(idle GPUs)"]["gpus"] == len(gpu_points) - 3
    assert u["v"]["tn_count"][0] == "2"
    assert u["v"]["tn_unplaced"] == ("1", "warning")  # the hold on a node the telemetry does not know


def test_a_stale_workload_point_says_nothing(app_and_store):
    app, store, gpu_points, jobs = app_and_store
    old = time.time_ns() - 3600 * NS
    uuid = next(iter(jobs))
    host = next(p.tags["host"] for p in gpu_points if p.tags["uuid"] == uuid)
    store.close()
    fresh = S.open_test_store(app.data.store.inner.path)
    try:
        app2 = create_app(S.make_config(), fresh)
        app2.data.clock = lambda: (old + 7200 * NS) / NS  # two hours after every workload point
        rows = {r["uuid"]: r for r in gpus.gpu_rows(app2.data.gpus())}
        assert uuid in rows and rows[uuid]["job"] == "" and host  # the GPU row is there, its job unknown
    finally:
        fresh.close()


def test_a_scheduler_that_cannot_be_read_is_on_the_alarm_list(app_and_store):
    """What the workload collector reports when slurmctld is down reaches the operator's alarms."""
    import asyncio

    from collectors.runner import Runner
    from collectors.workload.base import WorkloadError, WorkloadSource
    from collectors.workload.collector import WorkloadCollector
    from collectors.workload.mapping import WorkloadMapping

    class DownSlurm(WorkloadSource):
        name, target = "slurm", "slurmctld"

        def poll(self):
            raise WorkloadError("squeue --json: slurm_load_jobs: Unable to contact slurm controller")

    app, store, _gpus, _jobs = app_and_store
    collector = WorkloadCollector(DownSlurm(), WorkloadMapping({}, {}), site=S.SITE, gpus=dict)

    class Sink:
        def write(self, points):
            store.write(points)

        def stats(self):
            return {}

    asyncio.run(Runner([collector], Sink()).run_once())
    # the alarm engine (not the dashboard) turns the failure into an alarm; the dashboard lists it
    S.run_engine(app.data.config, store, now_ns=time.time_ns() - 120 * NS, settle_s=119.0)
    alarms = app.data.snapshot()["alarms"]
    [alarm] = [a for a in alarms if a["entity"] == "workload-slurm:slurmctld"]
    assert alarm["rule"] == "collector_failed" and "Unable to contact" in alarm["summary"]
