"""Demand response set at run time: its window (start, replace, end, expiry), the caps it asks
for (site budget met within each class's DR loss bound, inference untouched, safety first), its
audit rows, its release when it ends; the API over real HTTP to the daemon, and the CLI."""

from dataclasses import replace

import numpy as np
import pytest

from dcim.cli.cmd_optimize import parse_power_w, parse_until_ns
from dcim.cli.main import main
from dcim.config import load_config
from optimizer.api import OptimizerApi
from optimizer.demand_response import (
    DemandResponse,
    DemandResponseError,
    decide_with_dr,
    dr_loss_bounds,
)
from optimizer.power_caps import Budgets, CapInputs, CapPolicy, decide_caps

S = 10**9
T0 = 1_782_864_000 * S  # 2026-07-01T00:00Z = 09:00 in Seoul
H = 3600 * S


# -- the window --------------------------------------------------------------------------------------


def test_start_replace_end_and_their_audit_rows():
    dr = DemandResponse()
    assert dr.state(T0) is None and dr.budget_w(T0) is None
    assert dr.set(300_000.0, T0 + 3 * H, "ops", "grid event 42", T0) == "start"
    assert dr.budget_w(T0 + H) == 300_000.0
    st = dr.state(T0 + H)
    assert st["budget_w"] == 300_000.0 and st["until"] == "2026-07-01T03:00:00Z" and st["actor"] == "ops"
    assert dr.set(250_000.0, T0 + 2 * H, "ops2", "", T0 + 60 * S) == "update"
    assert dr.set(None, None, "ops3", "grid released", T0 + 120 * S) == "end"
    assert dr.state(T0 + 121 * S) is None and dr.budget_w(T0 + 121 * S) is None
    assert dr.set(None, None, "ops3", "", T0 + 130 * S) is None  # nothing left to end
    rows = dr.drain_audit_points("s1", "enforce")
    assert [r.fields["reason"].split(":")[0] for r in rows] == ["start", "update", "end"]
    assert all(r.measurement == "optimizer" and r.tags["action"] == "demand_response" for r in rows)
    assert [r.fields["actor"] for r in rows] == ["ops", "ops2", "ops3"]
    assert [r.fields["dr_budget_w"] for r in rows] == [300_000.0, 250_000.0, 250_000.0]
    assert rows[0].fields["dr_until_ns"] == T0 + 3 * H and rows[0].time_ns == T0
    assert "grid event 42" in rows[0].fields["reason"] and "grid released" in rows[2].fields["reason"]
    assert dr.drain_audit_points("s1", "enforce") == []  # drained


def test_expiry_ends_the_window_at_its_time_and_releases_in_one_wide_step():
    dr = DemandResponse()
    dr.set(300_000.0, T0 + H, "ops", "", T0)
    assert dr.step_w(50.0, 500.0) == 500.0  # during the window
    assert not dr.expire(T0 + H - 1)
    dr.cycle_done(None)
    assert dr.expire(T0 + H + 30 * S)
    assert dr.state(T0 + H + 30 * S) is None
    assert dr.step_w(50.0, 500.0) == 500.0  # the release cycle
    dr.cycle_done(None)
    assert dr.step_w(50.0, 500.0) == 50.0  # back to normal
    expire = dr.drain_audit_points("s1", "enforce")[-1]
    assert expire.fields["reason"].startswith("expire") and expire.time_ns == T0 + H
    assert expire.fields["actor"] == "optimizer"


@pytest.mark.parametrize("budget,until,actor,reason,part", [
    (0.0, T0 + H, "ops", "", "budget_w"), (-5.0, T0 + H, "ops", "", "budget_w"),
    (float("nan"), T0 + H, "ops", "", "budget_w"), (True, T0 + H, "ops", "", "budget_w"),
    ("300kW", T0 + H, "ops", "", "budget_w"), (2e12, T0 + H, "ops", "", "budget_w"),
    (3e5, T0 - S, "ops", "", "not in the future"), (3e5, T0 + 25 * H, "ops", "", "24 h"),
    (3e5, None, "ops", "", "until_ns"), (3e5, float(T0 + H), "ops", "", "until_ns"),
    (3e5, T0 + H, "", "", "actor"), (3e5, T0 + H, "a b", "", "actor"), (3e5, T0 + H, "ops", "x\ny", "reason"),
    (3e5, T0 + H, "ops", "x" * 201, "reason"),
])
def test_bad_requests_name_their_part(budget, until, actor, reason, part):
    dr = DemandResponse()
    with pytest.raises(DemandResponseError, match=part):
        dr.set(budget, until, actor, reason, T0)
    assert dr.state(T0) is None and dr.drain_audit_points("s1", "advise") == []


def test_dr_bounds_per_class_never_tighter_than_efficiency():
    classes = np.array(["training", "inference", "batch", "custom", ""], dtype=object)
    eff = np.array([0.05, 0.0, 0.10, 0.07, 0.0])
    got = dr_loss_bounds(classes, eff, {"training": 0.2, "inference": 0.0, "batch": 0.05})
    assert got.tolist() == [0.2, 0.0, 0.10, 0.07, 0.0]


# -- the caps under a DR budget ----------------------------------------------------------------------

N = 40  # 20 training GPUs, 10 inference, 10 idle; all 700 W H100-like, demand 650 W


def sqrt_curve(demand_w):
    """Throughput = sqrt(min(1, cap/demand)): a test curve, independent of the optimizer's own."""
    def fn(cap_w):
        d = demand_w[:, None] if np.ndim(cap_w) == 2 else demand_w
        return np.sqrt(np.minimum(1.0, np.asarray(cap_w) / d))
    return fn


def fleet_inputs():
    busy = np.array([True] * 30 + [False] * 10)
    classes = np.array(["training"] * 20 + ["inference"] * 10 + [""] * 10, dtype=object)
    demand = np.where(busy, 650.0, 0.0)
    inp = CapInputs(min_w=np.full(N, 200.0), max_w=np.full(N, 700.0), default_w=np.full(N, 700.0),
                    current_w=np.full(N, 700.0), power_w=np.where(busy, 650.0, 70.0), busy=busy,
                    fresh=np.ones(N, bool), saturation=np.where(busy, 650.0 / 700.0, 0.1), beta=np.full(N, 0.5),
                    loss_bound=np.where(classes == "training", 0.05, 0.0), host_share_w=np.full(N, 100.0),
                    groups={"rack": np.arange(N) // 20, "site": np.zeros(N, int)})
    return inp, classes, sqrt_curve(np.maximum(demand, 1.0))


def budgets_for(site_w, rack_w=(1e9, 1e9)):
    return Budgets(budget_w={"rack": np.array(rack_w, float), "site": np.array([site_w])},
                   base_w={"rack": np.zeros(2), "site": np.array([0.0])},
                   names={"rack": ["R1", "R2"], "site": ["s1"]})


POLICY = CapPolicy(max_step_w=500.0, budget_margin=0.0)


def true_loss(cap_w):
    return 1.0 - np.sqrt(np.minimum(1.0, cap_w / 650.0))


def test_budget_met_within_dr_bounds_and_inference_untouched():
    inp, classes, fn = fleet_inputs()
    bound = dr_loss_bounds(classes, inp.loss_bound, {"training": 0.2, "inference": 0.0})
    plain = decide_caps(inp, budgets_for(1e9), POLICY, throughput_fn=fn)
    site_w = 0.85 * float(inp.power_w.sum())  # 15 % under the present draw
    plan = decide_with_dr(inp, budgets_for(site_w), POLICY, dr_bound=bound, throughput_fn=fn, label="demand response")
    assert plan.predicted_power_w.sum() <= site_w + 1e-6
    np.testing.assert_allclose(plan.cap_w[20:30], plain.cap_w[20:30])  # inference: what it gets without DR
    assert np.all(true_loss(plan.cap_w[:20]) <= 0.2 + 1e-6)
    assert np.all(plan.cap_w[:20] < 600.0)  # training carried the cut
    assert plan.reason_text(0) == "budget (site:s1, demand response)"
    assert plan.groups_over_budget == []


def test_a_budget_out_of_reach_within_the_bounds_is_not_forced():
    inp, classes, fn = fleet_inputs()
    bound = dr_loss_bounds(classes, inp.loss_bound, {"training": 0.2, "inference": 0.0})
    site_w = 0.5 * float(inp.power_w.sum())
    plan = decide_with_dr(inp, budgets_for(site_w), POLICY, dr_bound=bound, throughput_fn=fn)
    assert np.all(true_loss(plan.cap_w[:20]) <= 0.2 + 1e-6)  # training at its DR floor, no deeper
    assert np.all(plan.cap_w[:20] < 450.0)
    assert "site:s1" in plan.groups_over_budget
    dr = DemandResponse()
    dr.set(site_w, T0 + H, "ops", "", T0)
    dr.cycle_done(plan)
    assert dr.state(T0)["met"] is False


def test_the_dr_floor_is_never_below_the_pessimistic_published_curve():
    inp, classes, fn = fleet_inputs()  # the sqrt curve: a 20 % loss at 0.64 x 650 W = 416 W
    bound = dr_loss_bounds(classes, inp.loss_bound, {"training": 0.2, "inference": 0.0})
    plan = decide_with_dr(inp, budgets_for(1.0), POLICY, dr_bound=bound, throughput_fn=fn, job_class=classes)
    # Zeus NSDI'23 A40 sweeps (the published spread): BERT Sentiment140 runs at 89.9 % of its
    # throughput at 200 W of a 300 W limit (196.07 W drawn of 274.61 W at the max), at 60.0 % at
    # 150 W; between them only the lower point is known, so a 20 % loss is safe from 196.07/274.61
    # of max up (ResNet-50's row under it, 175 W: 160.86/244.26, runs at 83.8 %): 0.714 = 500 W of 700
    frac = 196.07 / 274.61
    assert np.all(plan.cap_w[:20] >= frac * 700.0 - 1e-6), (plan.cap_w[:20].min(), frac * 700.0)
    assert np.all(plan.cap_w[:20] <= frac * 700.0 + 1.0)  # and down to it: the budget asks for everything
    curve_only = decide_with_dr(inp, budgets_for(1.0), POLICY, dr_bound=bound, throughput_fn=fn)
    assert np.all(curve_only.cap_w[:20] < 0.64 * 650.0 + 10.0)  # the job's curve alone would go deeper


def test_a_rack_budget_still_goes_below_the_dr_floor():
    inp, classes, fn = fleet_inputs()
    bound = dr_loss_bounds(classes, inp.loss_bound, {"training": 0.2, "inference": 0.0})
    # rack R1 (the 20 training GPUs) may only draw 5 kW: 250 W each, far below the DR floor (~416 W)
    plan = decide_with_dr(inp, budgets_for(1e9, rack_w=(5_000.0, 1e9)), POLICY, dr_bound=bound, throughput_fn=fn)
    assert plan.predicted_power_w[:20].sum() <= 5_000.0 + 1e-6


def test_stale_gpus_are_held_under_dr():
    inp, classes, fn = fleet_inputs()
    inp = replace(inp, fresh=np.r_[np.zeros(5, bool), np.ones(N - 5, bool)], current_w=np.full(N, 690.0))
    bound = dr_loss_bounds(classes, inp.loss_bound, {"training": 0.2})
    plan = decide_with_dr(inp, budgets_for(0.8 * float(inp.power_w.sum())), POLICY, dr_bound=bound, throughput_fn=fn)
    assert np.all(plan.cap_w[:5] == 690.0)


# -- the daemon against the twin, through the real SqliteStore ---------------------------------------

twin_mod = pytest.importorskip("simulator.facility")


@pytest.fixture(scope="module")
def cfg():
    from pathlib import Path

    return load_config(Path(__file__).resolve().parents[2] / "deploy" / "demo.toml")


def rig(cfg):
    from tests.optimizer.test_twin import rig as twin_rig

    return twin_rig(cfg)


def warm(cfg, cycles=6):
    twin, store, act, daemon = rig(cfg)
    for _ in range(cycles):
        step(twin, store)
        daemon.run_once()
    return twin, store, act, daemon


def step(twin, store, dt_s=60.0):
    twin.advance(dt_s)
    store.write(twin.points())


def gpu_caps(twin):
    return np.array(twin.gpu_state.cap_w, dtype=float)


def job_classes(daemon):
    return np.array(daemon.last_fleet.job_class.tolist(), dtype=object)


def test_daemon_meets_a_budget_10_pct_under_the_draw_in_one_cycle_inference_untouched(cfg):
    # 10 %: the demo's GPUs are under half its facility draw, and 25 % is out of reach within the
    # default DR bounds (see the next test); the 25 % figure is measured by the benchmark
    twin, store, _act, daemon = warm(cfg)
    ctwin, cstore, _cact, control = warm(cfg)  # the same twin and daemon, without DR
    np.testing.assert_array_equal(gpu_caps(twin), gpu_caps(ctwin))  # deterministic twins
    before_w = twin.facility_power_w
    budget_w = 0.90 * before_w
    daemon.set_demand_response(budget_w, twin.now_ns + 3 * H, "grid-operator", "test event")
    for t, s in ((twin, store), (ctwin, cstore)):
        step(t, s)
    daemon.run_once()
    control.run_once()
    step(twin, store)  # the new caps in force for one step: the twin's own facility power
    assert twin.facility_power_w <= budget_w, (twin.facility_power_w, budget_w)
    classes = job_classes(daemon)
    inference = classes == "inference"
    assert inference.any()
    np.testing.assert_array_equal(gpu_caps(twin)[inference], gpu_caps(ctwin)[inference])
    assert daemon.demand_response_state()["met"] is True
    store.close(), cstore.close()


def test_the_site_budget_is_converted_with_the_metered_ratio_not_an_assumed_pue():
    from optimizer.demand_response import site_it_budget

    b = budgets_for(300_000.0 / 1.3)  # the daemon's conversion with the assumed PUE 1.3
    assert site_it_budget(b, 1.3, 1.2).budget_w["site"][0] == pytest.approx(250_000.0)
    assert site_it_budget(b, 1.3, None).budget_w["site"][0] == pytest.approx(300_000.0 / 1.3)
    assert site_it_budget(b, 1.3, float("nan")).budget_w["site"][0] == pytest.approx(300_000.0 / 1.3)
    assert b.budget_w["site"][0] == pytest.approx(300_000.0 / 1.3)  # the caller's budgets unchanged


DEEP_DR = {"training": 0.8, "fine_tuning": 0.8, "batch": 1.0, "inference": 0.0}


def test_daemon_cuts_25_pct_in_one_cycle_within_a_deep_dr_policy_on_the_twins_truth(cfg):
    """The issue's figure at the test's scale: a facility budget 25 % under the present draw, met by
    the first cycle, with every job's TRUE loss (the twin's hidden truth, not the optimizer's
    estimate) within the site's DR policy and inference untouched."""
    deep = cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={"dr_loss_bound": DEEP_DR})})
    twin, store, _act, daemon = warm(deep)
    budget_w = 0.75 * twin.facility_power_w
    daemon.set_demand_response(budget_w, twin.now_ns + 3 * H, "grid-operator", "25 % event")
    step(twin, store, dt_s=1.0)
    daemon.run_once()
    step(twin, store, dt_s=10.0)  # the caps in force: the twin's own facility power
    assert twin.facility_power_w <= budget_w, (twin.facility_power_w, budget_w)
    truth = twin.truth
    classes = set()
    for jt in truth.jobs.values():
        rate = truth.gpu_throughput[list(jt.slots)]
        loss = 1.0 - (rate.min() if jt.job_class in ("training", "fine_tuning") else rate.mean())
        assert loss <= DEEP_DR[jt.job_class] + 1e-9, (jt.job_id, jt.job_class, loss)
        classes.add(jt.job_class)
    assert {"training", "inference"} <= classes
    store.close()


def test_daemon_out_of_reach_within_the_dr_bounds_says_not_met_and_holds_the_bounds(cfg):
    twin, store, _act, daemon = warm(cfg)
    daemon.set_demand_response(0.5 * twin.facility_power_w, twin.now_ns + 3 * H, "ops", "")
    step(twin, store)
    report = daemon.run_once()
    assert daemon.demand_response_state()["met"] is False
    assert any(d.action == "hold" and "site:" in d.reason for d in report.decisions)
    # whether the DR bounds hold on the twin's hidden truth is the benchmark's to grade (bench/savings.py)
    store.close()


def audit_spy(store):
    """The demand-response rows handed to the (real) store, in order."""
    written, write = [], store.write

    def spy(points):
        written.extend(p for p in points if p.measurement == "optimizer" and p.tags["action"] == "demand_response")
        return write(points)

    store.write = spy
    return written


def test_daemon_expiry_is_audited_and_dr_caps_are_released_next_cycle(cfg):
    twin, store, act, daemon = warm(cfg)
    written = audit_spy(store)
    until = twin.now_ns + 150 * S
    daemon.set_demand_response(0.75 * twin.facility_power_w, until, "ops", "short event")
    step(twin, store)
    daemon.run_once()
    dr_leases = [lease for lease in act.desired.leases() if "demand response" in lease.reason]
    assert dr_leases
    dr_caps = {(lease.host, lease.index): lease.power_limit_w for lease in dr_leases}
    step(twin, store)
    daemon.run_once()
    step(twin, store)  # now past the window's end
    assert daemon.demand_response_state() is None
    report = daemon.run_once()  # the release cycle
    assert not any("demand response" in d.reason for d in report.decisions)
    assert not any("demand response" in lease.reason for lease in act.desired.leases())
    raised = [d for d in report.decisions if (d.host, d.index) in dr_caps and d.power_limit_w is not None]
    assert raised and all(d.power_limit_w > dr_caps[(d.host, d.index)] for d in raised)
    assert [p.fields["reason"].split(":")[0] for p in written] == ["start", "expire"]
    assert written[1].time_ns == until and written[1].fields["actor"] == "optimizer"
    latest = store.latest("optimizer", where={"action": "demand_response"}, since_ns=0)
    assert latest and latest[0].fields["reason"].startswith("expire")  # stored, not only handed over
    store.close()


def test_setting_dr_runs_the_next_cycle_now_not_an_interval_later(cfg):
    import time

    twin, store, _act, daemon = warm(cfg, cycles=1)
    assert daemon.settings.interval_s >= 60
    warm_report = daemon.last_report
    daemon.start()  # its first cycle runs at once
    try:
        deadline = time.monotonic() + 20
        while daemon.last_report is warm_report:
            assert time.monotonic() < deadline, "the scheduler's first cycle did not run"
            time.sleep(0.05)
        first = daemon.last_report
        step(twin, store)
        daemon.set_demand_response(0.9 * twin.facility_power_w, twin.now_ns + H, "ops", "")
        deadline = time.monotonic() + 20  # far less than the 60 s interval
        while daemon.last_report is first:
            assert time.monotonic() < deadline, "no cycle after the DR was set"
            time.sleep(0.05)
        assert daemon.demand_response_state()["met"] is not None  # that cycle decided under the DR
    finally:
        daemon.stop(revert=False)
        store.close()


# -- the API over real HTTP, the daemon behind it ----------------------------------------------------

TOKEN = "dr-test-token-value"


@pytest.fixture
def served(cfg):
    twin, store, act, daemon = warm(cfg, cycles=2)
    api = OptimizerApi(act.desired, token=TOKEN, port=0, demand_response=daemon, clock=lambda: twin.now_ns).start()
    yield api, daemon, twin, store
    api.stop()
    store.close()


def call(api, method, body=None, token=TOKEN):
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api.url + "/v1/demand-response", data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_api_set_show_and_end(served):
    api, daemon, twin, store = served
    written = audit_spy(store)
    assert call(api, "GET") == (200, {"demand_response": None})
    code, body = call(api, "POST", {"budget_w": 300_000, "until_ns": twin.now_ns + H, "actor": "utility-x",
                                    "reason": "event 7"})
    assert code == 200 and body["demand_response"]["budget_w"] == 300_000 and body["demand_response"]["met"] is None
    assert daemon.site_budget_w(twin.now_ns) == 300_000
    code, body = call(api, "POST", {"budget_w": 280_000, "until": "2026-07-01T10:30:00+09:00"})
    assert code == 200 and body["demand_response"]["until_ns"] == T0 + 90 * 60 * S
    assert body["demand_response"]["actor"] == "api"
    assert call(api, "GET")[1]["demand_response"]["budget_w"] == 280_000
    assert call(api, "DELETE", {"actor": "utility-x", "reason": "released"}) == (200, {"ended": True})
    assert call(api, "DELETE") == (200, {"ended": False})
    assert daemon.site_budget_w(twin.now_ns) is None
    assert [p.fields["reason"].split(":")[0] for p in written] == ["start", "update", "end"]
    assert [p.fields["actor"] for p in written] == ["utility-x", "api", "utility-x"]


@pytest.mark.parametrize("body,part", [
    ({"until_ns": 1}, "budget_w"), ({"budget_w": 3e5}, "until"), ({"budget_w": 3e5, "until_ns": 1, "until": "x"}, "until"),
    ({"budget_w": -1, "until_ns": 2 * T0}, "budget_w"), ({"budget_w": 3e5, "until": "2026-07-01T10:30"}, "offset"),
    ({"budget_w": 3e5, "until": "tomorrow"}, "until"), ({"budget_w": 3e5, "until_ns": T0 - H}, "future"),
    ({"budget_w": 3e5, "until_ns": T0 + H, "budget_kw": 3}, "budget_kw"), ([1, 2], "object"),
    ({"budget_w": 3e5, "until_ns": T0 + H, "actor": "x;y"}, "actor"),
])
def test_api_bad_bodies_name_the_key(served, body, part):
    api, daemon, _twin, _store = served
    code, answer = call(api, "POST", body)
    assert code == 400 and part in answer["error"], answer
    assert daemon.demand_response_state() is None


def test_api_needs_the_token_and_a_daemon(served):
    api, daemon, twin, _store = served
    for method in ("GET", "POST", "DELETE"):
        assert call(api, method, {"budget_w": 3e5, "until_ns": twin.now_ns + H}, token="wrong")[0] == 401
    assert daemon.demand_response_state() is None
    bare = OptimizerApi(api.desired, token=TOKEN, port=0).start()
    try:
        assert call(bare, "GET")[0] == 503
    finally:
        bare.stop()


# -- the CLI -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,watts", [("300kW", 300_000.0), ("300 kw", 300_000.0), ("1.2MW", 1_200_000.0),
                                        ("250000W", 250_000.0), (" 0.5MW ", 500_000.0)])
def test_cli_power(text, watts):
    assert parse_power_w(text) == watts


@pytest.mark.parametrize("text", ["300", "300 kWh", "-3kW", "0kW", "kW", "3e5W", "300 GW", ""])
def test_cli_bad_power_names_budget(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_power_w(text)


@pytest.mark.parametrize("text,expected", [
    ("18:00", T0 + 9 * H),  # 09:00 in Seoul now → 18:00 KST today = 09:00Z
    ("08:30", T0 + 23 * H + 30 * 60 * S),  # already past in Seoul: tomorrow's 08:30 KST
    ("09:00", T0 + 24 * H),  # exactly now: the next one
    ("+3h", T0 + 3 * H), ("90m", T0 + 90 * 60 * S), ("45min", T0 + 45 * 60 * S), ("600s", T0 + 600 * S),
    ("2026-07-01T12:00", T0 + 3 * H),  # no offset: site time
    ("2026-07-01T12:00:00+00:00", T0 + 12 * H), ("2026-07-01T12:00Z", T0 + 12 * H),
])
def test_cli_until_in_site_time(text, expected):
    assert parse_until_ns(text, T0, "Asia/Seoul") == expected


@pytest.mark.parametrize("text", ["25:00", "18", "soon", "18:00 tomorrow", "3d"])
def test_cli_bad_until_names_until(text):
    with pytest.raises(ValueError, match="--until"):
        parse_until_ns(text, T0, "Asia/Seoul")


@pytest.fixture
def conf(tmp_path, monkeypatch):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "deploy" / "demo.toml").read_text()
    text = text.replace('[optimizer]\nmode = "enforce"', '[optimizer]\nmode = "enforce"\ntoken = { env = "DR_TEST_TOKEN" }')
    path = tmp_path / "dcim.toml"
    path.write_text(text)
    monkeypatch.setenv("DR_TEST_TOKEN", TOKEN)
    return str(path)


def test_cli_talks_to_the_running_daemon(served, conf, capsys):
    api, daemon, _twin, _store = served
    assert main(["optimize", "--config", conf, "--url", api.url, "--budget", "status"]) == 0
    assert "no demand response in force" in capsys.readouterr().out
    # the daemon runs on twin time (2026-07-01): an absolute time on the twin's day, not a duration
    # from the wall clock
    assert main(["optimize", "--config", conf, "--url", api.url, "--budget", "300kW",
                 "--until", "2026-07-01T11:00:00+09:00", "--reason", "event 9"]) == 0
    out = capsys.readouterr().out
    assert "facility budget 300 kW until 2026-07-01 11:00 KST" in out and "event 9" in out
    assert daemon.demand_response_state()["budget_w"] == 300_000.0
    assert "@" in daemon.demand_response_state()["actor"]  # user@host of whoever ran the command
    assert main(["optimize", "--config", conf, "--url", api.url, "--budget", "off"]) == 0
    assert "demand response ended" in capsys.readouterr().out
    assert daemon.demand_response_state() is None


@pytest.mark.parametrize("args,message", [
    (["--budget", "300"], "is not a power with its unit"), (["--budget", "300kW"], "--until is required"),
    (["--until", "18:00"], "--until needs --budget"), (["--budget", "300kW", "--until", "later"], "--until"),
    (["--budget", "off", "--until", "18:00"], "does not go with"), (["--budget", "300kW", "--until", "+1h", "--once"],
                                                                    "--once"),
])
def test_cli_bad_input_is_a_clear_error(conf, capsys, args, message):
    assert main(["optimize", "--config", conf, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_without_a_daemon_says_so(conf, capsys):
    import socket

    with socket.socket() as s:  # a free port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["optimize", "--config", conf, "--url", f"http://127.0.0.1:{port}", "--budget", "status"]) == 2
    err = capsys.readouterr().err
    assert "no optimizer API answers at" in err and "dcim optimize" in err and "Traceback" not in err


def test_cli_refused_by_the_daemon_shows_why(served, conf, capsys):
    api, _daemon, _twin, _store = served
    # 2030 is more than 24 h after the twin's now
    assert main(["optimize", "--config", conf, "--url", api.url, "--budget", "1MW", "--until", "2030-01-01T00:00Z"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "24 h" in err
