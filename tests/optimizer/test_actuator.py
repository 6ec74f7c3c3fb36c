"""Actuators, leases, the desired-state document and the node agent."""

import json

from optimizer.actuator import BackendActuator, DesiredStatePublisher
from optimizer.agent import NodeAgent
from optimizer.desired_state import DesiredState, effective_limits
from tests.optimizer.fakes import FakeGpus

S = 1_000_000_000


def test_apply_sets_reads_back_and_leases():
    gpus = FakeGpus()
    act = BackendActuator({"h1": gpus})
    res = act.apply("h1", 0, "GPU-0", 600.0, default_w=700.0, lease_s=300, now_ns=0, reason="efficiency")
    assert res.action == "set" and res.applied_w == 600.0 and res.previous_w == 700.0
    lease = act.desired.get("h1", 0)
    assert lease.expires_ns == 300 * S and lease.previous_w == 700.0


def test_failed_apply_rolls_back():
    gpus = FakeGpus()
    act = BackendActuator({"h1": gpus})
    act.apply("h1", 0, "GPU-0", 650.0, default_w=700.0, lease_s=300, now_ns=0, reason="x")
    gpus.fail_next_set = True
    res = act.apply("h1", 0, "GPU-0", 600.0, default_w=700.0, lease_s=300, now_ns=S, reason="x")
    assert res.action == "rollback" and not res.ok and gpus.limits[0] == 650.0
    gpus.readback_offset_w = 25.0  # the driver applied something else: also rolled back
    res = act.apply("h1", 0, "GPU-0", 600.0, default_w=700.0, lease_s=300, now_ns=S, reason="x")
    assert res.action == "rollback"


def test_lease_lapse_reverts_to_default():
    gpus = FakeGpus()
    act = BackendActuator({"h1": gpus})
    act.apply("h1", 1, "GPU-1", 500.0, default_w=700.0, lease_s=60, now_ns=0, reason="x")
    assert act.expire(59 * S) == []
    out = act.expire(60 * S)
    assert [r.action for r in out] == ["revert"] and gpus.limits[1] == 700.0 and not act.leased("h1", 1)


def test_revert_all():
    gpus = FakeGpus(4)
    act = BackendActuator({"h1": gpus})
    for i in range(4):
        act.apply("h1", i, f"GPU-{i}", 500.0, default_w=700.0, lease_s=60, now_ns=0, reason="x")
    assert len(act.revert_all("mode off")) == 4 and gpus.limits == [700.0] * 4


def test_desired_state_document_and_agent_rule(tmp_path):
    book = DesiredState(tmp_path / "ds.json", lease_s=300)
    pub = DesiredStatePublisher(book)
    pub.apply("h1", 0, "GPU-0", 550.0, default_w=700.0, lease_s=300, now_ns=0, reason="efficiency")
    doc = book.document("h1", 10 * S)
    assert doc["gpus"][0]["power_limit_w"] == 550.0 and doc["gpus"][0]["expires_ns"] == 300 * S
    json.dumps(doc)
    assert effective_limits(doc, 299 * S, {0: 700.0, 1: 700.0}) == {0: 550.0, 1: 700.0}
    assert effective_limits(doc, 300 * S, {0: 700.0, 1: 700.0}) == {0: 700.0, 1: 700.0}
    # persisted: a restarted optimizer knows what it owns
    again = DesiredState(tmp_path / "ds.json")
    assert again.get("h1", 0).power_limit_w == 550.0


def test_node_agent_reverts_when_the_optimizer_is_gone():
    now = [0]
    book = DesiredState()
    pub = DesiredStatePublisher(book)
    pub.apply("h1", 0, "GPU-0", 500.0, default_w=700.0, lease_s=120, now_ns=0, reason="x")
    gpus = FakeGpus()
    alive = [True]

    def fetch():
        if not alive[0]:
            raise ConnectionRefusedError()
        return book.document("h1", now[0])

    agent = NodeAgent(gpus, fetch, clock=lambda: now[0])
    assert agent.tick()[0] == 500.0
    alive[0] = False  # optimizer SIGKILLed: the agent keeps its last document…
    now[0] = 100 * S
    assert agent.tick()[0] == 500.0
    now[0] = 121 * S  # …and reverts when the lease lapses
    assert agent.tick()[0] == 700.0 and agent.fetch_errors == 2


def test_agent_vetoes_out_of_range_limits():
    gpus = FakeGpus()
    doc = {"gpus": [{"index": 0, "power_limit_w": 50.0, "expires_ns": 10 * S}]}
    agent = NodeAgent(gpus, lambda: doc, clock=lambda: 0)
    assert agent.tick()[0] == 200.0
