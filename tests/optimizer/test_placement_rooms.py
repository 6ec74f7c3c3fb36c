"""Placement's cooling cost with two halls and one chiller plant: the chiller is charged to every
room it cools, not only to the air units of the room it stands in. Through the real SqliteStore:
telemetry in, placement state read, a job placed."""

import pytest

from dcim.config import parse_config
from dcim.inventory import build_inventory
from dcim.metrics import Point
from dcim.store.sqlite import SqliteStore
from optimizer import fleet as fleet_mod
from optimizer.placement import Job, place

NOW_NS = 1_782_864_000_000_000_000

# Measured cooling (power W, heat kW) per unit; the ratios below are worked out by hand.
IRC_1 = (1_500.0, 50.0)  # hall-1 in-row cooler: 0.03 W per W of heat
CRAH_2 = (3_000.0, 50.0)  # hall-2 CRAH: 0.06 W/W
CHILLER = (20_000.0, 100.0)  # the plant, standing in hall-2: 0.20 W/W
CHILLER_1 = (5_000.0, 50.0)  # a second chiller (hall-1's own, when configured): 0.10 W/W


def site(*, chillers):
    def rack(name):
        return {"name": name, "server_group": {"count": 2, "gpus": 8}}

    rooms = [{"name": "hall-1", "rows": [{"name": "a", "racks": [rack("A1")]}]},
             {"name": "hall-2", "rows": [{"name": "b", "racks": [rack("B1")]}]}]
    cooling = [{"name": "irc-1", "room": "hall-1", "kind": "inrow", "capacity_kw": 100.0, "racks": ["A1"]},
               {"name": "crah-2", "room": "hall-2", "kind": "crah", "capacity_kw": 100.0, "racks": ["B1"]}]
    return parse_config({"site": {"name": "s1"}, "rooms": rooms, "cooling": cooling + chillers})


def readings(cfg, units):
    """Idle GPUs on every server, and the cooling units' measured power and heat."""
    inv = build_inventory(cfg)
    store = SqliteStore(":memory:")
    pts = []
    for slot in inv.gpus:
        pts.append(Point("gpu", {"site": "s1", "room": slot.room, "rack": slot.rack, "host": slot.host,
                                 "gpu": str(slot.index), "uuid": f"GPU-{slot.host}-{slot.index}", "model": slot.model},
                         {"power_w": 70.0, "power_limit_w": 700.0, "power_limit_min_w": 200.0,
                          "power_limit_max_w": 700.0, "power_limit_default_w": 700.0, "util_pct": 0.0}, NOW_NS))
    by_name = {u.name: u for u in cfg.cooling}
    for name, (power_w, heat_kw) in units.items():
        u = by_name[name]
        pts.append(Point("cooling", {"site": "s1", "room": u.room, "unit": name, "kind": u.kind},
                         {"power_w": power_w, "cooling_kw": heat_kw}, NOW_NS))
    store.write(pts)
    return store, inv


def ratios(cfg, units):
    store, _ = readings(cfg, units)
    try:
        return fleet_mod.zone_cooling_ratio(store, cfg, "s1", NOW_NS - 600 * 10**9)
    finally:
        store.close()


PLANT = {"name": "chiller-1", "room": "hall-2", "kind": "chiller", "capacity_kw": 500.0}


def test_one_chiller_is_charged_to_both_halls():
    got = ratios(site(chillers=[PLANT]), {"irc-1": IRC_1, "crah-2": CRAH_2, "chiller-1": CHILLER})
    assert got["irc-1"] == pytest.approx(0.03 + 0.20)  # hall-1 pays the plant too (was 0.03 alone)
    assert got["crah-2"] == pytest.approx(0.06 + 0.20)


def test_a_chiller_that_names_its_rooms_is_charged_only_there():
    only_hall_2 = dict(PLANT, rooms=["hall-2"])
    got = ratios(site(chillers=[only_hall_2]), {"irc-1": IRC_1, "crah-2": CRAH_2, "chiller-1": CHILLER})
    assert got["irc-1"] == pytest.approx(0.03) and got["crah-2"] == pytest.approx(0.26)


def test_two_chillers_serving_both_halls_pool_their_power_and_heat():
    second = {"name": "chiller-h1", "room": "hall-1", "kind": "chiller", "capacity_kw": 500.0}
    got = ratios(site(chillers=[PLANT, second]),
                 {"irc-1": IRC_1, "crah-2": CRAH_2, "chiller-1": CHILLER, "chiller-h1": CHILLER_1})
    plant = (20_000.0 + 5_000.0) / (150.0 * 1000.0)  # both chillers' power over both chillers' heat
    assert got["irc-1"] == pytest.approx(0.03 + plant) and got["crah-2"] == pytest.approx(0.06 + plant)


def test_placement_prices_hall_1_with_the_plant():
    cfg = site(chillers=[PLANT])
    store, inv = readings(cfg, {"irc-1": IRC_1, "crah-2": CRAH_2, "chiller-1": CHILLER})
    try:
        fleet = fleet_mod.read_fleet(store, inv, NOW_NS)
        st = fleet_mod.placement_state(fleet, inv, cfg, store, NOW_NS, 120.0)
    finally:
        store.close()
    cool = dict(zip(st.host.tolist(), st.cool_w_per_w.tolist()))
    assert cool["A1-n01"] == pytest.approx(0.23) and cool["B1-n01"] == pytest.approx(0.26)
    p = place(Job(gpus=2, gpu_w=500.0), st, commit=False)
    assert p.slots[0][0].startswith("A1-") and "cooling 0.23 W/W" in p.reasons[0]
    # marginal facility power, by hand: 2 × (500 W + host 1,300 W × 0.9 / 8) × 1.23 + wake 900 W × 1.23
    assert p.cost_w == pytest.approx(2 * (500.0 + 1300.0 * 0.9 / 8) * 1.23 + 900.0 * 1.23)


def test_chiller_rooms_must_exist_and_belong_to_a_chiller():
    from dcim.config import ConfigError

    with pytest.raises(ConfigError, match=r"cooling\[2\]\.rooms\[0\]: no room named 'hall-9'"):
        site(chillers=[dict(PLANT, rooms=["hall-9"])])
    with pytest.raises(ConfigError, match=r"only a chiller serves rooms"):
        site(chillers=[{"name": "x", "room": "hall-1", "kind": "crah", "capacity_kw": 10.0, "rooms": ["hall-1"]}])
