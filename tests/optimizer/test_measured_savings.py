"""M&V: the control group and the measured saving's interval (optimizer/measured_savings.py).

The synthetic fleet's true saving is set by the test: every treated job, after its baseline, uses
``1 − TRUE_SAVING`` of the energy per unit of work it would at default limits; every job (both
groups) drifts alike over time, each has its own size, unit scale and efficiency, and metered
energy and reported work carry noise."""

import numpy as np
import pytest

from dcim.store.sqlite import SqliteStore
from optimizer.measured_savings import (
    BASE_SAMPLES,
    MEASURED_ACTION,
    SavingsLedger,
    in_control_group,
    measured_point,
    read_measured_saving,
)

T0 = 1_780_000_000 * 10**9


def test_control_group_share_and_per_job_stability():
    jobs = [f"{i}" for i in range(20000)] + [f"ns/pod-{i}" for i in range(5000)]
    drawn = np.array([in_control_group(j, 0.1, seed=7) for j in jobs])
    # binomial: 25,000 draws at 10 % → σ = 47 jobs; 5 σ either side
    assert abs(drawn.sum() - 2500) < 5 * 47
    again = np.array([in_control_group(j, 0.1, seed=7) for j in jobs])
    assert np.array_equal(drawn, again)  # the same job is always in the same group
    other = np.array([in_control_group(j, 0.1, seed=8) for j in jobs])
    assert not np.array_equal(drawn, other)  # the seed redraws the group
    assert not any(in_control_group(j, 0.0, seed=7) for j in jobs[:1000])  # 0 = off
    # independent of the job id's shape: Slurm ids and Kubernetes pods alike near 10 %
    assert abs(drawn[20000:].mean() - 0.1) < 0.03


def synthetic_ledger(true_saving, *, jobs=300, share=0.1, seed=0, samples=40):
    rng = np.random.default_rng(seed)
    ledger = SavingsLedger()
    for j in range(jobs):
        control = rng.random() < share
        gpus = int(rng.choice([1, 2, 4, 8]))
        unit_scale = 10.0 ** rng.uniform(0, 4)  # steps vs tokens: any unit
        joule_per_unit = rng.uniform(0.5, 2.0) * 700.0 / unit_scale
        rate = unit_scale * gpus  # units per second at default
        for k in range(samples):
            drift = 1.0 + 0.05 * k / samples  # every job gets 5 % less efficient over its life
            after = k >= BASE_SAMPLES
            factor = (1.0 - true_saving) if (after and not control) else 1.0
            slow = 0.97 if (after and not control) else 1.0  # capped jobs run a little slower
            work = rate * slow * 60.0 * (1.0 + 0.03 * rng.standard_normal())
            energy = work * joule_per_unit * drift * factor * (1.0 + 0.02 * rng.standard_normal())
            ledger.add(f"job-{j}", control, energy_j=energy, work=work, at_default=not after or control)
    return ledger


@pytest.mark.parametrize("truth", [0.0, 0.08, 0.15])
def test_the_interval_contains_the_true_saving(truth):
    m = synthetic_ledger(truth, seed=int(truth * 100)).estimate()
    assert m is not None and m.control_jobs >= 15 and m.treated_jobs >= 200
    assert m.ci_low_pct <= 100 * truth <= m.ci_high_pct, m
    assert m.ci_high_pct - m.ci_low_pct < 6.0  # informative, not a blanket interval
    if truth > 0:
        assert m.ci_low_pct > 0  # a real saving is told from none


def test_coverage_over_many_fleets_is_near_95_percent():
    hits = 0
    runs = 40
    for seed in range(runs):
        m = synthetic_ledger(0.1, jobs=200, seed=1000 + seed, samples=20).estimate()
        hits += m.ci_low_pct <= 10.0 <= m.ci_high_pct
    assert hits >= 0.85 * runs  # 95 % nominal; a broken interval covers far less


def test_no_figure_before_both_groups_have_jobs():
    ledger = SavingsLedger()
    for _ in range(BASE_SAMPLES + 2):
        ledger.add("a", False, energy_j=100.0, work=1.0, at_default=True)
    assert ledger.estimate() is None


def test_baseline_is_only_measured_at_default():
    ledger = SavingsLedger()
    ledger.add("a", False, energy_j=50.0, work=1.0, at_default=False)  # held by a budget at start
    assert ledger.jobs["a"].base_samples == 0 and ledger.jobs["a"].e_after_j == 0.0


def test_the_figure_round_trips_through_the_store(tmp_path):
    m = synthetic_ledger(0.1, seed=5).estimate()
    store = SqliteStore(tmp_path / "s.sqlite")
    try:
        assert read_measured_saving(store, "site-a") is None
        store.write([measured_point("site-a", m, T0, "enforce")])
        store.flush()
        back = read_measured_saving(store, "site-a")
        assert back == m
        p = store.latest("optimizer", where={"action": MEASURED_ACTION})[0]
        assert "control jobs" in p.fields["reason"]
    finally:
        store.close()
