"""dcim.progress.Reporter against the real optimizer API on loopback, against a port where nothing
listens (dcim down) and against a socket that accepts but never answers (black-holed)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from dcim.progress import Reporter, job_from_env
from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState
from optimizer.progress import ProgressBook

TOKEN = "client-token-value-1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dcim(tmp_path):
    store = SqliteStore(tmp_path / "dcim.sqlite")
    writer = StoreWriter(store, tmp_path / "spool", flush_interval_s=0.05)
    book = ProgressBook("site1")
    api = OptimizerApi(DesiredState(), token=TOKEN, progress=book, write_points=writer.write).start()
    yield api, book, store, writer
    api.stop()
    writer.close()
    store.close()


def stored(store, writer, job):
    writer.flush()
    return [p for p in store.latest("progress", where={"job": job})]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def slowest_add_s(reporter, steps: int) -> tuple[float, float]:
    """(slowest single add(), whole loop) in seconds."""
    worst = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        reporter.add(1)
        worst = max(worst, time.perf_counter() - t)
    return worst, time.perf_counter() - started


def test_batches_the_latest_total_into_few_posts(dcim):
    api, book, store, writer = dcim
    r = Reporter(api.url, TOKEN, "job-1", unit="samples", interval_s=0.2)
    try:
        for _ in range(20):
            for _ in range(5000):
                r.add(2)
            time.sleep(0.02)
        time.sleep(0.5)
        assert r.flush()
    finally:
        r.close()
    assert r.total == 200_000
    # 100,000 add() calls, about 1 s: a handful of posts, not one per step
    assert 2 <= book.stats()["accepted"] <= 10 and r.failures == 0
    (point,) = stored(store, writer, "job-1")
    assert point.fields == {"work_done": 200_000.0, "unit": "samples", "source": "post"}


def test_set_and_refusal_is_not_fatal(dcim):
    api, book, store, writer = dcim
    r = Reporter(api.url, "wrong-token", "job-2", interval_s=0.05, max_backoff_s=0.2)
    r.set(42)
    time.sleep(0.4)
    r.close()
    assert r.failures >= 1 and "401" in r.last_error and book.stats()["unauthorized"] >= 1
    assert stored(store, writer, "job-2") == []


def test_dcim_down_never_blocks_and_backs_off():
    r = Reporter(f"http://127.0.0.1:{closed_port()}", TOKEN, "job-3", interval_s=0.02, max_backoff_s=0.16)
    worst, loop_s = slowest_add_s(r, 200_000)
    time.sleep(0.6)
    posts = r.posts
    r.close()
    # the worst single add() is the OS and GIL scheduling of a loaded machine (a few ms), never a
    # connection attempt; the mean is what the loop pays
    assert worst < 0.05 and loop_s / 200_000 < 20e-6, f"worst add() {worst * 1e3:.1f} ms, loop {loop_s:.2f} s"
    assert r.failures == r.posts >= 2 and "ConnectionRefused" in r.last_error
    # backing off 0.04, 0.08, 0.16, 0.16 ...: far fewer than one post per 20 ms interval
    assert posts <= 12


def test_black_holed_server_never_blocks_the_loop_and_exit_is_bounded():
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    accepted = []
    stop = threading.Event()

    def accept_and_ignore():
        hole.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(hole.accept()[0])
            except TimeoutError:
                pass

    t = threading.Thread(target=accept_and_ignore, daemon=True)
    t.start()
    try:
        r = Reporter(f"http://127.0.0.1:{hole.getsockname()[1]}", TOKEN, "job-4", interval_s=0.05,
                     timeout_s=0.5, exit_deadline_s=0.3)
        worst, loop_s = slowest_add_s(r, 200_000)
        time.sleep(0.3)
        assert r.posts >= 1 and accepted  # a request is in flight, unanswered
        started = time.monotonic()
        r.close()
        assert time.monotonic() - started < 0.5
        # blocked on the unanswered request, an add() would take the 0.5 s timeout
        assert worst < 0.05 and loop_s / 200_000 < 20e-6, f"worst add() {worst * 1e3:.1f} ms, loop {loop_s:.2f} s"
    finally:
        stop.set()
        t.join()
        for s in accepted:
            s.close()
        hole.close()


def test_memory_flat_while_dcim_is_down():
    r = Reporter(f"http://127.0.0.1:{closed_port()}", TOKEN, "job-5", interval_s=0.01, max_backoff_s=0.02)
    for _ in range(10_000):
        r.add(1)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(300_000):
        r.add(1)
    time.sleep(0.2)  # several failed posts in between
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    r.close()
    assert r.failures >= 3
    assert grown < 64 * 1024, f"memory grew {grown} B over 300,000 steps"


def test_exit_flushes_the_last_total(dcim):
    api, book, store, writer = dcim
    script = ("import dcim.progress as p\n"
              "r = p.Reporter(unit='tokens', interval_s=3600)\n"
              "for _ in range(1000): r.add(3)\n")
    env = {**os.environ, "DCIM_URL": api.url, "DCIM_TOKEN": TOKEN, "SLURM_JOB_ID": "777",
           "PYTHONPATH": str(REPO)}
    env.pop("DCIM_JOB", None)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=20)
    assert time.monotonic() - started < 10
    (point,) = stored(store, writer, "777")
    assert point.fields["work_done"] == 3000.0 and point.fields["unit"] == "tokens"


def test_exit_is_quick_when_dcim_is_down():
    script = ("import dcim.progress as p\n"
              "r = p.Reporter(interval_s=3600, exit_deadline_s=0.5)\n"
              "r.add(5)\n")
    env = {**os.environ, "DCIM_URL": f"http://127.0.0.1:{closed_port()}", "DCIM_JOB": "j",
           "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=20, capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("env,job", [
    ({"DCIM_JOB": "x1", "SLURM_JOB_ID": "5"}, "x1"),
    ({"SLURM_JOB_ID": "5"}, "5"),
    ({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "3"}, "5_3"),
    ({"POD_NAMESPACE": "team-a", "POD_NAME": "train-0"}, "team-a/train-0"),
    ({"POD_NAMESPACE": "team-a", "HOSTNAME": "train-1", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "team-a/train-1"),
    ({"HOSTNAME": "laptop"}, None),
])
def test_job_from_env(env, job):
    assert job_from_env(env) == job


def test_without_url_or_job_it_stays_silent(monkeypatch):
    for name in ("DCIM_URL", "DCIM_JOB", "SLURM_JOB_ID", "POD_NAME"):
        monkeypatch.delenv(name, raising=False)
    r = Reporter(job="j")
    r.add(3)
    assert not r.enabled and r.total == 3 and r._thread is None
    r.close()
    assert json.dumps(r.total)  # nothing raised
