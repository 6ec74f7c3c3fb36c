"""`dcim up` end to end, in a subprocess, as a user runs it: the twin's agents polled over SNMP,
GPUs sampled, the optimizer capping simulated GPUs, the dashboard showing live values in a real
browser; Ctrl-C stops everything, reverts the caps and leaves no process behind. Once on the
embedded SQLite store and once on a real influxd."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from pathlib import Path

import pytest
import tomli_w

from dcim.config import load_config
from dcim.store import open_store
from tests.dashboards.test_browser import load, text_of

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "demo.toml"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, store: dict) -> Path:
    data = tomllib.loads(DEMO.read_text(encoding="utf-8"))
    data["store"] = store
    data["collectors"]["metrics_port"] = 0
    data["optimizer"]["interval_s"] = 15.0  # a few cycles within the test
    data["optimizer"]["model_path"] = str(tmp_path / "pue.pkl")
    data["dashboard"]["refresh_s"] = 2.0
    data["exporter"] = {"port": 0}  # [exporter]: any free port (9109 may be taken on a shared box)
    path = tmp_path / "dcim.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def wait_for(predicate, timeout_s: float, what: str, proc=None):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"dcim up exited ({proc.returncode}) while waiting for {what}")
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # store not there yet, etc.
            last = exc
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")


def run_up(tmp_path: Path, config: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIM_SNMP")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    log = (tmp_path / "up.log").open("w")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "up", "--config", str(config), "--simulate",
                             "--backfill-days", "0.25", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                            start_new_session=True)
    return proc, port, time.time_ns()


def check_product(tmp_path, config_path, proc, port, launched_ns, browser):
    cfg = load_config(config_path)
    url = wait_for(lambda: re.search(r"dashboard on (http://\S+)", proc.stdout.readline() or ""), 240,
                   "the dashboard URL", proc)[1]
    assert url == f"http://127.0.0.1:{port}/"
    exporter = wait_for(lambda: re.search(r"exporter +(http://\S+/metrics)", proc.stdout.readline() or ""), 30,
                        "the exporter's URL", proc)[1]
    started_ns = time.time_ns()
    store = open_store(cfg, readonly=True)
    try:
        # Collectors write: the SNMP devices answer through the real agents, GPUs are sampled.
        def snmp_ok():
            rows = store.latest("collector", where={"collector": "snmp"}, since_ns=started_ns)
            good = {p.tags["target"] for p in rows if p.fields.get("ok") is True}
            return len(good) >= 40 and good
        good = wait_for(snmp_ok, 240, "SNMP devices polled OK", proc)
        assert {"pdu-A01-a", "pdu-D04-b", "ups-1", "main-incomer", "chiller-1"} <= good
        # Health rows are stamped when a cycle ends, readings when polled: a cycle that spans
        # started_ns passes the check above with readings stamped before it. The next cycle's
        # readings all count: wait for them.
        def all_pdus():
            got = store.latest("pdu", since_ns=started_ns)
            return len(got) == 32 and got
        pdus = wait_for(all_pdus, 60, "all 32 PDUs' readings", proc)
        assert all(p.fields.get("power_w", 0) > 0 for p in pdus)
        # The optimizer capped simulated GPUs, and the GPU telemetry shows the caps.
        def capped():
            gpus = store.latest("gpu", since_ns=time.time_ns() - int(20e9))
            low = [p for p in gpus if p.fields.get("power_limit_w", 700.0) < 699.0]
            return len(gpus) == 512 and low
        low = wait_for(capped, 180, "GPUs carrying caps in the gpu telemetry", proc)
        assert all(200.0 <= p.fields["power_limit_w"] <= 700.0 for p in low)
        # The first cycle runs as the optimizer starts, before the dashboard URL is printed.
        applied = store.latest("optimizer", where={"action": "set"}, since_ns=launched_ns)
        assert applied and {p.tags["uuid"] for p in low} <= {p.tags["uuid"] for p in applied} | {""}
        # The dashboard shows the live values that are in the store.
        load(browser, url)
        fac = store.latest("facility", since_ns=started_ns)[0]
        shown = float(text_of(browser, "pue_now"))
        assert abs(shown - fac.fields["pue"]) < 0.05, (shown, fac.fields)
        assert float(text_of(browser, "it_kw").split()[0].replace(",", "")) > 100
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == []
        # dcim up serves the store to Prometheus too ([exporter])
        with urllib.request.urlopen(exporter, timeout=60) as resp:
            metrics = resp.read().decode()
        assert re.search(r"^dcim_exporter_store_up 1\.0$", metrics, re.MULTILINE)
        assert len(re.findall(r"^dcim_gpu_power_watts\{", metrics, re.MULTILINE)) == 512
    finally:
        store.close()

    # Ctrl-C: everything stops, every cap is reverted, nothing is left listening.
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0
    log = (tmp_path / "up.log").read_text()
    m = re.search(r"optimizer stopped, (\d+) cap\(s\) reverted", log)
    assert m and int(m[1]) >= len(low), log[-2000:]
    with open_store(cfg, readonly=True) as store:
        reverts = store.latest("optimizer", where={"action": "revert"}, since_ns=launched_ns)
        assert {p.tags["uuid"] for p in low} <= {p.tags["uuid"] for p in reverts}
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the dashboard is still listening"
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes left behind: {leftover}"
    assert "Traceback" not in log, log[-3000:]


def test_up_on_sqlite(tmp_path, browser):
    config = write_config(tmp_path, {"path": str(tmp_path / "dcim.sqlite"), "spool": {"path": str(tmp_path / "spool")}})
    proc, port, launched_ns = run_up(tmp_path, config)
    try:
        check_product(tmp_path, config, proc, port, launched_ns, browser)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_up_on_influxdb(tmp_path, influxd, browser):
    db = "up_" + uuid.uuid4().hex[:8]
    config = write_config(tmp_path, {"backend": "influxdb", "influxdb": {"url": influxd.url, "database": db},
                                     "spool": {"path": str(tmp_path / "spool")}})
    proc, port, launched_ns = run_up(tmp_path, config)
    try:
        check_product(tmp_path, config, proc, port, launched_ns, browser)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_up_twin_jobs_post_progress(tmp_path):
    """The twin's jobs report their work done through POST /v1/progress, as real jobs do: the
    store holds their `progress` points (source "post") under the tenants the Slurm source
    recorded for them, and the intake accepted every report."""
    import json
    import urllib.request

    config = write_config(tmp_path, {"path": str(tmp_path / "dcim.sqlite"), "spool": {"path": str(tmp_path / "spool")}})
    data = tomllib.loads(config.read_text())
    data["workload"]["interval_s"] = 10.0  # the twin's first reports wait two polls
    config.write_bytes(tomli_w.dumps(data).encode())
    token = "optimizer-token-for-the-test-1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCIM_SNMP", "DCIM_SLURM"))}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", DCIM_OPTIMIZER_TOKEN=token)
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "up", "--config", str(config), "--simulate",
                             "--backfill-days", "0.05", "--port", "0", "--no-metrics"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                            start_new_session=True)
    try:
        url = wait_for(lambda: re.search(r"progress +(http://\S+)/v1/progress", proc.stdout.readline() or ""), 240,
                       "the progress intake's URL", proc)[1]
        cfg = load_config(config)
        with open_store(cfg, readonly=True) as store:
            def posted():
                points = [p for p in store.latest("progress", where={"site": cfg.site.name})
                          if p.fields.get("source") == "post"]
                return len(points) >= 10 and points
            points = wait_for(posted, 150, "the twin's jobs' progress posts", proc)
            tenants = {p.fields["job"]: p.fields["tenant"] for p in store.latest("workload")
                       if p.fields.get("job")}
        assert all(p.tags["tenant"] == tenants[p.tags["job"]] for p in points)
        assert {p.fields["unit"] for p in points} <= {"steps", "tokens", "samples"}
        assert all(p.fields["work_done"] > 0 for p in points)
        req = urllib.request.Request(url + "/v1/progress/stats", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            stats = json.loads(resp.read())
        assert stats["accepted"] >= len(points) and stats["refused"] == 0, stats
        assert stats["require_known_job"] is True
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = (tmp_path / "up.log").read_text()
    assert "Traceback" not in text and token not in text, text[-3000:]


def test_up_serves_first_and_fills_the_quarter_behind(tmp_path):
    """The default start (no --backfill-days): the recent [simulator] backfill_days before
    anything serves, the rest of the quarter to date written by a background process once the
    dashboard serves (its first hours reach the store while dcim up runs); Ctrl-C stops that
    process too."""
    from simulator.backfill import quarter_start_ns

    config = write_config(tmp_path, {"path": str(tmp_path / "dcim.sqlite"), "spool": {"path": str(tmp_path / "spool")}})
    data = tomllib.loads(config.read_text())
    data["simulator"]["backfill_days"] = 0.25
    config.write_bytes(tomli_w.dumps(data).encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIM_SNMP")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "up", "--config", str(config), "--simulate",
                             "--port", "0", "--no-metrics"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                            start_new_session=True)
    try:
        wait_for(lambda: re.search(r"dashboard on (http://\S+)", proc.stdout.readline() or ""), 240,
                 "the dashboard URL", proc)
        cfg = load_config(config)
        quarter_ns = quarter_start_ns(time.time_ns(), cfg.site.timezone)
        recent_ns = time.time_ns() - int(0.25 * 86400e9)
        assert re.search(r"writing the quarter's [\d.]+ earlier days in the background",
                         (tmp_path / "up.log").read_text())
        with open_store(cfg, readonly=True) as store:
            def early_hours():
                rows = store.query("facility", ["total_power_w"], quarter_ns, recent_ns - int(3600e9), agg="count")
                return rows and rows[0].values["total_power_w"][0] >= 24
            wait_for(early_hours, 240, "the quarter's first hours in the store", proc)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert leftover == [], f"processes left behind: {leftover}"
        text = (tmp_path / "up.log").read_text()
        assert "quarter backfill: writing" in text and "Traceback" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
