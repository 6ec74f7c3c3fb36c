"""The agent leaves no cap on a GPU when it stops: SIGTERM, SIGINT, SIGHUP, a crash.

Run as ``dcim-agent.service`` runs it: ``dcim agent --config F`` with telemetry on and the NVML
backend (``import pynvml``), not ``--simulated-gpus``. The GPUs are the fake NVML of
tests/fakes/nvml_shim, whose limits live in a file, so a limit outlives the agent process as
it does on a real GPU; each test reads that file, not what the agent says it did.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tomli_w

from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState, Lease
from tests.faults.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "tests" / "fakes" / "nvml_shim"
TOKEN = "agent-shutdown-token-4Rk"
HOST = "node-7"
UUIDS = ["GPU-7a000000-0000-0000-0000-000000000000", "GPU-7b000000-0000-0000-0000-000000000000"]


def limits_w(state: Path) -> list[float]:
    return [d["limit_mw"] / 1000.0 for d in json.loads(state.read_text())["devices"]]


def lease(index: int, limit_w: float, seconds: float = 120) -> Lease:
    now = time.time_ns()
    return Lease(host=HOST, index=index, uuid=UUIDS[index], power_limit_w=limit_w, default_w=700.0,
                 previous_w=700.0, expires_ns=now + int(seconds * 1e9), issued_ns=now, reason="test")


@pytest.fixture
def api():
    server = OptimizerApi(DesiredState(None, mode="enforce", lease_s=300), token=TOKEN).start()
    yield server
    try:
        server.stop()
    except Exception:
        pass


@pytest.fixture
def site(tmp_path):
    """A one-server site whose two GPUs start at their 700 W default."""
    state = tmp_path / "gpus.json"
    state.write_text(json.dumps({"devices": [{"uuid": u, "limit_mw": 700_000} for u in UUIDS]}))
    return {"dir": tmp_path, "state": state}


def write_config(site, optimizer_url: str) -> Path:
    tmp = site["dir"]
    cfg = {
        "site": {"name": "shutdown-site"},
        "rooms": [{"name": "r", "rows": [{"name": "w", "racks": [
            {"name": "k1", "servers": [{"host": HOST, "gpus": 2}]}]}]}],
        "store": {"path": str(tmp / "agent.sqlite"), "spool": {"path": str(tmp / "spool")}},
        "collectors": {"gpu_interval_s": 1.0, "jitter_pct": 0},
        "agent": {"optimizer_url": optimizer_url, "token": {"env": "DCIM_TEST_AGENT_TOKEN"},
                  "poll_interval_s": 1.0, "cap_record_path": str(tmp / "agent-caps.json")},
    }
    path = tmp / "agent.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    return path


def agent_env(site) -> dict[str, str]:
    return {**os.environ, "DCIM_TEST_AGENT_TOKEN": TOKEN, "DCIM_FAKE_NVML_STATE": str(site["state"]),
            "PYTHONPATH": f"{SHIM}{os.pathsep}{REPO}", "PYTHONUNBUFFERED": "1"}


def start_agent(site, config: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = site["dir"] / f"agent-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "agent", "--config", str(config),
                             "--host", HOST, *extra], cwd=site["dir"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=agent_env(site))
    return proc, log


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_returns_every_capped_gpu_to_its_default(api, site, procs, sig):
    api.desired.put(lease(0, 450.0))
    api.desired.put(lease(1, 520.0))
    proc, log = start_agent(site, write_config(site, api.url))
    procs.append(proc)
    wait_for(lambda: limits_w(site["state"]) == [450.0, 520.0], 30, "both GPUs capped by the agent")
    wait_for(lambda: (site["dir"] / "agent.sqlite").exists(), 30, "telemetry in the store")
    sent = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(20) == 0, log.read_text()[-3000:]
    print(f"{sig.name}: every GPU back at default and the agent gone {time.monotonic() - sent:.2f} s after the signal")
    assert limits_w(site["state"]) == [700.0, 700.0], log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text and TOKEN not in text, text[-3000:]


def test_a_crashed_agent_leaves_caps_that_its_restart_reverts_before_any_fetch(api, site, procs):
    """SIGKILL cannot be caught: the caps stay on the GPUs (as on real hardware). The record
    of caps the agent set lets the restarted agent revert them at start, even when the
    optimizer never answers (a silent server that accepts and holds the connection)."""
    api.desired.put(lease(0, 430.0))
    proc, log = start_agent(site, write_config(site, api.url))
    procs.append(proc)
    wait_for(lambda: limits_w(site["state"]) == [430.0, 700.0], 30, "GPU 0 capped")
    proc.kill()
    proc.wait(10)
    assert limits_w(site["state"]) == [430.0, 700.0]  # what a crash leaves behind
    record = json.loads((site["dir"] / "agent-caps.json").read_text())
    assert UUIDS[0] in json.dumps(record)

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts into the backlog, never answers
    try:
        started = time.monotonic()
        again, log2 = start_agent(site, write_config(site, f"http://127.0.0.1:{silent.getsockname()[1]}"))
        procs.append(again)
        # reverted from the record at start, not by a tick: the silent optimizer never answers
        wait_for(lambda: limits_w(site["state"]) == [700.0, 700.0]
                 and "430 W cap left from before reverted" in log2.read_text(), 30,
                 "GPU 0 back at 700 W after the restart, from the record")
        assert time.monotonic() - started < 15
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0, log2.read_text()[-3000:]
    finally:
        silent.close()
    assert "Traceback" not in log2.read_text()


def test_revert_command_undoes_what_a_killed_agent_left(api, site, procs):
    """``dcim agent --revert`` (the unit's ExecStopPost) reverts from the record alone, for the
    exits nothing inside the process can catch (SIGKILL after the stop timeout, a crash)."""
    api.desired.put(lease(1, 480.0))
    config = write_config(site, api.url)
    proc, log = start_agent(site, config)
    procs.append(proc)
    wait_for(lambda: limits_w(site["state"]) == [700.0, 480.0], 30, "GPU 1 capped")
    proc.kill()
    proc.wait(10)
    api.stop()
    out = subprocess.run([sys.executable, "-m", "dcim.cli.main", "agent", "--config", str(config), "--host", HOST,
                          "--revert"], cwd=site["dir"], env=agent_env(site), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert limits_w(site["state"]) == [700.0, 700.0]
    assert "Traceback" not in out.stderr + out.stdout
    assert json.loads((site["dir"] / "agent-caps.json").read_text())["gpus"] == []


def test_a_cap_set_by_someone_else_is_left_alone_by_the_revert(site):
    """The record names what the agent set: an operator's own limit (not in the record, or
    changed since) is not the agent's to undo at start."""
    config = write_config(site, "http://127.0.0.1:9")
    record = site["dir"] / "agent-caps.json"
    record.write_text(json.dumps({"gpus": [{"uuid": UUIDS[0], "default_w": 700.0, "set_w": [400.0]}]}))
    state = json.loads(site["state"].read_text())
    state["devices"][0]["limit_mw"] = 600_000  # an operator changed it after the agent's 400 W
    site["state"].write_text(json.dumps(state))
    out = subprocess.run([sys.executable, "-m", "dcim.cli.main", "agent", "--config", str(config), "--host", HOST,
                          "--revert"], cwd=site["dir"], env=agent_env(site), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert limits_w(site["state"]) == [600.0, 700.0]
    assert "600 W" in out.stderr and "left as it is" in out.stderr


def test_sigterm_during_a_fetch_that_trickles_exits_fast_and_reverts(site, procs):
    """An optimizer that answers one byte every 2 s: the agent's loop is not frozen past its
    deadline, and SIGTERM reverts and exits well inside systemd's stop timeout."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    body = json.dumps({"host": HOST, "gpus": [{"index": 0, "power_limit_w": 410.0,
                                               "expires_ns": time.time_ns() + 600 * 10**9}]}).encode()
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn):
        with conn:
            for i in range(len(reply)):
                if stop.wait(2.0):
                    return
                try:
                    conn.sendall(reply[i:i + 1])
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    try:
        state = json.loads(site["state"].read_text())
        state["devices"][0]["limit_mw"] = 300_000  # a cap left from before, recorded as the agent's
        site["state"].write_text(json.dumps(state))
        (site["dir"] / "agent-caps.json").write_text(json.dumps(
            {"gpus": [{"uuid": UUIDS[0], "default_w": 700.0, "set_w": [300.0]}]}))
        proc, log = start_agent(site, write_config(site, f"http://127.0.0.1:{server.getsockname()[1]}"))
        procs.append(proc)
        wait_for(lambda: limits_w(site["state"]) == [700.0, 700.0], 20, "the leftover cap reverted at start")
        time.sleep(8)  # several trickling fetches in flight; none may apply the cap
        assert limits_w(site["state"]) == [700.0, 700.0]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        exit_s = time.monotonic() - sent
        print(f"SIGTERM to exit during a trickled fetch: {exit_s:.2f} s")
        assert exit_s < 10, "SIGTERM must not wait for a trickling response"
        assert limits_w(site["state"]) == [700.0, 700.0]
        assert "Traceback" not in log.read_text()
    finally:
        stop.set()
        server.close()
