"""The demand estimate does not trust NVML's SW-power-cap bit alone: a real H100 sets it in bursts
at 330 W average under its 700 W limit (reference: measured H100 power vs load)."""

from pathlib import Path

import numpy as np

from dcim.config import load_config
from dcim.inventory import build_inventory
from dcim.metrics import Point
from dcim.store.sqlite import SqliteStore
from optimizer import fleet as fleet_mod

REPO = Path(__file__).resolve().parents[2]
NOW = 1_782_864_000 * 10**9
SW_POWER_CAP = 0x4


def fleet_of(readings):
    """A fleet from gpu points: {index: (power_w, limit_w, throttle_reasons, sm_clock_mhz)} on
    the first server, each GPU running its own job."""
    cfg = load_config(REPO / "deploy" / "demo.toml")
    inv = build_inventory(cfg)
    host = inv.gpus[0].host
    store = SqliteStore(":memory:")
    pts = []
    for i, (power, limit, throttle, clock) in readings.items():
        fields = {"power_w": power, "power_limit_w": limit, "power_limit_max_w": 700.0,
                  "power_limit_min_w": 200.0, "power_limit_default_w": 700.0, "util_pct": 90.0}
        if throttle is not None:
            fields["throttle_reasons"] = throttle
        if clock is not None:
            fields["sm_clock_mhz"] = clock
        uuid = f"GPU-{i}"
        pts.append(Point("gpu", {"site": inv.site, "host": host, "gpu": str(i), "uuid": uuid,
                                 "model": "NVIDIA H100 80GB HBM3"}, fields, NOW))
        pts.append(Point("workload", {"site": inv.site, "host": host, "uuid": uuid},
                         {"job": f"j{i}", "job_class": "training", "tenant": "t"}, NOW))
    store.write(pts)
    fleet = fleet_mod.read_fleet(store, inv, NOW)
    store.close()
    return fleet


def test_the_bit_at_330_w_under_700_w_is_not_a_binding_cap():
    fleet = fleet_of({0: (330.0, 700.0, SW_POWER_CAP, 1935.0)})
    assert not fleet.power_capped[0]
    s = fleet_mod.estimate_saturation(fleet, {}, {})
    assert np.isclose(s[0], 330.0 / 700.0)  # its draw is its demand


def test_a_gpu_at_its_limit_with_the_bit_and_a_slowed_clock_is_limited():
    memory = {}
    fleet = fleet_of({0: (694.0, 700.0, SW_POWER_CAP, 1482.0), 1: (402.0, 700.0, 0, 1980.0)})
    assert fleet.power_capped[0] and not fleet.power_capped[1]
    s = fleet_mod.estimate_saturation(fleet, {}, memory)
    assert s[0] == 1.0  # never seen uncapped: assume it wants the full limit (pessimistic)


def test_at_its_limit_but_at_the_free_running_clock_the_cap_is_not_slowing_it():
    # GPU 1 (memory-bound, 402 W, far under its limit) shows the model's free-running clock;
    # GPU 0 sits at a 550 W cap with the bit set, yet at that clock: the cap is not holding it back
    fleet = fleet_of({0: (548.0, 550.0, SW_POWER_CAP, 1980.0), 1: (402.0, 700.0, 0, 1980.0)})
    s = fleet_mod.estimate_saturation(fleet, {}, {})
    assert np.isclose(s[0], 548.0 / 700.0)


def test_without_reasons_or_clocks_the_headroom_decides():
    fleet = fleet_of({0: (690.0, 700.0, None, None), 1: (500.0, 700.0, None, None)})
    assert fleet.power_capped[0] and not fleet.power_capped[1]
