#!/usr/bin/env python3
"""Slurm workload mapping: CPU per poll for 10,000 GPUs and 2,000 running jobs (target <= 1 s).

The input is what ``squeue --json`` (Slurm 22.05, OpenAPI v0.0.38) prints for a site of
1,250 nodes x 8 GPUs: every job record carries the ~100 keys Slurm emits (the template below
is a record captured from a real 22.05.8 squeue --json, with only its identity fields
rewritten). 2,000 running jobs fill all 10,000 GPUs (100 jobs on 4 nodes x 8 GPUs, 300 whole-node
jobs, 1,600 jobs of 1, 2 or 4 GPUs sharing nodes, every 10th an array task), plus 500 pending
jobs, as a real queue has.

Timed (process CPU, the median of ``--rounds``): ``parse_jobs`` (json.loads and the GRES/hostlist
parsing into GpuHold) plus ``workload_points`` (tenant/class mapping, index → UUID, one point
per GPU): exactly what the collector does per poll, less squeue's own run, which is Slurm's C code.
Usage: .venv/bin/python bench/workload_slurm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NODES, GPUS_PER_NODE, RUNNING_JOBS, PENDING_JOBS = 1250, 8, 2000, 500
TARGET_CPU_S = 1.0
START_S = 1_796_668_445

# One job record as squeue --json (Slurm 22.05.8) printed it on the test cluster.
TEMPLATE = json.loads("""{"account": "hanbit", "accrue_time": 1796668442, "admin_comment": "", "array_job_id": 0,
"array_task_id": null, "array_max_tasks": 0, "array_task_string": "", "association_id": 0, "batch_features": "",
"batch_flag": true, "batch_host": "vm", "flags": ["JOB_WAS_RUNNING"], "burst_buffer": "", "burst_buffer_state": "",
"cluster": "dcimtest", "cluster_features": "", "command": "", "comment": "", "container": "", "contiguous": false,
"core_spec": null, "thread_spec": null, "cores_per_socket": null, "billable_tres": 1.0, "cpus_per_task": null,
"cpu_frequency_minimum": null, "cpu_frequency_maximum": null, "cpu_frequency_governor": null, "cpus_per_tres": "",
"deadline": 0, "delay_boot": 0, "dependency": "", "derived_exit_code": 0, "eligible_time": 1796668442,
"end_time": 1828204445, "excluded_nodes": "", "exit_code": 0, "features": "", "federation_origin": "",
"federation_siblings_active": "", "federation_siblings_viable": "", "gres_detail": ["gpu:h100:3(IDX:0-2)"],
"group_id": 0, "group_name": "root", "job_id": 1, "job_resources": {"nodes": "vm", "allocated_cores": 1,
"allocated_hosts": 1, "allocated_nodes": [{"sockets": {"0": {"cores": {"0": "allocated"}}}, "nodename": "vm",
"cpus_used": 0, "memory_used": 0, "memory_allocated": 0}]}, "job_state": "RUNNING",
"last_sched_evaluation": 1796668445, "licenses": "", "max_cpus": 0, "max_nodes": 0, "mcs_label": "",
"memory_per_tres": "", "name": "wrap", "nodes": "vm", "nice": null, "tasks_per_core": null, "tasks_per_node": 0,
"tasks_per_socket": null, "tasks_per_board": 0, "cpus": 1, "node_count": 1, "tasks": 1, "het_job_id": 0,
"het_job_id_set": "", "het_job_offset": 0, "partition": "gpu", "prefer": "", "memory_per_node": null,
"memory_per_cpu": null, "minimum_cpus_per_node": 1, "minimum_tmp_disk_per_node": 0, "preempt_time": 0,
"pre_sus_time": 0, "priority": 4294901759, "profile": null, "qos": "", "reboot": false, "required_nodes": "",
"requeue": true, "resize_time": 0, "restart_cnt": 0, "resv_name": "", "shared": null,
"show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"], "sockets_per_board": 0, "sockets_per_node": null,
"start_time": 1796668445, "state_description": "", "state_reason": "None", "standard_error": "/dev/null",
"standard_input": "/dev/null", "standard_output": "/dev/null", "submit_time": 1796668442, "suspend_time": 0,
"system_comment": "", "time_limit": null, "time_minimum": 0, "threads_per_core": null, "tres_bind": "",
"tres_freq": "", "tres_per_job": "", "tres_per_node": "gres:gpu:3", "tres_per_socket": "", "tres_per_task": "",
"tres_req_str": "cpu=1,mem=2000M,node=1,billing=1", "tres_alloc_str": "cpu=1,node=1,billing=1", "user_id": 0,
"user_name": "root", "wckey": "", "current_working_directory": "/home/root"}""")

ACCOUNTS = [f"acct{i:02d}" for i in range(24)]  # 20 mapped to tenants, 4 not (unmapped:<account>)
PARTITIONS = ["gpu", "gpu-long", "infer", "debug"]


def node(n: int) -> str:
    return f"gpu{n + 1:04d}"


def idx(lo: int, count: int) -> str:
    return str(lo) if count == 1 else f"{lo}-{lo + count - 1}"


def job_record(job_id: int, nodes: list[int], first_gpu: int, gpus: int, state: str = "RUNNING") -> dict:
    job = copy.deepcopy(TEMPLATE)
    names = [node(n) for n in nodes]
    hostlist = ",".join(names) if len(names) <= 1 else f"gpu[{nodes[0] + 1:04d}-{nodes[-1] + 1:04d}]"
    job.update(job_id=job_id, account=ACCOUNTS[job_id % len(ACCOUNTS)], partition=PARTITIONS[job_id % 4],
               user_name=f"user{job_id % 300}", job_state=state, start_time=START_S + job_id,
               tres_per_node=f"gres:gpu:{gpus}", batch_host=names[0] if names else "")
    if job_id % 10 == 0:
        job.update(array_job_id=job_id - 1, array_task_id=job_id % 7)
    if state != "RUNNING":
        job.update(nodes="", gres_detail=[], job_resources={}, start_time=0)
        return job
    job["nodes"] = hostlist
    job["gres_detail"] = [f"gpu:h100:{gpus}(IDX:{idx(first_gpu, gpus)})" for _ in names]
    job["job_resources"] = {"nodes": hostlist, "allocated_cores": len(names), "allocated_hosts": len(names),
                            "allocated_nodes": [{"sockets": {"0": {"cores": {"0": "allocated"}}}, "nodename": name,
                                                 "cpus_used": 0, "memory_used": 0, "memory_allocated": 0}
                                                for name in names]}
    return job


def squeue_json() -> tuple[bytes, int]:
    """The answer, and how many GPUs its running jobs hold."""
    jobs, job_id, n, held = [], 1000, 0, 0

    def add(nodes, first, gpus, state="RUNNING"):
        nonlocal job_id, held
        job_id += 1
        jobs.append(job_record(job_id, nodes, first, gpus, state))
        held += gpus * len(nodes) if state == "RUNNING" else 0

    for _ in range(100):  # 4-node jobs, 8 GPUs a node
        add(list(range(n, n + 4)), 0, 8)
        n += 4
    for _ in range(300):  # whole-node jobs
        add([n], 0, 8)
        n += 1
    for k in range(550):  # shared nodes: 250 nodes hold 4 jobs (4+2+1+1 or 2x4), 300 hold 2 (4+4)
        patterns = ([4, 2, 1, 1], [2, 2, 2, 2]) if k < 250 else ([4, 4],)
        first = 0
        for gpus in patterns[k % len(patterns)]:
            add([n], first, gpus)
            first += gpus
        n += 1
    for _ in range(PENDING_JOBS):
        add([], 0, 2, state="PENDING")
    meta = {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
            "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}}
    assert n == NODES and held == NODES * GPUS_PER_NODE and len(jobs) == RUNNING_JOBS + PENDING_JOBS
    return json.dumps({"meta": meta, "errors": [], "jobs": jobs}, indent=2).encode(), held


def main() -> int:
    from collectors.workload.mapping import WorkloadMapping, workload_points
    from collectors.workload.slurm import parse_jobs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    body, held = squeue_json()
    gpus = {(node(n), i): f"GPU-{n:04d}-{i}" for n in range(NODES) for i in range(GPUS_PER_NODE)}
    mapping = WorkloadMapping({a: f"tenant-{a}" for a in ACCOUNTS[:20]},
                              {"gpu": "training", "gpu-long": "training", "infer": "inference"})
    cpu_s, parse_s = [], []
    for _ in range(args.rounds):
        t0 = time.process_time()
        holds = parse_jobs(body)
        t1 = time.process_time()
        mapped = workload_points(holds, gpus, mapping, site="bench", source="slurm", now_ns=time.time_ns())
        t2 = time.process_time()
        parse_s.append(t1 - t0)
        cpu_s.append(t2 - t0)
    assert len(holds) == held and mapped.jobs == RUNNING_JOBS and mapped.unplaced == 0
    assert len(mapped.points) == NODES * GPUS_PER_NODE
    median = statistics.median(cpu_s)
    print(f"squeue --json answer: {len(body) / 1e6:.1f} MB, {RUNNING_JOBS} running + {PENDING_JOBS} pending jobs, "
          f"{held} GPUs held on {NODES} nodes")
    print(f"parse (json + GRES/hostlist): {statistics.median(parse_s) * 1000:.0f} ms CPU (median of {args.rounds})")
    print(f"Slurm mapping for {NODES * GPUS_PER_NODE:,} GPUs and {RUNNING_JOBS:,} running jobs: "
          f"{median:.3f} s CPU per poll (target <= {TARGET_CPU_S:g} s): ratio {TARGET_CPU_S / median:.1f}x")
    return 0 if median <= TARGET_CPU_S else 1


if __name__ == "__main__":
    sys.exit(main())
