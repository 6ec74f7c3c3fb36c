"""`dcim dashboard` started before its store exists (nothing collected yet): a real server process
starts, a real browser shows "no data yet", and when the store appears the screen recovers by
itself; no traceback anywhere."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.dashboards import sitedata as S
from tests.dashboards.test_browser import wait_for
from tests.fixtures.browser import console_errors

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard_without_store(tmp_path):
    import tomli_w

    port = _free_port()
    data = S.config_data(refresh_s=2.0)
    data["store"] = {"backend": "sqlite", "path": str(tmp_path / "store" / "dcim.sqlite")}
    data["dashboard"].update(port=port)
    (tmp_path / "store").mkdir()
    cfg_path = tmp_path / "dcim.toml"
    cfg_path.write_text(tomli_w.dumps(data))
    log_path = tmp_path / "dashboard.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "dashboard", "--config", str(cfg_path)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url, Path(data["store"]["path"]), proc, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_starts_without_a_store_says_no_data_and_recovers(dashboard_without_store, browser):
    url, store_path, proc, log_path = dashboard_without_store
    assert not store_path.exists()
    driver = browser
    def stamp() -> str:
        return driver.execute_script("const e = document.getElementById('stamp'); return e ? e.innerText : '';")

    for path in ("/", "/alarms", "/power", "/energy"):
        driver.get(url + path + "?kiosk=1")
        wait_for(lambda: stamp().strip() != "")
        assert stamp() == "No data yet — waiting for the store"
    assert proc.poll() is None
    # the collectors start: the store appears and fills
    store = S.open_test_store(store_path)
    try:
        S.populate(store)
        driver.get(url + "/")
        wait_for(lambda: stamp().startswith("Data as of"), timeout=20)
        wait_for(lambda: driver.execute_script(
            "const e = document.querySelector('[data-testid=\"it_kw\"]'); return e && e.innerText;")
                 == f"{S.NOW_IT_W / 1000:,.1f} kW", timeout=20)
        assert console_errors(driver) == []
    finally:
        driver.get("about:blank")
        store.close()
    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert "store not available yet" in log  # said once, plainly
    assert log.count("store not available yet") == 1
