"""Fixtures of the Prometheus tests: a fresh SQLite store, the exporter on a free loopback port, and
Debian's real ``prometheus`` scraping it every second (started with a temporary config and data
directory, queried over its HTTP API)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

PROMETHEUS = os.environ.get("DCIM_PROMETHEUS", "/usr/bin/prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout_s: float, every_s: float = 0.2):
    """*check()*'s first truthy answer within *timeout_s*, else its last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every_s)


class Prometheus:
    """A running prometheus scraping *targets* (host:port) every second."""

    def __init__(self, root: Path, targets: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = root / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                          "scrape_configs:\n  - job_name: dcim\n    static_configs:\n"
                          f"      - targets: {json.dumps(targets)}\n")
        self.log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - open while prometheus runs
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.root = root
        if not wait_for(self._ready, timeout_s=30):
            self.stop()
            raise RuntimeError(f"prometheus did not start: {(root / 'prometheus.log').read_text()[-2000:]}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(self.root / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def store(tmp_path):
    from dcim.store.sqlite import SqliteStore

    s = SqliteStore(tmp_path / "dcim.sqlite")
    yield s
    s.close()


@pytest.fixture
def prometheus_for(tmp_path):
    """prometheus_for([host:port, ...]) starts prometheus scraping those targets; stopped at teardown."""
    if not shutil.which(PROMETHEUS) and not os.path.exists(PROMETHEUS):
        pytest.fail(f"{PROMETHEUS} not found: install Debian's 'prometheus' (./dcim.sh test does)")
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        root = tmp_path / f"prometheus-{len(started)}"
        root.mkdir()
        started.append(Prometheus(root, targets))
        return started[-1]

    yield start
    for p in started:
        p.stop()
