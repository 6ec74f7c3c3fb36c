"""PUE model and throughput-curve learning on synthetic data with a known truth."""

import numpy as np
import pandas as pd

from optimizer.features import FEATURES, time_features
from optimizer.pue_model import load_model, split_time_ordered, train
from optimizer.throughput_curve import fit_curve, prior_for

HOUR = 3600 * 10**9


def synthetic_frame(days=90, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24) * HOUR + 1_767_225_600 * 10**9  # 2026-01-01
    doy = (t / HOUR / 24) % 365
    outdoor = 12 + 12 * np.sin(2 * np.pi * (doy - 100) / 365) + 4 * np.sin(2 * np.pi * (t / HOUR % 24) / 24)
    it = 300 + 60 * rng.random(t.size)
    pue = 1.15 + 0.004 * np.clip(outdoor - 10, 0, None) + 6.0 / it + rng.normal(0, 0.002, t.size)
    df = pd.DataFrame({"it_power_kw": it, "outdoor_temp_c": outdoor, "outdoor_rh_pct": 60 + 10 * rng.random(t.size),
                       "supply_setpoint_c": 21.0, "chw_setpoint_c": 10.0, "pue": pue}, index=t)
    for k, v in time_features(t, "Asia/Seoul").items():
        df[k] = v
    return df[FEATURES + ["pue"]]


def test_time_ordered_split_holds_out_the_last_month():
    df = synthetic_frame(90)
    tr, te = split_time_ordered(df)
    assert tr.index.max() < te.index.min()
    assert (te.index.max() - te.index.min()) <= 30 * 24 * HOUR


def test_train_scores_persist_and_range(tmp_path):
    df = synthetic_frame(90)
    model = train(df)
    assert model.scores["mape"] < 0.01 and model.n_holdout > 0
    assert model.window_ns[0] == df.index[0] and model.holdout_ns[0] > model.window_ns[0]
    path = model.save(tmp_path / "m.pkl")
    again = load_model(path)
    row = df.iloc[-1].drop("pue").to_dict()
    assert abs(again.predict(row)[0] - model.predict(row)[0]) < 1e-12
    assert again.out_of_range(row) == []
    hot = dict(row, outdoor_temp_c=45.0)
    assert again.out_of_range(hot) == ["outdoor_temp_c"]
    fac, pue = again.facility_power_w(row, 300_000.0)
    assert abs(fac - 300_000.0 * pue) < 1e-6
    assert load_model(tmp_path / "missing.pkl") is None


def test_curve_fit_recovers_truth_and_falls_back_to_prior():
    rng = np.random.default_rng(0)
    f = rng.uniform(0.45, 1.0, 2000)
    r = 0.9 * np.minimum(1, (f / 0.8) ** 0.3) + rng.normal(0, 0.005, f.size)
    c = fit_curve(f, r, "training")
    assert abs(c.saturation - 0.8) < 0.06 and abs(c.beta - 0.3) < 0.06 and c.source == "learned"
    thin = fit_curve(f[:10], r[:10], "training")
    assert thin.source == "prior" and thin.saturation == prior_for("training").saturation
    flat = fit_curve(np.full(500, 0.7), r[:500], "batch")  # caps never varied: slope unidentifiable
    assert flat.source == "prior"


def test_learned_table_is_monotone_and_pessimistic_below_the_data():
    from optimizer.throughput_curve import CurveLearner

    rng = np.random.default_rng(2)
    truth = lambda x: np.interp(x, [0.0, 0.5, 0.6, 0.7, 1.0], [0.0, 0.835, 0.9, 0.943, 1.0])  # noqa: E731
    learner = CurveLearner()
    for x in rng.uniform(0.65, 1.0, 3000):
        learner.add("H100", "batch", x, float(truth(x) + rng.normal(0, 0.003)))
    c = learner.curves()[("H100", "batch")]
    assert c.table_x and np.all(np.diff(c.table_r) >= 0)
    xs = np.linspace(0.66, 1.0, 30)
    assert np.max(np.abs(c.throughput_x(xs) - truth(xs))) < 0.01
    deep = np.array([0.5, 0.55, 0.6])  # never run there: the extrapolation must not be optimistic
    assert np.all(c.throughput_x(deep) <= truth(deep) + 1e-3)


def test_learned_table_is_a_low_quantile_and_explores_in_short_hops():
    """Demand jitter scatters the throughput measured at one x: the table sits ~TABLE_Z σ under
    the mean (a cap aimed at the bound by it is not over the bound half the time), and below its
    data it extrapolates one short hop with a measured-slope bound, then pessimistically."""
    from optimizer.throughput_curve import EXPLORE_BETA, EXPLORE_BETA_MIN, EXPLORE_HOP, TABLE_Z, CurveLearner

    rng = np.random.default_rng(4)
    # training-like: flat above 2/3 of demand, twice as steep below (a published-curve kink)
    truth = lambda x: np.interp(x, [0.0, 1 / 3, 175 / 300, 2 / 3, 1.0], [0.0, 1 / 2.82, 1 / 1.08, 1 / 1.05, 1.0])  # noqa: E731
    sigma = 0.002
    learner = CurveLearner()
    for x in rng.uniform(0.69, 1.0, 6000):
        learner.add("H100", "training", x, float(truth(x) + rng.normal(0, sigma)))
    c = learner.curves()[("H100", "training")]
    xs = np.array(c.table_x[:-1])
    gap = truth(xs) - np.array(c.table_r[:-1])
    assert np.all(gap > 0) and abs(np.median(gap) - TABLE_Z * sigma) < 0.002
    assert EXPLORE_BETA_MIN <= c.explore_beta < EXPLORE_BETA
    x0 = c.table_x[0]
    below = np.linspace(0.6, x0, 40, endpoint=False)  # the range the loss bounds can reach
    assert np.all(c.throughput_x(below) <= truth(below))  # never optimistic, across the kink too
    hop = x0 * (1 - EXPLORE_HOP)
    assert c.throughput_x(hop) > c.table_r[0] * (hop / x0) ** EXPLORE_BETA  # the hop is cheaper to explore
