"""The twin's jobs report their work done through POST /v1/progress, as real jobs do
(simulator/progress_poster.py): against the real progress intake (uvicorn on loopback, the
ProgressBook, a StoreWriter into a real SQLite store), whose job → tenant map is read from the
twin's workload points in that store. What the store holds equals the twin's hidden truth
(each job's done_gpu_s) at the post times, in the job's own unit; posting does not change the
twin; a dcim that is down costs the twin nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from optimizer.progress import ProgressBook, jobs_from_store
from optimizer.progress_server import ProgressServer
from simulator import progress_poster
from simulator.facility import FacilityTwin
from simulator.progress_poster import ProgressPoster
from tests.simulator.snmp_helpers import free_udp_port

REPO = Path(__file__).resolve().parents[2]

TOKEN = "twin-progress-token-1"
# The documented units (simulator/progress_poster.py), written out again: a change there must
# be a change here too.
STEP_S = {"training": 2.0, "fine_tuning": 0.5}
PER_GPU_S = {"inference": ("tokens", 2000.0), "batch": ("samples", 1000.0)}


def expected(job_class: str, done_gpu_s: float, gpus: int) -> tuple[float, str]:
    if job_class in STEP_S:
        return done_gpu_s / gpus / STEP_S[job_class], "steps"
    unit, rate = PER_GPU_S[job_class]
    return done_gpu_s * rate, unit


@pytest.fixture
def site(tmp_path, demo_config):
    """A twin at the wall clock (the intake refuses reports older than a day), its workload
    points in a real store, and the real intake reading them. Every job reports its exact
    work (progress_share=1, progress_noise=0): the HTTP path is under test here; the realistic
    noise and silent jobs are tests/simulator/test_progress_model.py's."""
    twin = FacilityTwin(demo_config, seed=7, start_ns=time.time_ns(), progress_share=1.0, progress_noise=0.0)
    store = SqliteStore(tmp_path / "dcim.sqlite")
    store.write(twin.points())
    writer = StoreWriter(store, tmp_path / "spool", flush_interval_s=0.05)
    book = ProgressBook(twin.site, workload=jobs_from_store(store, twin.site), require_known_job=True,
                        cache_s=0.0)
    server = ProgressServer(book, writer.write, token=TOKEN).start()
    yield twin, store, writer, book, server
    server.stop()
    writer.close()
    store.close()


def truth(twin) -> dict[str, tuple]:
    return {j.id: (j.job_class, j.done_gpu_s, j.gpus, j.tenant) for j in twin.workload.jobs.values()}


def test_reported_work_is_the_twins_work_done_at_the_post_times(site):
    twin, store, writer, book, server = site
    poster = ProgressPoster(twin, server.url, TOKEN, every_s=10.0)
    rounds = []
    for _ in range(3):
        twin.advance(10.0)
        store.write(twin.points())  # the workload source's poll: jobs that started are known
        reports = poster.collect()
        rounds.append((reports, truth(twin)))  # read at the same instant, between two steps
        assert poster.post(reports)
    writer.flush()
    reports, last = rounds[-1]
    assert len(reports) == len(last) > 20  # every running job reports
    stored = {p.tags["job"]: p for p in store.latest("progress", where={"site": twin.site})}
    assert set(last) <= set(stored)
    units = set()
    for report in reports:
        job_class, done_gpu_s, gpus, tenant = last[report["job"]]
        work, unit = expected(job_class, done_gpu_s, gpus)
        point = stored[report["job"]]
        assert point.fields["work_done"] == pytest.approx(work, rel=1e-12)
        assert point.fields["unit"] == unit and point.fields["source"] == "post"
        assert point.time_ns == report["time_ns"]
        assert point.tags["tenant"] == tenant  # the scheduler's tenant, as the workload source mapped it
        units.add(unit)
    assert units == {"steps", "tokens", "samples"}
    # The counters move with the twin's work: a job running in every round grew between rounds.
    first = {r["job"]: r["work_done"] for r in rounds[0][0]}
    grown = [r for r in reports if r["job"] in first and r["work_done"] > first[r["job"]]]
    assert len(grown) >= len(first) // 2
    stats = book.stats()
    assert stats["accepted"] == sum(len(r) for r, _ in rounds) and stats["refused"] == 0
    assert poster.stats["accepted"] == stats["accepted"] and poster.stats["failed"] == 0


def test_posting_changes_nothing_in_the_twin(site, demo_config):
    twin, store, writer, book, server = site
    quiet = FacilityTwin(demo_config, seed=7, start_ns=twin.now_ns, progress_share=1.0, progress_noise=0.0)
    poster = ProgressPoster(twin, server.url, TOKEN, every_s=5.0).start()
    try:
        for _ in range(12):
            for t in (twin, quiet):
                t.advance(5.0)
            poster.on_step()
            time.sleep(0.01)
    finally:
        poster.close()
    assert poster.stats["posts"] >= 1 and poster.stats["failed"] == 0
    assert truth(twin) == truth(quiet)
    assert np.array_equal(twin.gpu_state.energy_mj, quiet.gpu_state.energy_mj)
    assert twin.workload._noise_rng.bit_generator.state == quiet.workload._noise_rng.bit_generator.state
    assert twin.workload._arrival_rng.bit_generator.state == quiet.workload._arrival_rng.bit_generator.state


def test_first_report_waits_and_every_round_is_batched(site, monkeypatch):
    twin, store, writer, book, server = site
    now = [100.0]
    poster = ProgressPoster(twin, server.url, TOKEN, every_s=10.0, first_report_after_s=60.0,
                            monotonic=lambda: now[0])
    assert poster.collect() == []  # just seen: a job's first report waits
    now[0] += 59.0
    assert poster.collect() == []
    now[0] += 1.0
    reports = poster.collect()
    assert {r["job"] for r in reports} == set(twin.workload.jobs)
    monkeypatch.setattr(progress_poster, "BATCH_REPORTS", 10)
    assert poster.post(reports)
    assert poster.stats["posts"] == -(-len(reports) // 10)
    assert book.stats()["accepted"] == len(reports)
    # Every *every_s* of twin time, not every step.
    sent = []
    monkeypatch.setattr(poster, "_wake", type("E", (), {"set": lambda self: sent.append(1)})())
    poster.on_step()
    twin.advance(5.0)
    poster.on_step()
    twin.advance(5.0)
    poster.on_step()
    assert len(sent) == 2


def test_dcim_down_costs_the_twin_nothing(demo_config):
    twin = FacilityTwin(demo_config, seed=7, start_ns=time.time_ns())

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    poster = ProgressPoster(twin, f"http://127.0.0.1:{port}", TOKEN, timeout_s=0.5)
    started = time.monotonic()
    assert poster.post(poster.collect()) is False
    assert time.monotonic() - started < 2.0
    assert poster.stats["failed"] == 1 and "ConnectionRefusedError" in poster.last_error


def test_wrong_token_is_refused_and_counted(site):
    twin, store, writer, book, server = site
    poster = ProgressPoster(twin, server.url, "not-the-token")
    assert poster.post(poster.collect()) is False
    assert "HTTP 401" in poster.last_error
    assert book.stats()["accepted"] == 0


def test_bad_url_is_a_clear_error(twin):
    with pytest.raises(ValueError, match="progress URL"):
        ProgressPoster(twin, "ftp://x", TOKEN)


def test_dcim_simulate_serves_the_twins_slurm(tmp_path):
    """`dcim simulate` serves the twin's slurmrestd and prints its URL and the token's variable
    (never the token), so `dcim collect` can read the twin's jobs outside `dcim up`."""

    # The demo's agents moved off 127.42.x.x:1161, where a running `dcim simulate` may be.
    port = free_udp_port("127.81.0.1")
    config = tmp_path / "site.toml"
    config.write_text((REPO / "deploy" / "demo.toml").read_text().replace("127.42.", "127.81.")
                      .replace("port = 1161", f"port = {port}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCIM_SNMP", "DCIM_SLURM"))}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", DCIM_SLURM_JWT="twin-jwt-for-the-test-1")
    cmd = [sys.executable, "-m", "dcim.cli.main", "simulate", "--config", str(config), "--slurm-port", "0",
           "--duration", "60"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    seen = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.match(r"slurmrestd (http://127\.0\.0\.1:\d+) .*token in \$DCIM_SLURM_JWT", line)
            if m:
                break
        assert m, "".join(seen)[-2000:]
        req = urllib.request.Request(m[1] + "/slurm/v0.0.38/jobs",
                                     headers={"X-SLURM-USER-NAME": "dcim",
                                              "X-SLURM-USER-TOKEN": "twin-jwt-for-the-test-1"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            jobs = json.loads(resp.read())["jobs"]
        assert any(j["job_state"] == "RUNNING" for j in jobs)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    text = "".join(seen) + out
    assert proc.returncode == 0 and "stopped" in out, text[-2000:]
    assert "twin-jwt-for-the-test-1" not in text and "Traceback" not in text


def test_dcim_simulate_progress_needs_the_optimizer_token(tmp_path):

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "dcim.cli.main", "simulate", "--config",
                           str(REPO / "deploy" / "demo.toml"), "--progress-url", "http://127.0.0.1:8088"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0
    assert "[optimizer] token" in done.stderr and "Traceback" not in done.stderr
