"""Fixtures of the alarm tests: a fresh SQLite store, the demo config with [alerts] settings of the
test's choosing, an HTTP receiver that records what it is sent, and Debian's real
prometheus-alertmanager on a free loopback port routing to such a receiver."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ALERTMANAGER = os.environ.get("DCIM_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """An HTTP server on loopback recording each POST (path, headers, raw body, arrival time).
    ``status`` sets the answer; ``delay_s`` makes it slow."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.delay_s = 0.0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                           "t": time.monotonic()})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def json_bodies(self) -> list:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def store(tmp_path):
    from dcim.store.sqlite import SqliteStore

    s = SqliteStore(tmp_path / "dcim.sqlite")
    yield s
    s.close()


@pytest.fixture
def make_config(demo_config, tmp_path):
    """The demo config, store in tmp_path, [alerts] from keyword arguments."""
    from dcim.config.alerts import AlertsSettings

    def make(**alerts):
        store = demo_config.store.model_copy(update={"path": tmp_path / "dcim.sqlite"})
        return demo_config.model_copy(update={"alerts": AlertsSettings.model_validate(alerts), "store": store})
    return make


class AlertmanagerProcess:
    def __init__(self, root: Path, hook_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "am.yml").write_text(
            "route: {receiver: hook, group_by: [alertname, entity], group_wait: 1s, group_interval: 1s, "
            "repeat_interval: 1h}\n"
            f"receivers: [{{name: hook, webhook_configs: [{{url: '{hook_url}/hook', send_resolved: true}}]}}]\n")
        self.log = open(root / "am.log", "wb")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={root / 'am.yml'}", f"--storage.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.root = root

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {(self.root / 'am.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("alertmanager not ready in time")

    def alerts(self) -> list[dict]:
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def alertmanager(tmp_path, receiver):
    if not shutil.which(ALERTMANAGER) and not Path(ALERTMANAGER).exists():
        pytest.fail(f"{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager (./dcim.sh test does)")
    am = AlertmanagerProcess(tmp_path / "am", receiver.url)
    try:
        am.wait_ready()
        yield am
    finally:
        am.stop()


def wait_for(predicate, timeout_s: float = 20.0, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return predicate()
