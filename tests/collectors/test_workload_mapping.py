"""Scheduler identities to tenants and classes, holds to `workload` points: nothing dropped."""

from __future__ import annotations

import asyncio

import pytest

from collectors.workload.base import GpuHold, WorkloadError, WorkloadSource
from collectors.workload.collector import WorkloadCollector
from collectors.workload.mapping import WorkloadMapping, workload_points
from dcim.config import ConfigError, load_config, parse_config
from dcim.metrics import validate_point

MAPPING = WorkloadMapping({"hanbit": "kaist", "ns-lab": "etri"}, {"gpu-long": "training", "infer": "inference",
                                                                   "batch": "batch"})
GPUS = {("n1", 0): "GPU-a0", ("n1", 1): "GPU-a1", ("n2", 0): "GPU-b0"}


def test_each_gpu_gets_its_jobs_tenant_and_class_or_idle():
    holds = [GpuHold("101", "n1", "hanbit", gpu_index=1, partition="gpu-long", start_ns=7, user="kim"),
             GpuHold("102", "n2", "ns-lab", uuid="GPU-b0", class_label="infer")]
    out = workload_points(holds, GPUS, MAPPING, site="s", source="slurm", now_ns=1)
    fields = {p.tags["uuid"]: p.fields for p in out.points}
    assert fields["GPU-a1"] == {"job": "101", "tenant": "kaist", "job_class": "training", "account": "hanbit",
                                "source": "slurm", "start_ns": 7}  # no user unless record_users
    assert fields["GPU-b0"]["tenant"] == "etri" and fields["GPU-b0"]["job_class"] == "inference"
    assert fields["GPU-a0"] == {"job": "", "source": "slurm"}
    assert (out.jobs, out.unplaced) == (2, 0)
    for p in out.points:
        validate_point(p)


def test_unmapped_accounts_classes_and_gpus_are_visible_not_dropped():
    holds = [GpuHold("9", "n1", "startup-x", gpu_index=0, partition="debug"),
             GpuHold("9", "n7", "startup-x", gpu_index=5), GpuHold("10", "n1", "", gpu_index=9)]
    out = workload_points(holds, GPUS, MAPPING, site="s", source="slurm", now_ns=1)
    fields = {p.tags["uuid"]: p.fields for p in out.points}
    assert fields["GPU-a0"]["tenant"] == "unmapped:startup-x" and fields["GPU-a0"]["job_class"] == "unknown"
    assert fields["unresolved:n7:5"]["job"] == "9" and fields["unresolved:n1:9"]["tenant"] == "unmapped:-"
    assert (out.jobs, out.unplaced) == (2, 2)


def test_users_are_recorded_only_when_asked():
    hold = GpuHold("1", "n1", "hanbit", gpu_index=0, user="kim")
    with_users = WorkloadMapping({}, {}, record_users=True)
    assert workload_points([hold], GPUS, with_users, site="s", source="slurm", now_ns=1).points[0].fields["user"] == "kim"


class Source(WorkloadSource):
    name, target = "slurm", "slurmctld"

    def __init__(self, answer):
        self.answer = answer

    def poll(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("answer,error", [(WorkloadError("slurm: squeue exited 1: cannot connect"), "cannot connect"),
                                          (ValueError("bad json"), "ValueError: bad json")])
def test_a_failing_scheduler_is_a_failed_target_not_an_exception(answer, error):
    collector = WorkloadCollector(Source(answer), MAPPING, site="s", gpus=lambda: GPUS)
    [result] = asyncio.run(collector.poll(5.0))
    assert not result.ok and error in result.error and result.points == []


def test_the_collector_reports_jobs_and_unplaced_holds():
    holds = [GpuHold("1", "n1", "hanbit", gpu_index=0), GpuHold("1", "zz", "hanbit", gpu_index=0)]
    collector = WorkloadCollector(Source(holds), MAPPING, site="s", gpus=lambda: GPUS)
    [result] = asyncio.run(collector.poll(5.0))
    assert result.ok and result.counters == {"jobs": 1, "jobs_unplaced": 1} and len(result.points) == 4


def _demo_with(workload: dict) -> dict:
    import tomllib

    from dcim.config import DEMO_CONFIG

    data = tomllib.loads(DEMO_CONFIG.read_text())
    data["workload"] = workload
    return data


@pytest.mark.parametrize("workload,key", [
    ({"tenants": {"acct": "no-such-tenant"}}, "workload.tenants.acct"),
    ({"job_classes": {"gpu": "fast"}}, "workload.job_classes.gpu"),
    ({"source": "slurm", "slurm": {"mode": "rest"}}, "workload.slurm"),
    ({"source": "dcgm"}, "dcgm_exporter.urls"),
    ({"source": "lsf"}, "workload.source"),
    ({"interval_s": 0.01}, "workload.interval_s"),
    ({"slurm": {"rest_url": "http://u:p@ctl:6820"}}, "workload.slurm.rest_url"),
    ({"slurm": {"timeout_s": 1e-9}}, "workload.slurm.timeout_s"),
    ({"kubernetes": {"timeout_s": 0.0}}, "workload.kubernetes.timeout_s"),
])
def test_bad_workload_config_names_the_key(workload, key):
    with pytest.raises(ConfigError) as info:
        parse_config(_demo_with(workload))
    assert key in [path for path, _ in info.value.errors], info.value


def test_the_demo_config_reads_the_twins_slurm():
    workload = load_config().workload  # `dcim up` points rest_url at the twin's slurmrestd
    assert (workload.source, workload.slurm.mode) == ("slurm", "rest")
