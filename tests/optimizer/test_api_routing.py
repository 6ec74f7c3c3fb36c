"""The optimizer API's routing, auth and response shape on a real waitress on loopback: the
status codes and headers it answered with before its routing moved to Flask, for every route,
both on the Flask routes and on the ``POST /v1/progress`` path that skips Flask."""

import http.client
import json

import pytest

from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState
from optimizer.progress import ProgressBook

TOKEN = "routing-token-value-7"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api():
    written = []
    server = OptimizerApi(DesiredState(), token=TOKEN, progress=ProgressBook("site1"),
                          write_points=written.extend).start()
    yield server
    server.stop()


def ask(api, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method,path,code", [
    ("GET", "/nowhere", 404), ("GET", "/v1/placement", 404), ("GET", "/v1/progress", 404),
    ("GET", "/health/", 404), ("POST", "/health", 404), ("POST", "/v1/desired-state", 404),
    ("POST", "/nowhere", 404), ("PUT", "/v1/placement", 405), ("PATCH", "/health", 405),
    ("DELETE", "/v1/progress", 405), ("OPTIONS", "/health", 405), ("PUT", "/nowhere", 405),
])
def test_unrouted_requests_answer_json_404_or_405(api, method, path, code):
    status, headers, body = ask(api, method, path, AUTH)
    assert status == code
    assert json.loads(body) == {"error": "not found" if code == 404 else "method not allowed"}
    assert headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/desired-state?host=n01"), ("GET", "/v1/progress/stats"), ("GET", "/v1/demand-response"),
    ("POST", "/v1/demand-response"), ("DELETE", "/v1/demand-response"), ("POST", "/v1/placement"),
    ("POST", "/v1/progress"),
])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_every_route_but_health_refuses_without_the_token(api, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    status, headers, body = ask(api, method, path, headers, body=b'{"gpus": 1}' if method != "GET" else None)
    assert (status, json.loads(body)) == (401, {"error": "unauthorized"})
    assert headers["www-authenticate"] == 'Bearer realm="dcim-optimizer"'
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"


def test_health_answers_get_and_head_without_a_token(api):
    status, headers, body = ask(api, "GET", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    status, _, body = ask(api, "HEAD", "/health")
    assert status == 200 and body == b""


def test_progress_post_answers_with_the_same_headers_as_the_flask_routes(api):
    status, headers, body = ask(api, "POST", "/v1/progress", AUTH, body=b'{"job": "7", "work_done": 5}')
    assert status == 200 and json.loads(body)["accepted"] == 1
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert int(headers["content-length"]) == len(body)


def test_demand_response_without_a_daemon_is_503_after_the_token(api):
    for method in ("GET", "POST", "DELETE"):
        status, _, body = ask(api, method, "/v1/demand-response", AUTH, body=b"{}" if method != "GET" else None)
        assert status == 503 and "daemon" in json.loads(body)["error"]


def test_bad_content_length_on_placement_is_400_not_a_crash(api):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    conn.putrequest("POST", "/v1/placement")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", "12x")
    conn.endheaders()
    assert 400 <= conn.getresponse().status < 500
    conn.close()
