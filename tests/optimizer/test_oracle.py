"""The true oracle against brute-force enumeration of every policy on small runs.

The expected values here come from enumerating every assignment of candidates (all steps, all
units at once) and computing E/W by hand-written loops, never from the oracle's code."""

import itertools

import numpy as np
import pytest

from optimizer.oracle import Budget, OracleInfeasible, Step, job_candidates, solve


def random_run(rng, steps=2, units=3, k=4, with_budget=True, classes=("training", "inference", "batch")):
    """Units whose power and work both fall with the candidate index (column 0 uncapped), the
    way capping behaves: a cheaper candidate is slower."""
    out = []
    for _ in range(steps):
        p0 = rng.uniform(300, 700, units)
        frac_p = np.sort(rng.uniform(0.4, 1.0, (units, k - 1)), axis=1)[:, ::-1]
        power = np.concatenate([p0[:, None], p0[:, None] * frac_p], axis=1)
        # work falls more slowly than power (the regime capping is for), with a kink now and then
        frac_w = np.sort(rng.uniform(0.75, 1.0, (units, k - 1)), axis=1)[:, ::-1]
        w0 = rng.integers(1, 9, units).astype(float)
        work = np.concatenate([w0[:, None], w0[:, None] * frac_w], axis=1)
        bound = rng.choice([0.0, 0.05, 0.1, 0.2], units)
        budgets = []
        if with_budget:
            members = np.array(sorted(rng.choice(units, size=min(2, units), replace=False)))
            # a limit between the members' deepest allowed and uncapped draw: it binds
            ok = work >= (1 - bound)[:, None] * work[:, :1] - 1e-9
            lo = np.where(ok, power, np.inf)[members].min(axis=1).sum()
            hi = power[members, 0].sum()
            budgets.append(Budget(limit_w=float(lo + rng.uniform(0.2, 0.8) * (hi - lo)), units=members,
                                  power_w=power[members], name="rack R1"))
        out.append(Step(dt_s=float(rng.choice([60.0, 300.0])), power_w=power, work=work, loss_bound=bound,
                        unit_class=np.array([classes[i % len(classes)] for i in range(units)]),
                        facility_fixed_w=float(rng.uniform(500, 3000)), facility_w_per_gpu_w=float(rng.uniform(1.1, 1.5)),
                        budgets=budgets))
    return out


def brute_force(run):
    """Min E/W over every feasible assignment; None when nothing is feasible."""
    per_step = []
    for s in run:
        U, K = s.power_w.shape
        options = []
        for choice in itertools.product(range(K), repeat=U):
            c = np.array(choice)
            w = s.work[np.arange(U), c]
            if np.any(w < (1 - s.loss_bound) * s.work[:, 0] - 1e-9):
                continue
            p = s.power_w[np.arange(U), c]
            if any(p[b.units].sum() > b.limit_w + 1e-9 for b in s.budgets):
                continue
            options.append((s.dt_s * (s.facility_fixed_w + s.facility_w_per_gpu_w * p.sum()), s.dt_s * w.sum()))
        per_step.append(options)
    best = None
    for combo in itertools.product(*per_step):
        e = sum(o[0] for o in combo)
        w = sum(o[1] for o in combo)
        best = e / w if best is None else min(best, e / w)
    return best


def off_ratio(run):
    e = sum(s.dt_s * (s.facility_fixed_w + s.facility_w_per_gpu_w * s.power_w[:, 0].sum()) for s in run)
    return e / sum(s.dt_s * s.work[:, 0].sum() for s in run)


@pytest.mark.parametrize("seed", range(12))
def test_oracle_equals_brute_force_and_bounds_it(seed):
    rng = np.random.default_rng(seed)
    run = random_run(rng)
    truth = brute_force(run)
    res = solve(run)
    assert res.ratio == pytest.approx(truth, rel=1e-9)
    assert res.ratio_lower <= truth * (1 + 1e-9)  # the proved bound never claims more than the truth
    assert res.saving_pct == pytest.approx(100 * (1 - truth / off_ratio(run)), abs=1e-7)
    assert res.saving_bound_pct >= res.saving_pct - 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_no_random_policy_beats_the_oracle(seed):
    """Random feasible policies (a cap heuristic would be one of them) never save more."""
    rng = np.random.default_rng(100 + seed)
    run = random_run(rng, steps=3, units=4, k=5, with_budget=False)
    res = solve(run)
    r_off = off_ratio(run)
    for _ in range(300):
        e = w = 0.0
        for s in run:
            U, K = s.power_w.shape
            ok = s.work >= (1 - s.loss_bound)[:, None] * s.work[:, :1] - 1e-9
            c = np.array([rng.choice(np.flatnonzero(ok[u])) for u in range(U)])
            e += s.dt_s * (s.facility_fixed_w + s.facility_w_per_gpu_w * s.power_w[np.arange(U), c].sum())
            w += s.dt_s * s.work[np.arange(U), c].sum()
        assert 100 * (1 - (e / w) / r_off) <= res.saving_bound_pct + 1e-9


def test_ratio_objective_is_not_the_power_minimum():
    """One unit, one step: the deepest cap saves the most power but not the most energy per work
    (the fixed facility load is spread over less work); brute force and the oracle agree on the
    middle candidate, worked out by hand here."""
    step = Step(dt_s=1.0, power_w=np.array([[700.0, 500.0, 300.0]]), work=np.array([[1.0, 0.95, 0.5]]),
                loss_bound=np.array([1.0]), unit_class=np.array(["batch"]), facility_fixed_w=1000.0,
                facility_w_per_gpu_w=1.0)
    # E/W: 1700/1 = 1700; 1500/0.95 = 1578.9; 1300/0.5 = 2600
    res = solve([step])
    assert res.ratio == pytest.approx(1500 / 0.95)
    assert res.saving_pct == pytest.approx(100 * (1 - (1500 / 0.95) / 1700))
    assert res.loss_pct == {"batch": pytest.approx(5.0)}


def test_loss_bound_is_honoured():
    step = Step(dt_s=1.0, power_w=np.array([[700.0, 500.0, 300.0]]), work=np.array([[1.0, 0.95, 0.9]]),
                loss_bound=np.array([0.0]), unit_class=np.array(["inference"]))
    res = solve([step])
    assert res.saving_pct == pytest.approx(0.0) and res.loss_pct == {"inference": pytest.approx(0.0)}


def test_a_budget_nothing_can_meet_is_a_clear_error():
    step = Step(dt_s=1.0, power_w=np.array([[700.0, 500.0], [700.0, 500.0]]), work=np.ones((2, 2)),
                loss_bound=np.array([0.0, 0.0]), unit_class=np.array(["training", "training"]),
                budgets=[Budget(limit_w=900.0, units=np.array([0, 1]), power_w=np.full((2, 2), 700.0), name="rack R7")])
    with pytest.raises(OracleInfeasible, match="rack R7"):
        solve([step])


def test_job_candidates_hold_every_gpu_at_the_same_fraction_of_its_demand():
    def curve(cap_w, demand_w):  # linear: throughput = cap / demand, flat above demand
        return np.minimum(1.0, cap_w / demand_w)

    d = np.array([600.0, 400.0])
    p, w, caps = job_candidates(curve, d, min_w=200.0, max_w=700.0, loss_bound=0.1, sync=True,
                                x_grid=np.array([0.5, 0.8, 1.0]))
    # columns: uncapped, x = 0.5, 0.8, 0.9 (the bound point, added), 1.0
    assert caps[:, 0].tolist() == [700.0, 700.0]
    assert caps[:, 1].tolist() == [300.0, 200.0]
    assert np.allclose(caps[:, 3], [540.0, 360.0], atol=1e-6)
    assert p[0].tolist() == pytest.approx([1000.0, 500.0, 800.0, 900.0, 1000.0], abs=1e-6)
    # synchronous: the job moves at its slowest GPU; x = 0.5 clips the 400 W GPU to its 200 W floor (x 0.5)
    assert w[0].tolist() == pytest.approx([2.0, 1.0, 1.6, 1.8, 2.0], abs=1e-6)
    pa, wa, _ = job_candidates(curve, d, min_w=250.0, max_w=700.0, loss_bound=0.0, sync=False,
                               x_grid=np.array([0.5, 1.0]))
    assert pa.shape == (2, 3) and wa[1].tolist() == pytest.approx([1.0, 250 / 400, 1.0])


def test_streamed_steps_give_the_same_answer():
    rng = np.random.default_rng(7)
    run = random_run(rng, steps=4, units=3, k=4)
    assert solve(lambda: iter(run)).ratio == pytest.approx(solve(run).ratio, rel=1e-12)


def test_a_binding_budget_goes_to_the_exact_program():
    """Two units, a rack budget below what the unconstrained choice draws: only the program
    (HiGHS) meets it, and it sheds on the unit where watts cost the least work (by hand: cutting
    unit 1 to 400 W loses 0.1 work; unit 0 to 400 W would lose 0.4)."""
    step = Step(dt_s=1.0, power_w=np.array([[700.0, 400.0], [700.0, 400.0]]), work=np.array([[1.0, 0.6], [1.0, 0.9]]),
                loss_bound=np.array([0.5, 0.5]), unit_class=np.array(["training", "batch"]), facility_fixed_w=10_000.0,
                budgets=[Budget(limit_w=1100.0, units=np.array([0, 1]), power_w=np.array([[700.0, 400.0], [700.0, 400.0]]),
                                name="rack R1")])
    res = solve([step])
    assert res.milp_steps == 1
    assert res.ratio == pytest.approx((10_000 + 1100) / 1.9)
    assert res.loss_pct == {"training": pytest.approx(0.0), "batch": pytest.approx(10.0)}


@pytest.mark.parametrize("lam0", [0.0, 1.0, 1e9])
def test_any_starting_lambda_reaches_the_same_optimum(lam0):
    rng = np.random.default_rng(11)
    run = random_run(rng, steps=2, units=3, k=4)
    assert solve(run, lam0=lam0).ratio == pytest.approx(brute_force(run), rel=1e-9)
