"""The progress listener's own limits (optimizer.progress_server), on a real uvicorn on loopback
with short timeouts: what plain uvicorn does not do (it keeps a silent connection for ever, and a
header trickle too). Its routes' answers are tested in test_progress_api.py, against both servers."""

import json
import logging
import socket
import time

import pytest

from dcim.web import MIN_CONNECTIONS
from optimizer.progress import ProgressBook
from optimizer.progress_server import PrefetchedWorkload, ProgressServer, ServerLimits

TOKEN = "progress-server-token"
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
SHORT = ServerLimits(connection_limit=MIN_CONNECTIONS, idle_timeout_s=0.5, request_timeout_s=1.0,
                     max_header_bytes=4096)


@pytest.fixture
def server(caplog):
    points = []
    book = ProgressBook("s1")
    srv = ProgressServer(book, points.extend, token=TOKEN, limits=SHORT).start()
    srv.points, srv.book = points, book
    with caplog.at_level(logging.INFO):
        yield srv
    srv.stop()
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=5)


def closed_after(sock: socket.socket, trickle: bytes = b"", every_s: float = 0.1, limit_s: float = 5.0) -> float:
    """Seconds until the server closes *sock*, sending *trickle* a byte every *every_s* meanwhile
    (what it answers, if anything, is read and dropped)."""
    t0 = time.monotonic()
    sock.settimeout(every_s)
    sent = 0
    while time.monotonic() - t0 < limit_s:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - t0
        if sent < len(trickle):
            try:
                sock.send(trickle[sent:sent + 1])
            except OSError:
                return time.monotonic() - t0
            sent += 1
    return float("inf")


def post(sock: socket.socket, report: dict) -> tuple[int, bytes]:
    body = json.dumps(report).encode()
    sock.sendall(b"POST /v1/progress HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: %d\r\n\r\n" % len(body)
                 + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed; got {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1]), rest


def test_a_connection_that_never_sends_is_closed_after_the_idle_timeout(server):
    took = closed_after(connect(server))
    assert 0.4 < took < 1.5, took


def test_headers_a_byte_at_a_time_are_cut_off_at_the_request_timeout(server):
    trickle = b"POST /v1/progress HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    took = closed_after(connect(server), trickle, every_s=0.05)  # a byte every 50 ms: never idle
    assert 0.9 < took < 2.0, took


def test_a_body_a_byte_at_a_time_is_cut_off_and_nothing_is_accepted(server):
    head = b"POST /v1/progress HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 200\r\n\r\n"
    sock = connect(server)
    sock.sendall(head)
    took = closed_after(sock, b'{"job": "1", "work_done": 1' + b" " * 200, every_s=0.05)
    assert 0.9 < took < 2.0, took
    assert server.points == [] and server.book.stats()["received"] == 0


def test_kept_alive_connection_serves_requests_until_idle(server):
    sock = connect(server)
    assert post(sock, {"job": "7", "work_done": 1})[0] == 200
    time.sleep(0.3)  # under the idle timeout: still open
    assert post(sock, {"job": "7", "work_done": 2})[0] == 200
    assert 0.3 < closed_after(sock) < 1.5
    assert len(server.points) == 2


def test_oversized_headers_are_a_431_and_the_connection_closes(server):
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 8000 + b"\r\n\r\n")
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"x-frame-options: deny" in answer.lower(), answer[:300]
    assert closed_after(sock) < 1.0


def test_at_the_connection_cap_the_longest_idle_make_room(server):
    idle = [connect(server) for _ in range(3 * MIN_CONNECTIONS)]
    time.sleep(0.2)
    sock = connect(server)
    assert post(sock, {"job": "8", "work_done": 1})[0] == 200
    open_now = sum(1 for c in server._server.server_state.connections if not c.transport.is_closing())
    assert open_now <= MIN_CONNECTIONS, open_now
    for s in idle:
        s.close()


def test_at_the_cap_with_every_connection_busy_a_new_one_is_closed(server):
    head = b"POST /v1/progress HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 100\r\n\r\n{"
    busy = []
    for _ in range(MIN_CONNECTIONS):  # each waits for the rest of its body: a request in the app
        s = connect(server)
        s.sendall(head)
        busy.append(s)
    time.sleep(0.2)
    late = connect(server)
    assert closed_after(late, limit_s=0.5) < 0.5
    for s in busy:
        s.close()


def test_prefetched_workload_reads_in_its_own_thread_and_reports_failures():
    calls, fail = [], [False]

    def read():
        calls.append(time.monotonic())
        if fail[0]:
            raise OSError("store down")
        return {"1": "t1"}

    workload = PrefetchedWorkload(read, period_s=0.1, max_age_s=0.5)
    try:
        assert workload() == {"1": "t1"} and len(calls) == 1  # the first read before the first post
        time.sleep(0.35)
        assert len(calls) >= 3
        fail[0] = True
        time.sleep(0.25)
        with pytest.raises(OSError, match="store down"):
            workload()
        book = ProgressBook("s1", workload=workload, require_known_job=True, cache_s=0)
        assert book.accept([{"job": "1", "work_done": 1}])[1][0]["reason"] == "workload_unavailable"
        fail[0] = False
        time.sleep(0.25)
        assert book.accept([{"job": "1", "work_done": 1}])[1][0]["status"] == "accepted"
    finally:
        workload.close()


def test_prefetched_workload_that_hangs_reads_as_stale():
    import threading

    hang = threading.Event()
    first = [True]

    def read():
        if not first[0]:
            hang.wait(10)
        first[0] = False
        return {"1": "t1"}

    workload = PrefetchedWorkload(read, period_s=0.05, max_age_s=0.3)
    try:
        assert workload() == {"1": "t1"}
        time.sleep(0.5)
        with pytest.raises(OSError, match="old"):
            workload()
    finally:
        hang.set()
        workload.close()


def test_the_job_reporter_posts_to_the_listener(server):
    from dcim.progress import PROGRESS_PORT, Reporter

    reporter = Reporter(server.url, TOKEN, job="42", unit="samples", start=False)
    reporter.add(128)
    assert reporter.flush(), reporter.last_error
    reporter.add(128)
    assert reporter.flush(), reporter.last_error  # the same kept-alive connection
    assert [p.fields["work_done"] for p in server.points] == [128.0, 256.0]
    assert reporter.posts == 2 and reporter.failures == 0
    # a DCIM_URL without a port means the progress listener's default port
    assert Reporter("http://dcim-opt", TOKEN, job="42", start=False)._target[2] == PROGRESS_PORT == 8088
