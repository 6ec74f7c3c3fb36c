"""The progress intake's own listener (uvicorn, [optimizer] progress_port) under idle and hostile
clients: issue 20's guarantees, against the real `dcim optimize` process started under the usual
1,024-file limit (as tests/faults/test_http_dos.py does for the waitress services):

- 2,000 idle TCP connections: /health on the progress port answers within 2 s, the process's
  files stay under its limit, and its log has no traceback (no "out of system resource");
- an unauthenticated 100 MiB POST: 401 before the body is read (no memory growth); an
  authenticated one past the 64 KiB limit: 413, also unread; a deeply nested body: 400;
- clients that hang up mid-request (RST): no traceback in the log;
- anti-framing headers on every answer, the listener's own 400s included.

The timeouts (a silent connection, headers or a body a byte at a time) are tested with short
limits in tests/optimizer/test_progress_server.py; their defaults (30 s idle, 10 s per request)
would make this file slow.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.faults.test_http_dos import (
    ANSWER_WITHIN_S,
    FRAMING,
    IDLE_CONNECTIONS,
    OPT_AUTH,
    SERVICE_FD_LIMIT,
    Service,
    _raise_own_fd_limit,
    _settle,
    http,
    open_idle,
    post_big,
)
from tests.faults.test_security import write_config

QUIET = ("Traceback", "Too many open files", "out of system resource", "BrokenPipe", "ConnectionReset",
         "Exception in ASGI application")


@pytest.fixture
def optimizer(tmp_path):
    cfg = write_config(tmp_path)
    from dcim.config import load_config
    from dcim.store import open_store

    open_store(load_config(cfg)).close()
    svc = Service(tmp_path, "optimizer", ["optimize", "--config", str(cfg), "--mode", "advise"],
                  r"progress intake on http://([\d.]+):(\d+)/v1/progress")
    yield svc
    svc.stop()


def get(svc, path: str, headers: str = "") -> tuple[int, dict, bytes]:
    return http(svc.host, svc.port, f"GET {path} HTTP/1.0\r\nHost: x\r\n{headers}\r\n".encode())


def assert_quiet(log: str) -> None:
    for word in QUIET:
        assert word not in log, (word, log[-3000:])


def test_idle_connections_do_not_take_the_listener_down(optimizer):
    n = _raise_own_fd_limit(IDLE_CONNECTIONS)
    assert get(optimizer, "/health")[0] == 200
    fds_before = optimizer.fds()
    socks = open_idle(optimizer.host, optimizer.port, n)
    try:
        _settle(optimizer)
        t0 = time.monotonic()
        code, headers, body = get(optimizer, "/health")
        answer_s = time.monotonic() - t0
        fds_during = optimizer.fds()
        assert code == 200 and json.loads(body)["status"] == "ok", (code, body[:300])
        assert answer_s < ANSWER_WITHIN_S, f"/health took {answer_s:.2f} s with {n} idle connections"
        assert fds_during < SERVICE_FD_LIMIT - 100, (fds_before, fds_during)
        for name, value in FRAMING.items():
            assert headers.get(name) == value, (name, headers)
        # a real post still goes through (the job is unknown to the empty workload: refused, not lost)
        report = json.dumps({"job": "1", "work_done": 1}).encode()
        code, _, _ = http(optimizer.host, optimizer.port, b"POST /v1/progress HTTP/1.0\r\nHost: x\r\n"
                          + OPT_AUTH.encode() + f"Content-Length: {len(report)}\r\n\r\n".encode() + report)
        assert code in (200, 409, 503), code
        print(f"progress listener: {n} idle connections opened; /health answered in {answer_s * 1000:.0f} ms; "
              f"service fds {fds_before} -> {fds_during} (file limit {SERVICE_FD_LIMIT})")
    finally:
        for s in socks:
            s.close()
    assert_quiet(optimizer.stop())


def test_big_and_hostile_bodies_are_refused_unread(optimizer):
    size = 100 * 1024 * 1024
    rss_before = optimizer.rss_bytes()
    code, took_s, sent = post_big(optimizer, "", size, "/v1/progress")
    assert code == 401 and took_s < ANSWER_WITHIN_S, (code, took_s)
    assert sent < size // 4, f"the server read {sent} bytes of an unauthenticated body"
    code_auth, took_auth_s, sent_auth = post_big(optimizer, OPT_AUTH, size, "/v1/progress")
    assert code_auth == 413 and took_auth_s < ANSWER_WITHIN_S, (code_auth, took_auth_s)
    assert sent_auth < size // 4
    growth = optimizer.rss_bytes() - rss_before
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth} bytes"
    for body in (b"[" * 60000, b'{"a":' * 10000 + b"1" + b"}" * 10000, b"\xff\xfe", b"{}" * 10):
        code, headers, answer = http(optimizer.host, optimizer.port,
                                     b"POST /v1/progress HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
                                     + OPT_AUTH.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert code == 400 and "error" in json.loads(answer), (code, answer[:300])
    # the listener's own answer to what is not HTTP carries the anti-framing headers too
    code, headers, _ = http(optimizer.host, optimizer.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert code == 400 and all(headers.get(k) == v for k, v in FRAMING.items()), headers
    print(f"progress listener: unauthenticated 100 MiB POST -> 401 in {took_s * 1000:.0f} ms, client got "
          f"{sent >> 10} KiB into socket buffers; authenticated -> 413 in {took_auth_s * 1000:.0f} ms; "
          f"RSS +{growth >> 10} KiB")
    assert_quiet(optimizer.stop())


def _reset_mid_request(svc, request: bytes, times: int = 50) -> None:
    import struct

    for _ in range(times):
        s = socket.create_connection((svc.host, svc.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(request)
        s.close()


def test_clients_hanging_up_early_leave_no_traceback(optimizer):
    auth = OPT_AUTH.encode()
    _reset_mid_request(optimizer, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    _reset_mid_request(optimizer, b"POST /v1/progress HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + auth
                       + b"\r\n{\"job\"")
    _reset_mid_request(optimizer, b"POST /v1/progress HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + auth
                       + b"\r\n10\r\n{\"job\"")
    _reset_mid_request(optimizer, b"GET /v1/progress/st")
    # and a client that closes politely (FIN) after half a body
    for _ in range(20):
        with socket.create_connection((optimizer.host, optimizer.port), timeout=5) as s:
            s.sendall(b"POST /v1/progress HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n" + auth + b"\r\n{\"jo")
    assert get(optimizer, "/health")[0] == 200
    time.sleep(0.5)
    assert_quiet(optimizer.stop())
