"""The optimizer against the facility twin, through the real SqliteStore and simulated GPUs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dcim.config import load_config
from dcim.store.sqlite import SqliteStore
from optimizer.actuator import BackendActuator
from optimizer.agent import NodeAgent, http_fetcher
from optimizer.daemon import OptimizerDaemon
from optimizer.desired_state import DesiredState

simulator = pytest.importorskip("simulator.facility")
FacilityTwin = simulator.FacilityTwin

REPO = Path(__file__).resolve().parents[2]
START_NS = 1_782_864_000_000_000_000  # 2026-07-01T00:00Z (summer)
S = 10**9


@pytest.fixture(scope="module")
def cfg():
    return load_config(REPO / "deploy" / "demo.toml")


def rig(cfg, *, mode="enforce", seed=42, path=":memory:", state_file=None):
    twin = FacilityTwin(cfg, seed=seed, start_ns=START_NS)
    store = SqliteStore(path)
    act = BackendActuator({h: twin.gpu_backend(h) for h in twin.hosts()}, DesiredState(state_file))
    daemon = OptimizerDaemon(cfg, store, act, clock=lambda: twin.now_ns, mode=mode, learn_curves=False)
    return twin, store, act, daemon


def step(twin, store, dt_s=120.0):
    twin.advance(dt_s)
    store.write(twin.points())


def caps(twin):
    return np.array(twin.gpu_state.cap_w, dtype=float)


def test_enforce_lowers_facility_energy_vs_off(cfg):
    energy = {}
    for mode in ("off", "enforce"):
        twin, store, act, daemon = rig(cfg, mode=mode)
        e = 0.0
        for _ in range(60):  # two simulated hours, a cycle every 2 minutes
            step(twin, store)
            daemon.run_once()
            e += twin.facility_power_w * 120.0
        energy[mode] = e
        if mode == "enforce":
            assert caps(twin).min() < 700.0
            assert caps(twin).min() >= 200.0
        else:
            assert np.all(caps(twin) == 700.0)
        store.close()
    assert energy["enforce"] < 0.97 * energy["off"], energy


def test_advise_writes_advice_and_changes_nothing(cfg):
    twin, store, act, daemon = rig(cfg, mode="advise")
    step(twin, store)
    report = daemon.run_once()
    assert any(d.action == "advise" for d in report.decisions)
    assert np.all(caps(twin) == 700.0)
    audit = store.latest("optimizer", where={"action": "advise"})
    assert audit and audit[0].fields["mode"] == "advise" and audit[0].fields["reason"]


def test_stale_telemetry_no_action_and_leases_lapse(cfg):
    twin, store, act, daemon = rig(cfg)
    for _ in range(3):
        step(twin, store)
        daemon.run_once()
    capped = caps(twin) < 700.0
    assert capped.any()
    before = caps(twin)
    twin.advance(cfg.optimizer.stale_after_s + 60)  # the collectors stopped writing
    report = daemon.run_once()
    assert report.held.startswith("hold") and np.all(caps(twin) == before)
    assert not [d for d in report.decisions if d.action in ("set", "advise")]
    twin.advance(cfg.optimizer.lease_s)  # still no telemetry: leases lapse, GPUs go home
    daemon.run_once()
    assert np.all(caps(twin) == 700.0)
    assert store.latest("optimizer", where={"action": "revert"})


def test_killed_daemon_leases_lapse_via_agents_and_restart(cfg, tmp_path):
    book = tmp_path / "desired.json"
    twin, store, act, daemon = rig(cfg, state_file=book)
    for _ in range(3):
        step(twin, store)
        daemon.run_once()
    assert (caps(twin) < 700.0).any()
    del daemon, act  # SIGKILL: no stop(), nothing reverted
    # the GPU-node agents only see the persisted desired state; time passes beyond the lease
    twin.advance(cfg.optimizer.lease_s + 1)
    doc_book = DesiredState(book)
    for host in twin.hosts():
        agent = NodeAgent(twin.gpu_backend(host), lambda h=host: doc_book.document(h, twin.now_ns),
                          clock=lambda: twin.now_ns)
        agent.tick()
    assert np.all(caps(twin) == 700.0)
    # a restarted optimizer finds the lapsed leases in its book and clears them
    act2 = BackendActuator({h: twin.gpu_backend(h) for h in twin.hosts()}, DesiredState(book))
    assert act2.desired.leases()
    act2.expire(twin.now_ns)
    assert not act2.desired.leases()


def test_apply_error_rolls_back_and_is_audited(cfg):
    twin, store, act, daemon = rig(cfg)
    step(twin, store)
    busy_hosts = sorted({twin.slots[i].host for i in np.flatnonzero(twin.workload.busy)})
    for h in busy_hosts:
        twin.gpu_backend(h).fail_next_set = True
    report = daemon.run_once()
    rollbacks = [d for d in report.decisions if d.action == "rollback"]
    assert rollbacks
    for d in rollbacks:
        assert twin.gpu_backend(d.host).power_limit_w(d.index) == d.previous_w
        assert not act.leased(d.host, d.index)
    assert store.latest("optimizer", where={"action": "rollback"})


def test_mode_off_and_stop_revert_everything(cfg):
    twin, store, act, daemon = rig(cfg)
    for _ in range(2):
        step(twin, store)
        daemon.run_once()
    assert (caps(twin) < 700.0).any()
    daemon.set_mode("off")
    assert np.all(caps(twin) == 700.0) and not act.desired.leases()
    daemon.set_mode("enforce")
    step(twin, store)
    daemon.run_once()
    assert (caps(twin) < 700.0).any()
    daemon.stop()
    assert np.all(caps(twin) == 700.0)


def test_scheduler_runs_cycles(cfg):
    twin, store, act, daemon = rig(cfg, mode="advise")
    step(twin, store)
    daemon.settings = daemon.settings.model_copy(update={"interval_s": 0.2})
    daemon.start()
    try:
        deadline = time.time() + 10
        while daemon.last_report is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
    assert daemon.last_report is not None


@pytest.mark.slow
def test_kill_minus_9_of_a_real_daemon_process(cfg, tmp_path):
    """A real `dcim optimize` process is SIGKILLed; the node agent reverts at lease expiry."""
    db = tmp_path / "dcim.sqlite"
    text = (REPO / "deploy" / "demo.toml").read_text()
    text = text.replace('path = "var/dcim.sqlite"', f'path = "{db}"')
    text = text.replace('[optimizer]\nmode = "enforce"\nlease_s = 300\nmax_step_w = 50',
                        '[optimizer]\nmode = "enforce"\nlease_s = 4\nmax_step_w = 100\ninterval_s = 1\n'
                        'stale_after_s = 300\nport = 0\nprogress_port = 0\ntoken = { env = "DCIM_TEST_OPT_TOKEN" }\n'
                        f'model_path = "{tmp_path / "model.pkl"}"')
    conf = tmp_path / "dcim.toml"
    conf.write_text(text)
    twin = FacilityTwin(cfg, seed=42)  # real time: the daemon's clock is the wall clock
    store = SqliteStore(db)
    twin.advance(60)
    twin.now_ns = time.time_ns()
    store.write(twin.points())
    store.flush()
    env = dict(os.environ, DCIM_TEST_OPT_TOKEN="tok-123", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "optimize", "--config", str(conf),
                             "--state-file", str(tmp_path / "ds.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        url = None
        deadline = time.time() + 60
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            if "optimizer API on " in line:
                url = line.split("optimizer API on ")[1].split()[0]
        assert url, "daemon did not start"
        host = next(h for h in twin.hosts() if any(twin.workload.busy[i] for i in twin.gpu_positions(h)))
        agent = NodeAgent(twin.gpu_backend(host), http_fetcher(url, host, "tok-123"))
        limits = {}
        while time.time() < deadline:
            limits = agent.tick()
            if any(v < 700.0 for v in limits.values()):
                break
            time.sleep(0.3)
        assert any(v < 700.0 for v in limits.values()), limits
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(4.5)  # past the 4 s lease
        assert all(v == 700.0 for v in agent.tick().values())
        assert agent.fetch_errors >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


@pytest.mark.parametrize("prolog", [False, True])
def test_job_change_drops_the_lease_and_prolog_covers_the_gap(cfg, prolog):
    """A lease belongs to the job it was decided for: when a GPU's job changes the daemon drops
    it (GPU back to default) on its next cycle; the scheduler's prolog (twin option
    ``reset_caps_on_job_start``) resets the limit at job start, before any cycle."""
    twin = FacilityTwin(cfg, seed=3, start_ns=START_NS, arrivals=False, reset_caps_on_job_start=prolog)
    store = SqliteStore(":memory:")
    act = BackendActuator({h: twin.gpu_backend(h) for h in twin.hosts()})
    daemon = OptimizerDaemon(cfg, store, act, clock=lambda: twin.now_ns, mode="enforce", learn_curves=False)
    first = twin.submit_job(job_class="batch", tenant="hanbit-univ", gpus=8, work_gpu_s=8 * 86400.0, util=0.95)
    for _ in range(8):
        step(twin, store)
        daemon.run_once()
    capped = twin.gpu_state.cap_w[first.slots]
    assert capped.max() < 700.0 and all(act.leased(twin.slots[p].host, twin.slots[p].index) for p in first.slots)
    first.done_gpu_s = first.work_gpu_s  # it ends at the next step; the next job lands on its GPUs
    twin.advance(1.0)
    second = twin.submit_job(job_class="inference", tenant="hanbit-univ", gpus=8, work_gpu_s=8 * 86400.0, util=0.7)
    assert second.slots == first.slots
    twin.advance(1.0)
    at_start = twin.gpu_state.cap_w[second.slots]
    assert np.all(at_start == 700.0) if prolog else np.allclose(at_start, capped)
    store.write(twin.points())
    report = daemon.run_once()
    dropped = [d for d in report.decisions if d.action == "revert" and "job changed" in d.reason]
    assert len(dropped) == 8
    # the decision started from the default: at most one bounded step below it
    assert twin.gpu_state.cap_w[second.slots].min() >= 700.0 - cfg.optimizer.max_step_w - 1e-6
    store.close()
