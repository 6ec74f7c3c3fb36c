"""The optimizer HTTP API on loopback: auth, desired state, placement, health."""

import json
import logging
import urllib.error
import urllib.request

import pytest

from optimizer.actuator import DesiredStatePublisher
from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState
from tests.optimizer.test_placement import state

TOKEN = "s3cret-token-value"


@pytest.fixture
def api():
    book = DesiredState(lease_s=300)
    DesiredStatePublisher(book).apply("n01", 0, "GPU-0", 550.0, default_w=700.0, lease_s=300, now_ns=0, reason="efficiency")
    server = OptimizerApi(book, token=TOKEN, host="127.0.0.1", port=0, placement_state=lambda: state(),
                          clock=lambda: 10**9).start()
    yield server
    server.stop()


def call(api, path, *, token=None, body=None, scheme="Bearer"):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api.url + path, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_health_is_open(api):
    code, body = call(api, "/health")
    assert code == 200 and body["status"] == "ok" and body["leases"] == 1


@pytest.mark.parametrize("token,scheme", [(None, "Bearer"), ("wrong", "Bearer"), (TOKEN + "x", "Bearer"),
                                          (TOKEN, "Basic"), ("", "Bearer")])
def test_refuses_without_the_token(api, token, scheme):
    assert call(api, "/v1/desired-state?host=n01", token=token, scheme=scheme)[0] == 401
    assert call(api, "/v1/placement", token=token, scheme=scheme, body={"gpus": 1})[0] == 401


def test_desired_state_for_agent(api):
    code, doc = call(api, "/v1/desired-state?host=n01", token=TOKEN)
    assert code == 200 and doc["host"] == "n01"
    assert doc["gpus"] == [{"index": 0, "uuid": "GPU-0", "power_limit_w": 550.0, "default_w": 700.0,
                            "expires_ns": 300 * 10**9, "expires_at": "1970-01-01T00:05:00Z", "reason": "efficiency"}]
    assert call(api, "/v1/desired-state?host=n02", token=TOKEN)[1]["gpus"] == []
    assert call(api, "/v1/desired-state?host=;rm", token=TOKEN)[0] == 400
    assert call(api, "/v1/desired-state", token=TOKEN)[0] == 400


def test_placement(api):
    code, body = call(api, "/v1/placement", token=TOKEN, body={"gpus": 4, "job_class": "training"})
    assert code == 200 and len(body["placement"]["slots"]) == 4 and body["placement"]["reasons"]
    assert body["ranking"][0]["marginal_facility_w"] > 0
    assert call(api, "/v1/placement", token=TOKEN, body={"gpus": 0})[0] == 400
    assert call(api, "/v1/placement", token=TOKEN, body={"gpus": 1, "tenant": "a b"})[0] == 400
    assert call(api, "/v1/placement", token=TOKEN, body={"gpus": 1000})[0] == 409


def test_no_token_configured_fails_closed():
    server = OptimizerApi(DesiredState(), token=None, port=0).start()
    try:
        assert call(server, "/v1/desired-state?host=n01", token="")[0] == 401
        assert call(server, "/v1/desired-state?host=n01", token="None")[0] == 401
    finally:
        server.stop()


def test_token_never_logged(api, caplog):
    caplog.set_level(logging.DEBUG)
    call(api, "/v1/desired-state?host=n01", token=TOKEN)
    call(api, "/v1/desired-state?host=n01", token="wrong-guess")
    assert TOKEN not in caplog.text and "wrong-guess" not in caplog.text
