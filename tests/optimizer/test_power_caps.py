"""Pure-function tests of the power-cap policy (no store, no servers)."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.power_caps import (
    BUDGET,
    HOLD_STALE,
    IDLE_RELEASE,
    Budgets,
    CapInputs,
    CapPolicy,
    decide_caps,
    pdu_feed_capacity_w,
    rack_power_capacity_w,
)
from optimizer.throughput_curve import PRIORS, relative_throughput

BOUNDS = {"training": 0.05, "inference": 0.0, "batch": 0.10}


def fleet(n=64, *, busy_share=1.0, cls="training", current=700.0, seed=0, racks=1, fresh=True):
    rng = np.random.default_rng(seed)
    classes = np.array([cls] * n) if cls else rng.choice(list(BOUNDS), n)
    busy = rng.random(n) < busy_share
    sat = np.array([PRIORS[c].saturation for c in classes])
    return CapInputs(
        min_w=np.full(n, 200.0), max_w=np.full(n, 700.0), default_w=np.full(n, 700.0),
        current_w=np.full(n, float(current)) if np.isscalar(current) else np.asarray(current, float),
        power_w=np.where(busy, np.minimum(sat * 700.0, current), 76.0), busy=busy,
        fresh=np.full(n, fresh), saturation=sat, beta=np.array([PRIORS[c].beta for c in classes]),
        loss_bound=np.array([BOUNDS[c] for c in classes]), host_share_w=np.full(n, 150.0),
        groups={"rack": np.arange(n) % racks, "site": np.zeros(n, int)})


def test_training_capped_within_loss_bound_and_step():
    inp = fleet()
    plan = decide_caps(inp, policy=CapPolicy(max_step_w=50))
    assert np.all(plan.cap_w == 650.0)  # one bounded step down from 700 W
    deep = decide_caps(inp, policy=CapPolicy(max_step_w=500))
    assert np.all(deep.cap_w < 600) and np.all(deep.cap_w >= 350)  # floor 0.5 × 700
    assert np.all(deep.predicted_loss <= 0.05 + 1e-9)


def test_inference_never_loses_throughput():
    plan = decide_caps(fleet(cls="inference"), policy=CapPolicy(max_step_w=500))
    assert np.all(plan.predicted_loss <= 1e-9)


def test_idle_gpus_return_to_default_where_the_rack_can_take_it():
    inp = fleet(busy_share=0.0, current=500.0, racks=2)
    roomy = Budgets(budget_w={"rack": np.array([1e6, 32 * 600.0])}, base_w={"rack": np.zeros(2)})
    plan = decide_caps(inp, roomy, CapPolicy(max_step_w=50))
    r0 = inp.groups["rack"] == 0
    assert np.all(plan.cap_w[r0] == 700.0)  # released in one move: the worst case fits
    assert np.all(plan.cap_w[~r0] == 550.0)  # worst case would not fit: one step per cycle
    assert np.all(plan.reason == IDLE_RELEASE)


def test_stale_gpus_are_held():
    inp = fleet(current=600.0, fresh=False)
    plan = decide_caps(inp, policy=CapPolicy(max_step_w=500))
    assert np.all(plan.cap_w == 600.0) and np.all(plan.reason == HOLD_STALE)


def test_conservative_never_deeper_than_starting_point():
    plan = decide_caps(fleet(cls="batch"), policy=CapPolicy(max_step_w=500, conservative=True))
    assert np.all(plan.cap_w >= 0.7 * 700 - 1e-6)
    # an existing deeper cap is not pushed deeper either
    plan = decide_caps(fleet(cls="batch", current=400.0), policy=CapPolicy(max_step_w=500, conservative=True))
    assert np.all(plan.cap_w >= 400.0 - 1e-6)


def test_site_budget_honoured_with_least_loss_on_tight_classes():
    n = 300
    inp = fleet(n, cls=None, seed=3)
    free = decide_caps(inp, policy=CapPolicy(max_step_w=500))
    budget = 0.85 * free.predicted_power_w.sum()
    bud = Budgets(budget_w={"site": np.array([budget])}, base_w={"site": np.array([0.0])})
    plan = decide_caps(inp, bud, CapPolicy(max_step_w=500, budget_margin=0.0))
    assert plan.predicted_power_w.sum() <= budget + 1e-6
    assert not plan.groups_over_budget
    assert (plan.reason == BUDGET).any()
    # weighted: the loss-bound-0 class is cut last
    cls = np.array([{0.0: "inference", 0.05: "training", 0.1: "batch"}[b] for b in inp.loss_bound])
    mean_loss = {c: plan.predicted_loss[(cls == c) & inp.busy].mean() for c in BOUNDS}
    assert mean_loss["inference"] <= mean_loss["training"] + 1e-9


def test_rack_budget_only_touches_that_rack():
    inp = fleet(64, racks=2, cls="batch")
    draw = decide_caps(inp, policy=CapPolicy(max_step_w=500)).predicted_power_w
    rack_power = np.bincount(inp.groups["rack"], weights=draw)
    bud = Budgets(budget_w={"rack": np.array([rack_power[0] * 0.8, 1e9])}, base_w={"rack": np.zeros(2)},
                  names={"rack": ["R0", "R1"]})
    plan = decide_caps(inp, bud, CapPolicy(max_step_w=500, budget_margin=0.0))
    r0, r1 = inp.groups["rack"] == 0, inp.groups["rack"] == 1
    assert plan.predicted_power_w[r0].sum() <= rack_power[0] * 0.8 + 1e-6
    assert np.allclose(plan.cap_w[r1], decide_caps(inp, policy=CapPolicy(max_step_w=500)).cap_w[r1])
    assert set(plan.budget_group[r0 & (plan.reason == BUDGET)]) == {"rack:R0"}


def test_step_bound_leaves_budget_to_converge_and_reports_it():
    inp = fleet(32, cls="training")
    bud = Budgets(budget_w={"site": np.array([32 * 400.0])}, base_w={"site": np.array([0.0])})
    plan = decide_caps(inp, bud, CapPolicy(max_step_w=50))
    assert np.all(plan.cap_w >= 650.0)
    assert plan.groups_over_budget == ["site:0"]


def test_pdu_capacity_formula():
    assert pdu_feed_capacity_w(32, 220, 3, 0.8) == pytest.approx(16896.0)
    feeds = [(32, 220, 3), (32, 220, 3)]
    assert rack_power_capacity_w(feeds, 0.8) == pytest.approx(2 * 16896.0)
    assert rack_power_capacity_w(feeds, 0.8, redundant=True) == pytest.approx(16896.0)


@st.composite
def fleets(draw):
    n = draw(st.integers(1, 40))
    f = lambda lo, hi: np.array(draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n)))  # noqa: E731
    b = lambda: np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))  # noqa: E731
    min_w = f(100, 300)
    max_w = min_w + f(50, 600)
    default_w = np.minimum(max_w, min_w + f(0, 700))
    current = np.clip(f(0, 1000), min_w, max_w)  # whatever is in force, inside the hardware range
    inp = CapInputs(min_w=min_w, max_w=max_w, default_w=default_w, current_w=current, power_w=f(0, 900),
                    busy=b(), fresh=b(), saturation=f(0.05, 1.0), beta=f(0.03, 1.5), loss_bound=f(0, 0.5),
                    host_share_w=f(0, 400), groups={"rack": np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))),
                                                    "site": np.zeros(n, int)})
    bud = Budgets(budget_w={"rack": f(0, 20000)[:1].repeat(3) if n else np.zeros(3),
                            "site": np.array([draw(st.floats(0, 30000))])},
                  base_w={"rack": np.zeros(3), "site": np.array([draw(st.floats(0, 5000))])})
    policy = CapPolicy(max_step_w=draw(st.floats(1, 300)), floor_fraction=draw(st.floats(0.1, 1.0)),
                       conservative=draw(st.booleans()))
    return inp, bud, policy


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_property_caps_stay_in_constraints_and_step(case):
    inp, bud, policy = case
    plan = decide_caps(inp, bud, policy)
    assert np.all(plan.cap_w >= inp.min_w - 1e-6) and np.all(plan.cap_w <= inp.max_w + 1e-6)
    step_ok = np.abs(plan.cap_w - inp.current_w) <= policy.max_step_w + 1e-6
    # the only exception: an idle GPU released upward, never above its default
    idle_release = ~inp.busy & (plan.cap_w > inp.current_w) & (plan.cap_w <= np.maximum(inp.default_w, inp.current_w) + 1e-6)
    assert np.all(step_ok | idle_release)
    assert np.all(step_ok[inp.busy])
    stale = ~inp.fresh
    assert np.all(plan.cap_w[stale] == inp.current_w[stale])
    assert np.all(np.isfinite(plan.cap_w))


def test_relative_throughput_shape():
    f = np.linspace(0.3, 1.0, 15)
    r = relative_throughput(f, 0.8, 0.2)
    assert np.all(np.diff(r) >= 0) and r[-1] == 1.0 and np.all(r[f >= 0.8] == 1.0)
