"""HTTP services that idle or hostile clients cannot take down.

Against the real processes (``dcim optimize``, ``dcim collect``'s ``/metrics``, ``dcim dashboard``),
each started under the usual 1,024-file limit (the limit the outage was reproduced under):

- 2,000 idle TCP connections opened to it: ``/health`` (``/metrics``) still answers within a
  couple of seconds and the service's own file descriptors stay under its limit;
- an unauthenticated 100 MiB POST to the dashboard: 401 before the body is read (nothing spooled,
  no memory growth), an authenticated one past the body limit: 413, also unread;
- a deeply nested JSON body to ``/v1/placement``: 400, not a RecursionError;
- clients that hang up mid-request (RST): no traceback in the service's log;
- anti-framing headers on every answer;
- typed hostile values in every Dash callback input: never a 500.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.faults.conftest import PY, dcim_env, wait_for
from tests.faults.test_security import SECRETS, write_config

SERVICE_FD_LIMIT = 1024   # the service runs under the usual soft = hard limit
IDLE_CONNECTIONS = 2000
ANSWER_WITHIN_S = 2.0
FRAMING = {"x-frame-options": "DENY", "content-security-policy": "frame-ancestors 'none'",
           "x-content-type-options": "nosniff"}


def _raise_own_fd_limit(need: int) -> int:
    """Raise this test process's soft file limit to its hard one; the connections it can open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(need, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)


def _service_limits():
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVICE_FD_LIMIT, SERVICE_FD_LIMIT))


class Service:
    """A ``dcim`` command in a subprocess, its log in a file (a pipe nobody reads would block it)."""

    def __init__(self, tmp: Path, name: str, args: list[str], url_pattern: str):
        self.log_path = tmp / f"{name}.log"
        self.tmpdir = tmp / f"{name}-tmp"
        self.tmpdir.mkdir()
        env = dcim_env(**SECRETS, TMPDIR=str(self.tmpdir))
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([PY, "-m", "dcim.cli.main", "--log-level", "INFO", *args], cwd=tmp, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_service_limits)
        found = wait_for(lambda: self._alive() and re.search(url_pattern, self.log()), 60, f"{name} to listen")
        self.host, self.port = found.group(1), int(found.group(2))

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"service exited {self.proc.returncode}:\n{self.log()[-3000:]}")
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.log()


def http(host: str, port: int, request: bytes, timeout_s: float = 5.0) -> tuple[int, dict, bytes]:
    """One raw HTTP/1.0 exchange; (status, headers lower-cased, body)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(service: Service, path: str, headers: str = "") -> tuple[int, dict, bytes]:
    return http(service.host, service.port, f"GET {path} HTTP/1.0\r\nHost: x\r\n{headers}\r\n".encode())


def open_idle(host: str, port: int, n: int, batch: int = 4, pause_s: float = 0.004) -> list[socket.socket]:
    """*n* TCP connections that send nothing. Opened a batch at a time: a burst past the server's
    accept backlog only half-opens (the kernel drops the handshake's last ACK and retries it for a
    minute), and an attack that never reaches the server proves nothing."""
    socks = []
    for start in range(0, n, batch):
        for _ in range(min(batch, n - start)):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, port))
            socks.append(s)
        time.sleep(pause_s)
    return socks


def reset_mid_request(service: Service, request: bytes, times: int = 50) -> None:
    """Send a request (or part of one) and hang up at once with a RST, like a browser tab closed."""
    for _ in range(times):
        s = socket.create_connection((service.host, service.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(request)
        s.close()


# --- the three services ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("http")
    cfg = write_config(tmp)
    from dcim.config import load_config
    from dcim.store import open_store

    open_store(load_config(cfg)).close()  # the schema, so the read-only dashboard finds a store
    return cfg


OPT_AUTH = f"Authorization: Bearer {SECRETS['DCIM_T_OPT_TOKEN']}\r\n"
DASH_AUTH = "Authorization: Basic " + base64.b64encode(f"ops:{SECRETS['DCIM_T_DASH_PW']}".encode()).decode() + "\r\n"

SERVICES = {
    # name: (arguments, where its log says it listens, the path that must keep answering)
    "optimizer": (["optimize", "--mode", "advise"], r"optimizer API on http://([\d.]+):(\d+)", "/health"),
    "metrics": (["collect", "--no-gpu", "--metrics-port", "0"], r"metrics on http://([\d.]+):(\d+)/metrics",
                "/metrics"),
    "dashboard": (["dashboard", "--port", "0"], r"dashboard on http://([\d.]+):(\d+)/", "/health"),
}


@pytest.fixture
def service(request, config, tmp_path):
    args, pattern, _ = SERVICES[request.param]
    svc = Service(tmp_path, request.param, [*args[:1], "--config", str(config), *args[1:]], pattern)
    yield svc
    svc.stop()


@pytest.mark.parametrize("service", list(SERVICES), indirect=True)
def test_idle_connections_do_not_take_the_service_down(service):
    n = _raise_own_fd_limit(IDLE_CONNECTIONS)
    path = SERVICES[_name(service)][2]
    assert get(service, path)[0] == 200
    fds_before = service.fds()
    socks = open_idle(service.host, service.port, n)
    try:
        _settle(service)
        t0 = time.monotonic()
        code, headers, _ = get(service, path)
        answer_s = time.monotonic() - t0
        fds_during = service.fds()
        assert code == 200, code
        assert answer_s < ANSWER_WITHIN_S, f"{path} took {answer_s:.2f} s with {n} idle connections"
        assert fds_during < SERVICE_FD_LIMIT - 100, (fds_before, fds_during)
        for name, value in FRAMING.items():
            assert headers.get(name) == value, (name, headers)
        print(f"{_name(service)}: {n} idle connections opened; {path} answered in {answer_s * 1000:.0f} ms; "
              f"service fds {fds_before} -> {fds_during} (file limit {SERVICE_FD_LIMIT})")
    finally:
        for s in socks:
            s.close()
    log = service.stop()
    assert "Traceback" not in log and "Too many open files" not in log, log[-3000:]


def _settle(service: Service, timeout_s: float = 10.0) -> None:
    """Wait until the service has taken in what it will of the connections (its file count stops
    moving for a second), so the probe below meets the service at its worst."""
    deadline, last, still_since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        now_fds = service.fds()
        if now_fds != last:
            last, still_since = now_fds, time.monotonic()
        elif time.monotonic() - still_since > 1.0:
            return
        time.sleep(0.1)


def _name(service: Service) -> str:
    return service.log_path.stem


@pytest.mark.parametrize("service", list(SERVICES), indirect=True)
def test_clients_hanging_up_early_leave_no_traceback(service):
    path = SERVICES[_name(service)][2]
    auth = OPT_AUTH if _name(service) == "optimizer" else DASH_AUTH
    reset_mid_request(service, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    reset_mid_request(service, b"GET / HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"\r\n")
    reset_mid_request(service, b"POST /v1/placement HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + auth.encode()
                      + b"\r\n{\"gpus\"")
    reset_mid_request(service, b"GET /heal")
    assert get(service, path)[0] == 200
    log = service.stop()
    assert "Traceback" not in log and "BrokenPipe" not in log and "ConnectionReset" not in log, log[-3000:]


@pytest.mark.parametrize("service", ["optimizer"], indirect=True)
def test_deeply_nested_placement_body_is_a_400(service):
    for body in (b"[" * 60000, b'{"a":' * 10000 + b"1" + b"}" * 10000):
        code, headers, answer = http(service.host, service.port,
                                     b"POST /v1/placement HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
                                     + OPT_AUTH.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert code == 400, (code, answer[:300])
        assert "error" in json.loads(answer)
    # and over the 64 KiB cap: refused before it is read
    code, _, _ = http(service.host, service.port, b"POST /v1/placement HTTP/1.0\r\nHost: x\r\n" + OPT_AUTH.encode()
                      + b"Content-Length: 100000000\r\n\r\n")
    assert code == 413
    log = service.stop()
    assert "RecursionError" not in log and "Traceback" not in log, log[-3000:]


def post_big(service, headers: str, size_bytes: int, path: str = "/_dash-update-component") -> tuple[int, float, int]:
    """POST *size_bytes* of body to *path* while reading the answer; (status, seconds to it, bytes
    the client managed to send before the server answered and hung up)."""
    sock = socket.create_connection((service.host, service.port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"{headers}Content-Length: {size_bytes}\r\n\r\n".encode())
    sent = [0]

    def pump():
        chunk = b"0" * (1 << 20)
        try:
            while sent[0] < size_bytes:
                sent[0] += sock.send(chunk[:size_bytes - sent[0]])
        except OSError:
            pass

    t0 = time.monotonic()
    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        status = sock.recv(64)
        took = time.monotonic() - t0
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already reset by the server: it hung up on the rest of the body
            pass
        sock.close()
        thread.join(10)
    return int(status.split()[1]), took, sent[0]


def _spooled_files(service: Service) -> list[str]:
    """Temporary files the service holds open (waitress spools big bodies to unlinked ones)."""
    out = []
    for fd in os.listdir(f"/proc/{service.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{service.proc.pid}/fd/{fd}")
        except OSError:
            continue
        if str(service.tmpdir) in target or "/tmp/" in target and "(deleted)" in target:
            out.append(target)
    return out


@pytest.mark.parametrize("service", ["dashboard"], indirect=True)
def test_dashboard_refuses_big_bodies_before_reading_them(service):
    size = 100 * 1024 * 1024
    rss_before = service.rss_bytes()
    code, took_s, sent = post_big(service, "", size)
    assert code == 401 and took_s < ANSWER_WITHIN_S, (code, took_s)
    assert sent < size // 4, f"the server read {sent} bytes of an unauthenticated body"
    code_auth, took_auth_s, sent_auth = post_big(service, DASH_AUTH, size)
    assert code_auth == 413 and took_auth_s < ANSWER_WITHIN_S, (code_auth, took_auth_s)
    assert sent_auth < size // 4
    growth = service.rss_bytes() - rss_before
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth} bytes"
    assert not _spooled_files(service) and not any(service.tmpdir.iterdir())
    # a normal authenticated callback body still goes through
    body = json.dumps({"output": "url.pathname", "outputs": {"id": "url", "property": "pathname"},
                       "inputs": [{"id": "kiosk-timer", "property": "n_intervals", "value": 1}],
                       # the kiosk callback's whole state: the path, its search, and the tables' pages
                       # (pattern-matching states with no tables on the page: empty lists)
                       "state": [{"id": "url", "property": "pathname", "value": "/"},
                                 {"id": "url", "property": "search", "value": ""}, [], [], []],
                       "changedPropIds": ["kiosk-timer.n_intervals"]}).encode()
    request = (b"POST /_dash-update-component HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
               + DASH_AUTH.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    code, headers, answer = http(service.host, service.port, request)
    # the next kiosk page: /alarms, or /power when there is no alarm to show (empty pages are skipped)
    assert code == 200 and json.loads(answer)["response"]["url"]["pathname"] in ("/alarms", "/power"), \
        (code, answer[:300])
    print(f"dashboard: unauthenticated 100 MiB POST -> 401 in {took_s * 1000:.0f} ms, client got {sent >> 10} KiB "
          f"into socket buffers; authenticated -> 413 in {took_auth_s * 1000:.0f} ms; RSS +{growth >> 10} KiB")
    log = service.stop()
    assert "Traceback" not in log, log[-3000:]


# --- hostile values in every Dash callback -----------------------------------------------------------

HOSTILE = [None, 0, -1, 2**63, 1e308, True, "", "x" * 5000, [], {}, [1, "a", None], {"a": [1]},
           "<script>alert(1)</script>", [[[[]]]], {"row": "x"}, {"row": 10**9}, {"row": -1},
           [{"column_id": 5}], [{"column_id": "nope", "direction": 3}], [{}], [{"column_id": ["power_w"]}],
           "/../../etc/passwd", "?lang=%ff&rack=%26x%3D1"]


@pytest.fixture(scope="module")
def dash_client(tmp_path_factory):
    from dashboards.app import create_app
    from tests.dashboards import sitedata as S

    store = S.open_test_store(tmp_path_factory.mktemp("dash") / "s.sqlite")
    S.populate(store)
    yield create_app(S.make_config(), store)
    store.close()


def _spec(item: dict, value):
    """One input/state entry with *value*; a pattern-matching (ALL) one as a list of two matches."""
    if isinstance(item["id"], str) and item["id"].startswith("{"):
        pattern = json.loads(item["id"])
        return [{"id": {**pattern, "k": k}, "property": item["property"], "value": value} for k in ("pue", "it_kw")]
    return {**item, "value": value}


def _outputs(dep: dict):
    out = dep["output"]
    parts = out[2:-2].split("...") if out.startswith("..") else [out]
    specs = []
    for part in parts:
        ident, _, prop = part.rpartition(".")
        if ident.startswith("{"):
            pattern = json.loads(ident)
            specs.append([{"id": {**pattern, "k": k}, "property": prop} for k in ("pue", "it_kw")])
        else:
            specs.append({"id": ident, "property": prop})
    return specs if len(specs) > 1 else specs[0]


def test_dash_callbacks_answer_typed_hostile_values_without_a_500(dash_client):
    client = dash_client.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    usual = {"pathname": "/gpus", "search": "", "n_intervals": 1}
    tried, failed = 0, []
    for dep in deps:
        entries = [("inputs", i) for i in range(len(dep["inputs"]))] + \
                  [("state", i) for i in range(len(dep.get("state", [])))]
        for where, index in entries:
            for value in HOSTILE:
                def build(kind, dep=dep, where=where, index=index, value=value):  # called at once, bound anyway
                    return [_spec(item, value if (kind, j) == (where, index) else usual.get(item["property"]))
                            for j, item in enumerate(dep.get(kind, []))]

                body = {"output": dep["output"], "outputs": _outputs(dep), "inputs": build("inputs"),
                        "state": build("state"), "changedPropIds": []}
                r = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
                tried += 1
                if r.status_code >= 500 or "Traceback" in r.get_data(as_text=True):
                    failed.append((dep["output"][:50], where, index, repr(value)[:40], r.status_code))
    print(f"dash callbacks: {tried} typed hostile values, {len(failed)} answered 500")
    assert tried >= 300 and not failed, failed[:20]
