"""Rack budgets on A/B feeds: under 2N (the default) a rack must survive on its weakest single
feed, so it is held to that feed's derated capacity; only where the config says the feeds
share the load does the budget become their sum. Through the real SqliteStore: telemetry in,
fleet read, budgets, caps decided."""

import numpy as np
import pytest

from dcim.config import parse_config
from dcim.inventory import build_inventory
from dcim.metrics import Point
from dcim.store.sqlite import SqliteStore
from optimizer import fleet as fleet_mod
from optimizer.power_caps import CapPolicy, decide_caps

NOW_NS = 1_782_864_000_000_000_000
# One feed: 3 phases × 32 A × 230 V (line-to-neutral) × 0.8 continuous-load derate.
ONE_FEED_W = 3 * 32 * 230 * 0.8  # 17,664 W
RACK_BUDGET_KW = 60.0  # the rack's own budget is not what binds here


def site(*, site_wide=None, rack=None, b_breaker_a=32.0):
    opt = {} if site_wide is None else {"feed_redundancy": site_wide}
    rack_doc = {"name": "R1", "power_budget_kw": RACK_BUDGET_KW,
                "server_group": {"count": 4, "gpus": 8, "host_idle_w": 300.0, "host_max_w": 600.0}}
    if rack is not None:
        rack_doc["feed_redundancy"] = rack
    pdus = [{"name": "pdu-a", "rack": "R1", "feed": "A", "phases": 3, "breaker_a": 32.0, "voltage_v": 230.0},
            {"name": "pdu-b", "rack": "R1", "feed": "B", "phases": 3, "breaker_a": b_breaker_a, "voltage_v": 230.0}]
    return parse_config({"site": {"name": "s1"}, "pdus": pdus, "optimizer": opt,
                         "rooms": [{"name": "hall-1", "rows": [{"name": "r1", "racks": [rack_doc]}]}]})


def loaded_fleet(cfg, power_w=600.0):
    """32 busy GPUs each drawing *power_w* under a 700 W limit: 19.2 kW of GPUs at 600 W, over one
    feed's 17.7 kW and well under two feeds' 35.3 kW."""
    inv = build_inventory(cfg)
    store = SqliteStore(":memory:")
    pts = []
    for slot in inv.gpus:
        uuid = f"GPU-{slot.host}-{slot.index}"
        pts.append(Point("gpu", {"site": "s1", "room": slot.room, "rack": slot.rack, "host": slot.host,
                                 "gpu": str(slot.index), "uuid": uuid, "model": slot.model},
                         {"power_w": power_w, "power_limit_w": 700.0, "power_limit_min_w": 200.0,
                          "power_limit_max_w": 700.0, "power_limit_default_w": 700.0, "util_pct": 95.0},
                         NOW_NS))
        pts.append(Point("workload", {"site": "s1", "host": slot.host, "uuid": uuid},
                         {"job": "j1", "job_class": "training", "tenant": "t"}, NOW_NS))
    store.write(pts)
    fleet = fleet_mod.read_fleet(store, inv, NOW_NS)
    store.close()
    return fleet, inv


def rack_budget_w(cfg) -> float:
    fleet, inv = loaded_fleet(cfg)
    groups, names = fleet_mod.group_ids(fleet, inv, cfg)
    return float(fleet_mod.budgets(fleet, inv, cfg, groups, names).budget_w["rack"][0])


def test_2n_is_the_default_and_holds_the_rack_to_one_feed():
    assert rack_budget_w(site()) == pytest.approx(ONE_FEED_W)


def test_shared_feeds_add_up():
    assert rack_budget_w(site(site_wide="shared")) == pytest.approx(2 * ONE_FEED_W)


def test_2n_uses_the_weakest_feed():
    # feed B on a 16 A breaker: failover onto B is what must hold
    assert rack_budget_w(site(b_breaker_a=16.0)) == pytest.approx(ONE_FEED_W / 2)


@pytest.mark.parametrize("site_wide,rack,expected_feeds", [("shared", "2N", 1), ("2N", "shared", 2),
                                                           (None, "shared", 2), ("shared", None, 2)])
def test_the_rack_key_overrides_the_site_wide_one(site_wide, rack, expected_feeds):
    assert rack_budget_w(site(site_wide=site_wide, rack=rack)) == pytest.approx(expected_feeds * ONE_FEED_W)


def plan_for(cfg):
    fleet, inv = loaded_fleet(cfg)
    inp, names = fleet_mod.cap_inputs(fleet, inv, cfg, {}, {}, stale_after_s=120.0)
    bud = fleet_mod.budgets(fleet, inv, cfg, inp.groups, names)
    policy = CapPolicy(max_step_w=500.0, floor_fraction=0.9)  # efficiency alone would not cap below 630 W
    return decide_caps(inp, bud, policy), bud


def test_a_rack_above_one_feed_is_capped_under_2n_and_not_when_shared():
    plan, bud = plan_for(site())
    rack_w = bud.base_w["rack"][0] + plan.predicted_power_w.sum()
    assert rack_w <= ONE_FEED_W + 1e-6, rack_w
    assert np.all(plan.cap_w < 600.0)  # below the present draw: the load had to come down
    assert {plan.reason_text(i) for i in range(plan.cap_w.size)} == {"budget (rack:R1)"}
    assert plan.groups_over_budget == []

    shared, bud = plan_for(site(site_wide="shared"))
    assert not any(g for g in shared.budget_group)
    assert np.all(shared.cap_w >= 630.0 - 1e-6)  # only the policy floor (0.9 × 700 W) limits it
    assert bud.base_w["rack"][0] + shared.predicted_power_w.sum() > ONE_FEED_W  # the load one feed could not carry


def test_bad_feed_redundancy_is_a_clear_error():
    from dcim.config import ConfigError

    with pytest.raises(ConfigError) as err:
        site(site_wide="N+1")
    assert "optimizer.feed_redundancy" in str(err.value)
    with pytest.raises(ConfigError) as err:
        site(rack="both")
    assert "feed_redundancy" in str(err.value) and "racks[0]" in str(err.value)
