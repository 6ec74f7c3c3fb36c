"""POST /v1/progress on the real optimizer API (waitress on loopback) and on the intake's own
listener (uvicorn on loopback), writing through a real StoreWriter into a real SQLite store; the
job → tenant map read from that store's workload points."""

import http.client
import json
import time
import urllib.error
import urllib.request

import pytest

from dcim.metrics import Point
from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState
from optimizer.progress import ProgressBook, jobs_from_store
from optimizer.progress_server import ProgressServer

TOKEN = "progress-token-value-1"
SITE = "site1"


def workload(store, job, tenant, uuid="GPU-0", host="n01"):
    store.write([Point("workload", {"site": SITE, "host": host, "uuid": uuid},
                       {"job": job, "tenant": tenant, "job_class": "training", "account": "acct", "source": "slurm"})])


@pytest.fixture(params=["waitress", "uvicorn"])
def env(tmp_path, request):
    """The intake on the optimizer API's waitress route, or on its own uvicorn listener
    (optimizer.progress_server): every test below runs against both, so they answer alike."""
    store = SqliteStore(tmp_path / "dcim.sqlite")
    workload(store, "1234", "uni-a")
    workload(store, "ns1/pod-7", "startup-b", uuid="GPU-1")
    writer = StoreWriter(store, tmp_path / "spool", flush_interval_s=0.05)
    book = ProgressBook(SITE, workload=jobs_from_store(store, SITE), require_known_job=True, cache_s=0.2)
    if request.param == "uvicorn":
        api = ProgressServer(book, writer.write, token=TOKEN).start()
    else:
        api = OptimizerApi(DesiredState(), token=TOKEN, progress=book, write_points=writer.write).start()
    yield api, store, writer, book
    api.stop()
    writer.close()
    store.close()


def post(api, body, *, token=TOKEN, raw: bytes | None = None, headers=None):
    data = raw if raw is not None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(api.url + "/v1/progress", data=data, headers=hdrs, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text or b"{}")
        except ValueError:  # waitress's own 413 is plain text
            return exc.code, {"error": text.decode("utf-8", "replace")}


def get(api, path, token=TOKEN):
    req = urllib.request.Request(api.url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def stored(store, writer):
    writer.flush()
    return {(p.tags["job"], p.tags["tenant"]): p for p in store.latest("progress", where={"site": SITE})}


def test_accepted_report_is_a_progress_point_with_the_workload_tenant(env):
    api, store, writer, book = env
    now = time.time_ns()
    code, body = post(api, {"job": "1234", "work_done": 15360.0, "unit": "samples", "time_ns": now})
    assert code == 200 and body == {"accepted": 1, "refused": 0, "results": [{"job": "1234", "status": "accepted"}]}
    # a job cannot bill itself to another tenant: the workload's tenant wins, and it is counted
    code, body = post(api, {"job": "ns1/pod-7", "tenant": "uni-a", "work_done": 7, "unit": "tokens"})
    assert code == 200 and body["accepted"] == 1
    points = stored(store, writer)
    p = points[("1234", "uni-a")]
    assert p.fields == {"work_done": 15360.0, "unit": "samples", "source": "post"} and p.time_ns == now
    assert ("ns1/pod-7", "startup-b") in points and ("ns1/pod-7", "uni-a") not in points
    stats = get(api, "/v1/progress/stats")[1]
    assert stats["accepted"] == 2 and stats["tenant_overridden"] == 1 and stats["refused"] == 0
    health = get(api, "/health", token=None)[1]
    assert health["progress"]["accepted"] == 2


def test_batch(env):
    api, store, writer, book = env
    now = time.time_ns()
    reports = [{"job": "1234", "work_done": 10, "unit": "steps", "time_ns": now - 2_000_000_000},
               {"job": "1234", "work_done": 20, "unit": "steps", "time_ns": now - 1_000_000_000},
               {"job": "9999", "work_done": 1, "unit": "steps"},
               {"job": "ns1/pod-7", "work_done": 5, "unit": "tokens"}]
    code, body = post(api, {"reports": reports})
    assert code == 200 and body["accepted"] == 3 and body["refused"] == 1
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "refused", "accepted"]
    assert body["results"][2]["reason"] == "unknown_job"
    assert stored(store, writer)[("1234", "uni-a")].fields["work_done"] == 20.0


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"])
def test_token_missing_or_wrong(env, token):
    api, store, writer, book = env
    code, _ = post(api, {"job": "1234", "work_done": 1}, token=token)
    assert code == 401
    assert get(api, "/v1/progress/stats", token=token)[0] == 401
    assert book.stats()["unauthorized"] == 1 and book.stats()["accepted"] == 0
    assert stored(store, writer) == {}


def test_unknown_job_refused_until_the_workload_knows_it(env):
    api, store, writer, book = env
    code, body = post(api, {"job": "4321", "work_done": 1})
    assert code == 409 and body["results"][0]["reason"] == "unknown_job"
    workload(store, "4321", "inst-c", uuid="GPU-2")
    time.sleep(0.25)  # the cached map (0.2 s here) is read again
    assert post(api, {"job": "4321", "work_done": 2})[0] == 200
    assert stored(store, writer)[("4321", "inst-c")].fields["work_done"] == 2.0
    assert book.stats()["unknown_job"] == 1


def test_without_a_workload_source_the_post_tenant_is_kept_and_flagged(tmp_path):
    store = SqliteStore(tmp_path / "dcim.sqlite")
    writer = StoreWriter(store, tmp_path / "spool", flush_interval_s=0.05)
    book = ProgressBook(SITE, workload=jobs_from_store(store, SITE), require_known_job=False)
    api = OptimizerApi(DesiredState(), token=TOKEN, progress=book, write_points=writer.write).start()
    try:
        assert post(api, {"job": "77", "tenant": "lab-x", "work_done": 3})[0] == 200
        assert ("77", "lab-x") in stored(store, writer)
        assert book.stats()["unverified"] == 1
    finally:
        api.stop()
        writer.close()
        store.close()


def test_backwards_counter_is_a_counted_reset_and_out_of_order_is_refused(env):
    api, store, writer, book = env
    now = time.time_ns()
    assert post(api, {"job": "1234", "work_done": 1000, "time_ns": now - 3_000_000_000})[0] == 200
    code, body = post(api, {"job": "1234", "work_done": 200, "time_ns": now - 2_000_000_000})
    assert code == 200 and body["results"][0]["status"] == "reset"
    code, body = post(api, {"job": "1234", "work_done": 300, "time_ns": now - 2_500_000_000})
    assert code == 409 and body["results"][0]["reason"] == "out_of_order"
    assert stored(store, writer)[("1234", "uni-a")].fields["work_done"] == 200.0  # stored raw
    stats = book.stats()
    assert stats["resets"] == 1 and stats["out_of_order"] == 1 and stats["accepted"] == 2


def test_absurd_rate_refused_and_the_last_value_kept(env):
    api, store, writer, book = env
    now = time.time_ns()
    assert post(api, {"job": "1234", "work_done": 0, "time_ns": now - 2_000_000_000})[0] == 200
    code, body = post(api, {"job": "1234", "work_done": 5e9, "time_ns": now - 1_000_000_000})  # 5e9/s
    assert code == 409 and body["results"][0]["reason"] == "absurd_rate"
    assert post(api, {"job": "1234", "work_done": 100, "time_ns": now})[0] == 200  # measured from 0, not 5e9
    assert stored(store, writer)[("1234", "uni-a")].fields["work_done"] == 100.0
    assert book.stats()["absurd_rate"] == 1


@pytest.mark.parametrize("report,reason,code", [
    # seconds from now, turned into time_ns when the test runs (not when it is collected: a
    # suite runs for many minutes, and "120 s ahead" at collection is the past by then)
    ({"job": "1234", "work_done": 1, "time_ns": ("now", 120)}, "in_future", 422),
    ({"job": "1234", "work_done": 1, "time_ns": ("now", -2 * 86400)}, "too_old", 422),
    ({"job": "1234", "work_done": -1}, "bad_report", 400),
    ({"job": "1234", "work_done": 1e19}, "bad_report", 400),
    ({"job": "1234", "work_done": True}, "bad_report", 400),
    ({"job": "1234", "work_done": "12"}, "bad_report", 400),
    ({"job": "1234", "work_done": 10**400}, "bad_report", 400),
    ({"job": "1234", "work_done": 1, "unit": "Steps; DROP"}, "bad_report", 400),
    ({"job": "1234", "work_done": 1, "tenant": "a b"}, "bad_report", 400),
    ({"job": "1234", "work_done": 1, "time_ns": 1.5}, "bad_report", 400),
    ({"job": "1234", "workdone": 1}, "bad_report", 400),
    ({"job": "", "work_done": 1}, "bad_report", 400),
    ({"job": "x" * 254, "work_done": 1}, "bad_report", 400),
    ({"job": "12\n34", "work_done": 1}, "bad_report", 400),
    ({"job": 1234, "work_done": 1}, "bad_report", 400),
])
def test_bad_reports_refused_with_their_reason(env, report, reason, code):
    api, store, writer, book = env
    if isinstance(report.get("time_ns"), tuple):
        report = {**report, "time_ns": time.time_ns() + report["time_ns"][1] * 10**9}
    got, body = post(api, report)
    assert got == code and body["results"][0]["reason"] == reason and body["results"][0]["error"]
    assert book.stats()[reason] == 1 and book.stats()["accepted"] == 0


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"\xff\xfe", b"[1, 2]", b"null", b"3", b'"x"', b"[" * 60000, b'{"reports": []}',
    b'{"reports": {"job": "1"}}', b'{"reports": [1], "x": 2}',
    json.dumps({"reports": [{"job": "1234", "work_done": 1}] * 1001}).encode(),
    b'{"job": "1234", "work_done": NaN}', b'{"job": "1234", "work_done": Infinity}',
])
def test_hostile_bodies_are_4xx_and_the_api_keeps_serving(env, raw):
    api, store, writer, book = env
    code, body = post(api, None, raw=raw)
    assert 400 <= code < 500
    assert "error" in body or body["results"][0]["error"]
    assert post(api, {"job": "1234", "work_done": 1})[0] in (200, 409)  # still serving


def test_oversized_body_and_lying_content_length(env):
    api, *_ = env
    assert post(api, None, raw=b"{" + b" " * (70 * 1024) + b"}")[0] in (400, 413)
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    conn.putrequest("POST", "/v1/progress")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", "-5")
    conn.endheaders()
    assert 400 <= conn.getresponse().status < 500
    conn.close()


def test_no_progress_intake_configured_is_503_after_auth():
    api = OptimizerApi(DesiredState(), token=TOKEN).start()
    try:
        assert post(api, {"job": "1", "work_done": 1}, token="bad")[0] == 401
        assert post(api, {"job": "1", "work_done": 1})[0] == 503
    finally:
        api.stop()


def test_store_down_for_the_workload_map_is_503_and_counted(tmp_path):
    def broken():
        raise OSError("disk gone")

    writer_store = SqliteStore(tmp_path / "dcim.sqlite")
    writer = StoreWriter(writer_store, tmp_path / "spool")
    book = ProgressBook(SITE, workload=broken, require_known_job=True)
    api = OptimizerApi(DesiredState(), token=TOKEN, progress=book, write_points=writer.write).start()
    try:
        code, body = post(api, {"job": "1234", "work_done": 1})
        assert code == 503 and body["results"][0]["reason"] == "workload_unavailable"
        assert book.stats()["workload_unavailable"] == 1
    finally:
        api.stop()
        writer.close()
        writer_store.close()


# -- the book alone (no server) ----------------------------------------------------------------


class Clock:
    def __init__(self):
        self.mono, self.ns = 0.0, 10**18

    def monotonic(self):
        return self.mono


def test_workload_map_is_cached_and_a_failing_store_reads_as_unavailable():
    clock = Clock()
    calls = []

    def workload():
        calls.append(clock.mono)
        if len(calls) == 2:
            raise OSError("store down")
        return {"1": "t1"}

    book = ProgressBook(SITE, workload=workload, require_known_job=True, cache_s=5.0,
                        clock_ns=lambda: clock.ns, monotonic=clock.monotonic)
    for _ in range(100):
        clock.ns += 10**9
        assert book.accept([{"job": "1", "work_done": clock.ns / 1e9}])[1][0]["status"] == "accepted"
    assert calls == [0.0]  # one store read for 100 reports within cache_s
    clock.mono = 6.0
    clock.ns += 10**9
    assert book.accept([{"job": "1", "work_done": 2e9}])[1][0]["reason"] == "workload_unavailable"
    clock.mono = 12.0
    clock.ns += 10**9
    assert book.accept([{"job": "1", "work_done": 2e9}])[1][0]["status"] == "accepted"
    assert len(calls) == 3


def test_jobs_beyond_the_bound_are_forgotten_oldest_first():
    clock = Clock()
    book = ProgressBook(SITE, max_jobs=3, clock_ns=lambda: clock.ns)
    for job in ("a", "b", "c", "a", "d"):  # "a" reported again: "b" is the oldest now
        clock.ns += 10**9
        book.accept([{"job": job, "work_done": 10}])
    assert list(book._last) == ["c", "a", "d"] and book.stats()["jobs_forgotten"] == 1
    clock.ns += 10**9
    # "b" forgotten: a lower value is a first report again, not a reset
    assert book.accept([{"job": "b", "work_done": 1}])[1][0]["status"] == "accepted"


def test_points_carry_the_report_time_and_the_site():
    book = ProgressBook(SITE, clock_ns=lambda: 5 * 10**18)
    points, results = book.accept([{"job": "j", "work_done": 3, "unit": "images", "time_ns": 5 * 10**18 - 7}])
    assert results == [{"job": "j", "status": "accepted"}]
    assert points[0].time_ns == 5 * 10**18 - 7 and points[0].tags == {"site": SITE, "job": "j", "tenant": ""}
