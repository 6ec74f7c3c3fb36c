"""bench/savings.py's grading parts on a short twin run: the oracle's input reproduces the off
run it was recorded from, and the oracle's answer keeps every class bound and is no lower than
a policy the test builds by hand from the same truth.

Expected values come from the twin's own counters (the off run's accounting), never from the
code that builds the oracle's input."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from savings_oracle import oracle, rack_limits_w, step_from  # noqa: E402
from savings_twin import make_twin, run  # noqa: E402

from optimizer.oracle import solve  # noqa: E402

START_NS = 1_783_296_000 * 10**9


@pytest.fixture(scope="module")
def off_run(demo_config_module):
    return run(demo_config_module, seed=5, start_ns=START_NS, days=40 * 60 / 86400, step_s=60.0, cycle_s=300.0,
               curve_end="pessimistic", mode="off")


@pytest.fixture(scope="module")
def demo_config_module():
    from dcim.config import load_config

    return load_config(Path(__file__).resolve().parents[2] / "deploy" / "demo.toml")


def steps_of(off, cfg):
    twin = make_twin(cfg, seed=5, start_ns=START_NS, curve_end="pessimistic")
    bounds = dict(cfg.optimizer.throughput_loss_bound)
    rog = twin.server_rack[twin.gpu_server]
    lim = rack_limits_w(cfg, twin.inventory)
    return [step_from(r, off.jobs, bounds, min_w=200.0, max_w=700.0, rack_of_gpu=rog, rack_limit_w=lim)
            for r in off.recording], twin


def test_uncapped_column_is_the_off_run(off_run, demo_config_module):
    steps, _ = steps_of(off_run, demo_config_module)
    assert len(steps) == 40
    facility_j = sum(s.dt_s * (s.facility_fixed_w + s.facility_w_per_gpu_w * s.power_w[:, 0].sum()) for s in steps)
    work = sum(s.dt_s * s.work[:, 0].sum() for s in steps)
    assert facility_j == pytest.approx(off_run.facility_j, rel=1e-9)
    assert work == pytest.approx(off_run.work, rel=1e-6)
    for s, rec in zip(steps, off_run.recording):  # the curve at the default limit is the twin's true draw
        assert s.power_w[:, 0].sum() == pytest.approx(rec["busy_gpu_w"], rel=1e-6)
        assert 1.0 < s.facility_w_per_gpu_w < 2.0 and 0.0 < s.cooling_w_per_gpu_w < 1.0


def test_oracle_keeps_the_bounds_and_beats_a_hand_built_policy(off_run, demo_config_module):
    cfg = demo_config_module
    steps, twin = steps_of(off_run, cfg)
    res = oracle(off_run, cfg, twin.inventory, rack_of_gpu=twin.server_rack[twin.gpu_server], min_w=200.0, max_w=700.0)
    bounds = cfg.optimizer.throughput_loss_bound
    for c, loss in res.loss_pct.items():
        assert loss <= 100 * bounds.get(c, 0.0) + 1e-6, c
    assert res.saving_pct > 0 and res.saving_bound_pct >= res.saving_pct - 1e-9
    # a policy by hand: every unit at the deepest candidate its bound allows (the power minimum)
    e = w = 0.0
    for s in steps:
        ok = s.work >= (1 - s.loss_bound)[:, None] * s.work[:, :1] - 1e-9
        k = np.argmin(np.where(ok, s.power_w, np.inf), axis=1)
        rows = np.arange(len(k))
        e += s.dt_s * (s.facility_fixed_w + s.facility_w_per_gpu_w * s.power_w[rows, k].sum())
        w += s.dt_s * s.work[rows, k].sum()
    hand_pct = 100 * (1 - (e / w) / (off_run.facility_j / off_run.work))
    assert 0 < hand_pct <= res.saving_bound_pct + 1e-9
    assert solve(steps).ratio == pytest.approx(res.ratio, rel=1e-9)
