"""`dcim exporter` as an operator runs it: started before its store exists it answers /metrics
with dcim_exporter_store_up 0 (no traceback, no exit), and serves the store's series once the
store appears."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from dcim.metrics import Point
from tests.prometheus.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
STORE = 'path = "var/dcim.sqlite"'


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def test_exporter_waits_for_its_store_and_then_serves_it(tmp_path):
    from dcim.store.sqlite import SqliteStore

    demo = (ROOT / "deploy" / "demo.toml").read_text()
    assert STORE in demo
    db = tmp_path / "later" / "dcim.sqlite"
    cfg = tmp_path / "dcim.toml"
    cfg.write_text(demo.replace(STORE, f'path = "{db}"'))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "exporter", "--config", str(cfg),
                             "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = wait_for(lambda: scrape(port), timeout_s=60)
        assert re.search(r"^dcim_exporter_store_up 0\.0$", first, re.MULTILINE), first
        db.parent.mkdir()
        store = SqliteStore(db)
        store.write([Point("facility", {"site": "daejeon-hub"}, {"pue": 1.28})])
        store.close()
        later = wait_for(lambda: "dcim_facility_pue{" in scrape(port) and scrape(port), timeout_s=30)
        assert re.search(r'^dcim_facility_pue\{site="daejeon-hub"\} 1\.28$', later, re.MULTILINE), later
        assert re.search(r"^dcim_exporter_store_up 1\.0$", later, re.MULTILINE)
        assert "process_cpu_seconds_total" in later   # the exporter's own process metrics
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert "Traceback" not in stderr, stderr
