"""The agent trusts the optimizer no further than it must.

Each hostile answer is served by a real HTTP server on loopback (a socket server, so the test
controls every byte: trickled, huge, redirecting) to the agent's real fetcher; the lease, host
and floor rules are checked on :class:`NodeAgent` with GPUs whose limits the test reads back.
"""

from __future__ import annotations

import json
import resource
import socket
import threading
import time

import pytest

from optimizer.agent import FetchError, NodeAgent, http_fetcher
from optimizer.cap_record import CapRecord
from tests.optimizer.fakes import FakeGpus

HOST = "node-3"
TOKEN = "trust-token-Zq81"
FAR_NS = 2**63 - 1


class Server:
    """A loopback TCP server answering each connection with *answer(conn, request_bytes)*."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                self.requests.append(data)
                self.answer(conn, data)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def servers():
    made: list[Server] = []
    yield lambda answer: made.append(Server(answer)) or made[-1]
    for s in made:
        s.close()


def document(limit_w=450.0, expires_ns=None, host=HOST) -> bytes:
    return json.dumps({"host": host, "gpus": [{"index": 0, "power_limit_w": limit_w,
                                               "expires_ns": expires_ns or time.time_ns() + 60 * 10**9}]}).encode()


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_a_trickling_answer_is_cut_at_the_deadline(servers):
    stop = threading.Event()

    def trickle(conn, _req):
        reply = ok(document())
        for i in range(len(reply)):
            if stop.wait(1.0):
                return
            conn.sendall(reply[i:i + 1])

    server = servers(trickle)
    fetch = http_fetcher(server.url, HOST, TOKEN, timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match="within 2 s"):
        fetch()
    stop.set()
    assert time.monotonic() - started < 3.5


def test_a_huge_body_is_refused_without_reading_it(servers):
    def announced(conn, _req):  # says 1.5 GB up front
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1500000000\r\n\r\n" + b"{" * 65536)

    def streamed(conn, _req):  # no length: streams until the client gives up
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        junk = b"[" * 65536
        for _ in range(2000):  # 128 MiB at most
            conn.sendall(junk)

    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for answer in (announced, streamed):
        server = servers(answer)
        with pytest.raises(FetchError, match="byte limit"):
            http_fetcher(server.url, HOST, TOKEN, timeout_s=5.0)()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) / 1024
    assert grown_mib < 32, f"the fetcher grew the process by {grown_mib:.0f} MiB"


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(servers):
    elsewhere = servers(lambda conn, _req: conn.sendall(ok(document())))
    redirecting = servers(lambda conn, _req: conn.sendall(
        f"HTTP/1.1 302 Found\r\nLocation: {elsewhere.url}/v1/desired-state?host={HOST}\r\n"
        "Content-Length: 0\r\n\r\n".encode()))
    with pytest.raises(FetchError, match="302"):
        http_fetcher(redirecting.url, HOST, TOKEN, timeout_s=3.0)()
    time.sleep(0.3)
    assert len(redirecting.requests) == 1 and TOKEN.encode() in redirecting.requests[0]
    assert elsewhere.requests == []


def test_the_agent_reads_a_good_document_through_the_same_fetcher(servers):
    server = servers(lambda conn, _req: conn.sendall(ok(document(480.0))))
    gpus = FakeGpus(n=2)
    agent = NodeAgent(gpus, http_fetcher(server.url, HOST, TOKEN, timeout_s=3.0), host=HOST, lease_s=300)
    assert agent.tick() == {0: 480.0, 1: 700.0}
    assert f"GET /v1/desired-state?host={HOST} ".encode() in server.requests[0]


def test_a_lease_never_outlasts_lease_s_on_the_agents_own_clock():
    """expires_ns = 2^63-1 (or an optimizer clock years ahead): the cap still lapses lease_s
    after the agent last received a document."""
    mono = [1000.0]
    docs = [json.loads(document(400.0, expires_ns=FAR_NS))]
    gpus = FakeGpus(n=1)
    agent = NodeAgent(gpus, lambda: docs.pop() if docs else None, host=HOST, lease_s=30.0,
                      monotonic=lambda: mono[0])
    assert agent.tick() == {0: 400.0}
    mono[0] += 29.0
    assert agent.tick() == {0: 400.0}  # the optimizer is silent; the last document holds…
    mono[0] += 1.0
    assert agent.tick() == {0: 700.0}  # …for lease_s, not until 2262


def test_a_document_for_another_host_is_refused():
    gpus = FakeGpus(n=1)
    for host in ("node-4", None, "", ["node-3"]):
        doc = {"host": host, "gpus": [{"index": 0, "power_limit_w": 300.0, "expires_ns": FAR_NS}]}
        agent = NodeAgent(gpus, lambda d=doc: d, host=HOST, lease_s=300)
        assert agent.tick() == {0: 700.0} and agent.fetch_errors == 1, host
    assert gpus.sets == []


def test_caps_are_clamped_to_the_sites_floor():
    gpus = FakeGpus(n=2)
    doc = {"host": HOST, "gpus": [{"index": 0, "power_limit_w": 210.0, "expires_ns": FAR_NS},
                                  {"index": 1, "power_limit_w": 600.0, "expires_ns": FAR_NS}]}
    agent = NodeAgent(gpus, lambda: doc, host=HOST, lease_s=300, floor_fraction=0.5)
    assert agent.tick() == {0: 350.0, 1: 600.0}  # 0.5 × 700 W max; 600 W is above the floor


def test_a_cap_is_recorded_before_it_is_set_and_forgotten_when_reverted(tmp_path):
    path = tmp_path / "caps.json"
    gpus = FakeGpus(n=1)
    docs = [{"host": HOST, "gpus": [{"index": 0, "power_limit_w": 500.0, "expires_ns": FAR_NS}]}, {"host": HOST}]
    seen_in_record = []
    real_set = gpus.set_power_limit_w

    def set_and_look(index, limit_w):
        seen_in_record.append(json.loads(path.read_text()) if path.exists() else None)
        return real_set(index, limit_w)

    gpus.set_power_limit_w = set_and_look
    agent = NodeAgent(gpus, lambda: docs.pop(0), host=HOST, lease_s=300, record=CapRecord(path))
    assert agent.tick() == {0: 500.0}
    assert seen_in_record[0]["gpus"][0]["set_w"] == [500.0]  # on disk before the GPU was touched
    assert agent.tick() == {0: 700.0}
    assert json.loads(path.read_text())["gpus"] == []


def test_no_cap_is_set_when_the_record_cannot_be_written(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    gpus = FakeGpus(n=1)
    doc = {"host": HOST, "gpus": [{"index": 0, "power_limit_w": 500.0, "expires_ns": FAR_NS}]}
    agent = NodeAgent(gpus, lambda: doc, host=HOST, lease_s=300, record=CapRecord(blocker / "caps.json"))
    assert agent.tick() == {} and gpus.limits == [700.0] and gpus.sets == []


def test_after_shutdown_a_late_tick_sets_nothing():
    gpus = FakeGpus(n=1)
    doc = {"host": HOST, "gpus": [{"index": 0, "power_limit_w": 500.0, "expires_ns": FAR_NS}]}
    agent = NodeAgent(gpus, lambda: doc, host=HOST, lease_s=300)
    assert agent.tick() == {0: 500.0}
    assert agent.shutdown() == 0 and gpus.limits == [700.0]
    assert agent.tick() == {} and gpus.limits == [700.0]
