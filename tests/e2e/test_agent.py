"""The GPU-node agent as a real process: caps from the optimizer's desired state over HTTP,
revert after the lease when the optimizer is gone, refused without the token, clamped to the
site's floor and the GPU's constraints. The GPUs are simulated (no GPU in CI); what the agent did is read back from
the telemetry it writes to the store, as an operator would see it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tomli_w

from dcim.store.sqlite import SqliteStore
from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState, Lease

REPO = Path(__file__).resolve().parents[2]
TOKEN = "agent-test-token-7Qx"
HOST = "node-1"


def lease(index: int, limit_w: float, seconds: float) -> Lease:
    now = time.time_ns()
    return Lease(host=HOST, index=index, uuid=f"uuid-{index}", power_limit_w=limit_w, default_w=700.0,
                 previous_w=700.0, expires_ns=now + int(seconds * 1e9), issued_ns=now, reason="test")


def limits_from_store(db: Path) -> dict[str, float]:
    with SqliteStore(db, readonly=True) as store:
        return {p.tags["gpu"]: p.fields.get("power_limit_w") for p in store.latest("gpu", where={"host": HOST},
                                                                                      since_ns=time.time_ns() - int(3e9))}


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the store may not exist yet
            last = exc
        if last is True:
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def api():
    desired = DesiredState(None, mode="enforce", lease_s=300)
    server = OptimizerApi(desired, token=TOKEN).start()
    yield server
    try:
        server.stop()
    except Exception:
        pass


@pytest.fixture
def agent(api, tmp_path):
    db = tmp_path / "agent.sqlite"
    cfg = {
        "site": {"name": "agent-site"},
        "rooms": [{"name": "r", "rows": [{"name": "w", "racks": [{"name": "k1", "servers": [{"host": HOST, "gpus": 2}]}]}]}],
        "store": {"path": str(db), "spool": {"path": str(tmp_path / "spool")}},
        "collectors": {"gpu_interval_s": 1.0, "jitter_pct": 0},
        "agent": {"optimizer_url": api.url, "token": {"env": "DCIM_TEST_AGENT_TOKEN"}, "poll_interval_s": 1.0},
    }
    path = tmp_path / "agent.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    log = tmp_path / "agent.log"
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "agent", "--config", str(path), "--host", HOST,
                             "--simulated-gpus", "2"], cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "DCIM_TEST_AGENT_TOKEN": TOKEN, "PYTHONPATH": str(REPO)})
    yield {"proc": proc, "db": db, "log": log}
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_caps_follow_desired_state_then_revert_when_the_lease_lapses(api, agent):
    api.desired.put(lease(0, 450.0, seconds=12))
    wait_for(lambda: limits_from_store(agent["db"]) == {"0": 450.0, "1": 700.0}, 30, "GPU 0 capped at 450 W")
    # The optimizer goes away; the agent keeps its last document until the lease lapses.
    api.stop()
    wait_for(lambda: limits_from_store(agent["db"]).get("0") == 700.0, 30, "GPU 0 back at its 700 W default")
    agent["proc"].send_signal(signal.SIGTERM)
    assert agent["proc"].wait(20) == 0
    assert TOKEN not in agent["log"].read_text()


def test_a_cap_below_the_floor_is_clamped(api, agent):
    # H100 minimum is 200 W; the site's cap_fraction_floor (default 0.5 of the 700 W max) is higher
    api.desired.put(lease(1, 50.0, seconds=60))
    wait_for(lambda: limits_from_store(agent["db"]).get("1") == 350.0, 30, "GPU 1 clamped to the 350 W floor")


def test_agent_exit_returns_gpus_to_default(api, agent):
    api.desired.put(lease(0, 500.0, seconds=60))
    wait_for(lambda: limits_from_store(agent["db"]).get("0") == 500.0, 30, "GPU 0 capped")
    agent["proc"].send_signal(signal.SIGINT)
    assert agent["proc"].wait(20) == 0
    assert "back to its default 700 W" in agent["log"].read_text()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_desired_state_refuses_requests_without_the_token(api, header):
    req = urllib.request.Request(f"{api.url}/v1/desired-state?host={HOST}")
    if header:
        req.add_header("Authorization", header)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code in (401, 403)
    ok = urllib.request.Request(f"{api.url}/v1/desired-state?host={HOST}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert urllib.request.urlopen(ok, timeout=5).status == 200


def test_agent_without_token_config_exits_cleanly(tmp_path):
    cfg = {"site": {"name": "s"}, "rooms": [{"name": "r", "rows": [{"name": "w", "racks": [{"name": "k"}]}]}]}
    path = tmp_path / "c.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    proc = subprocess.run([sys.executable, "-m", "dcim.cli.main", "agent", "--config", str(path), "--simulated-gpus", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "agent.token" in proc.stderr and "Traceback" not in proc.stderr
