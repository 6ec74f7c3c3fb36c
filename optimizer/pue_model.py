"""PUE model: a scikit-learn regressor of PUE on IT load, cooling set points, weather and time.

Google's 2014 template (reference §1.1: IT load + plant state + weather → PUE), with gradient
boosting instead of a neural network (tabular, few features, no scaling, NaN-tolerant).

- Evaluated on a **time-ordered hold-out** (the last month when the window spans ≥ 2 months,
  else the last 20 %): never a random split, which would leak neighbouring 5-min buckets.
- Scores: MAE and MAPE on PUE, plus MAE on the overhead ``PUE − 1`` (at PUE 1.1 an MAE of
  0.004 is 4 % of the overhead, reference §1.1).
- Persisted with joblib together with its feature list, training window, scores and the
  range of every feature seen in training. :meth:`PueModel.out_of_range` is the detector of
  data the model was not trained on (the optimizer then falls back to conservative caps):
  1. a feature outside its training range (± 5 % of the span), or missing where training always
     had it — names that feature (time features are cyclic and never out of range);
  2. the row as a whole far from the training data: the Mahalanobis distance of its plant and
     weather features (time features left out: a new hour is not a new plant) above the
     99.9th percentile of the training rows' distances × 1.5 — ``joint:<feature>`` names the
     feature that contributes most. A plant whose fans or free cooling answer the same load
     and weather differently is caught here though each value alone is in range;
  3. the metered PUE of the row (``measured_pue``, from :func:`~optimizer.features.current_row`)
     off the prediction by more than 3 × the hold-out's 99th-percentile relative error (at
     least 2 %): ``residual``. Meter noise stays well inside that; a different plant does not.
- Pricing a candidate action: facility W = IT W × predicted PUE (:meth:`facility_power_w`),
  the load-driven plant features (fan speeds) scaled with the IT load.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from optimizer.features import FEATURES, LOAD_DRIVEN, MEASURED_PUE, PLANT_FEATURES, TARGET

MONTH_NS = int(30 * 86400 * 1e9)
RANGE_MARGIN = 0.05
JOINT_QUANTILE, JOINT_FACTOR = 0.999, 1.5  # Mahalanobis threshold: training quantile × factor
RESIDUAL_FACTOR, RESIDUAL_MIN = 3.0, 0.02  # residual threshold: × hold-out q99 relative error, floor
TIME_FEATURES = ("hour_sin", "hour_cos", "doy_sin", "doy_cos")
FORMAT_VERSION = 1


@dataclass
class PueModel:
    estimator: HistGradientBoostingRegressor
    features: list[str]
    window_ns: tuple[int, int]  # training data [start, end)
    holdout_ns: tuple[int, int]  # hold-out [start, end)
    scores: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    n_train: int = 0
    n_holdout: int = 0
    meta: dict = field(default_factory=dict)
    # the joint detector (features, mean, inverse covariance, threshold) and the residual
    # threshold; None in a model saved before they existed (then only the range check runs)
    joint: dict | None = None
    residual_max: float | None = None

    def predict(self, rows: pd.DataFrame | list[dict] | dict) -> np.ndarray:
        """Predicted PUE per row (rows carry :data:`FEATURES`)."""
        if isinstance(rows, dict):
            rows = [rows]
        X = pd.DataFrame(rows)
        for f in self.features:
            if f not in X:
                X[f] = np.nan
        with threadpool_limits(limits=1):
            return np.maximum(self.estimator.predict(X[self.features].astype(float)), 1.0)

    def facility_power_w(self, row: dict, it_power_w: float) -> tuple[float, float]:
        """(facility W, PUE) predicted for *row* with its IT load replaced by *it_power_w*; fan
        speeds, which follow the heat, scale with the IT load (capped at 100 %)."""
        cand = dict(row)
        now_kw = row.get("it_power_kw")
        cand["it_power_kw"] = it_power_w / 1000.0
        if now_kw is not None and np.isfinite(now_kw) and now_kw > 0:
            for f in LOAD_DRIVEN:
                v = cand.get(f)
                if v is not None and np.isfinite(v):
                    cand[f] = min(100.0, v * cand["it_power_kw"] / now_kw)
        pue = float(self.predict(cand)[0])
        return it_power_w * pue, pue

    def out_of_range(self, row: dict) -> list[str]:
        """Why *row* is not data this model knows (empty: it is): features outside the training
        range (± 5 % of its span) or missing where training always had them; else
        ``joint:<feature>`` (far from the training rows as a whole); else ``residual`` (the
        metered PUE in the row is far from the prediction). See the module docstring."""
        out = self._range_check(row)
        if out:
            return out
        joint = getattr(self, "joint", None)
        if joint:
            x = np.array([row.get(f, np.nan) for f in joint["features"]], dtype=float)
            if np.all(np.isfinite(x)):
                z = (x - joint["mean"]) / joint["scale"]
                contrib = z * (joint["inv_cov"] @ z)
                if float(contrib.sum()) > joint["threshold"]:
                    return [f"joint:{joint['features'][int(np.argmax(contrib))]}"]
        limit = getattr(self, "residual_max", None)
        measured = row.get(MEASURED_PUE)
        if limit is not None and measured is not None and np.isfinite(measured) and measured > 0:
            if abs(float(self.predict(row)[0]) - measured) / measured > limit:
                return ["residual"]
        return []

    def _range_check(self, row: dict) -> list[str]:
        out = []
        for f in self.features:
            if f in TIME_FEATURES:  # cyclic: a new hour or season is not a new plant (the weather is checked)
                continue
            lo, hi = self.ranges.get(f, (-math.inf, math.inf))
            v = row.get(f)
            if v is None or not np.isfinite(v):
                if np.isfinite(lo):
                    out.append(f)
                continue
            # 5 % of the span, and never less than float noise (a set point constant in
            # training is in range at exactly that value, out of range at any other)
            pad = max(RANGE_MARGIN * (hi - lo), 1e-6 * (1.0 + abs(hi)))
            if v < lo - pad or v > hi + pad:
                out.append(f)
        return out

    def save(self, path: str | Path) -> Path:
        """Write the model atomically (a reader never sees half a model), mode 0600: loading a
        pickle runs code, so only its owner may write it (:func:`load_model` checks)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600 whatever the umask, under a name no one else can pre-create
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                joblib.dump({"format": FORMAT_VERSION, "model": self}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    def describe(self) -> list[str]:
        from optimizer.features import utc_iso

        s = self.scores
        return [
            f"model      {type(self.estimator).__name__}",
            f"window     {utc_iso(self.window_ns[0])} .. {utc_iso(self.window_ns[1])} ({self.n_train} rows)",
            f"hold-out   {utc_iso(self.holdout_ns[0])} .. {utc_iso(self.holdout_ns[1])} ({self.n_holdout} rows, time-ordered)",
            f"MAE        {s.get('mae', float('nan')):.4f} PUE",
            f"MAPE       {100 * s.get('mape', float('nan')):.3f} %",
            f"MAE(PUE-1) {s.get('overhead_mae', float('nan')):.4f} "
            f"({100 * s.get('overhead_mape', float('nan')):.2f} % of overhead)",
            f"features   {', '.join(self.features)}",
        ]


class UnsafeModelFile(Exception):
    """A model file that someone other than its owner could have written (loading it runs code)."""


def check_model_file(path: Path, st: os.stat_result) -> None:
    """Refuse a model file not owned by this user, or writable by group/others, or in a directory
    group/others can write (they could swap the file). Raises UnsafeModelFile naming the fix."""
    if st.st_uid != os.geteuid():
        raise UnsafeModelFile(f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeModelFile(f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                              f"chmod 600 it")
    folder = path.resolve().parent
    dst = folder.stat()
    if dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeModelFile(f"{path}: its directory {folder} is writable by group or others "
                              f"(mode {stat.S_IMODE(dst.st_mode):04o}); use a directory only its owner can write")


def load_model(path: str | Path) -> PueModel | None:
    """The persisted model, or None when there is none, it is of another format, it does not load,
    or the file is not safe to unpickle (:func:`check_model_file`). The optimizer then runs without it."""
    path = Path(path)
    log = logging.getLogger(__name__)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("cannot open the PUE model %s (%s); running without it", path, exc.strerror)
        return None
    with f:
        try:
            # the file we checked is the file we read: fstat of the open descriptor
            check_model_file(path, os.fstat(f.fileno()))
        except UnsafeModelFile as exc:
            log.error("refusing the PUE model: %s; running without it", exc)
            return None
        try:
            blob = joblib.load(f)
        except Exception as exc:  # noqa: BLE001 — truncated, corrupt, or from another version: no model
            log.error("cannot load the PUE model %s (%s: %s); running without it", path, type(exc).__name__, exc)
            return None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT_VERSION:
        return None
    return blob["model"]


def split_time_ordered(frame: pd.DataFrame, holdout_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the past, test on the future: the last month when the data spans ≥ 2 months,
    else the last *holdout_fraction* of the rows in time order."""
    frame = frame.sort_index()
    t = frame.index.to_numpy()
    if t.size and t[-1] - t[0] >= 2 * MONTH_NS:
        cut = t[-1] - MONTH_NS
    else:
        cut = t[int(len(t) * (1 - holdout_fraction))] if len(t) else 0
    return frame[frame.index < cut], frame[frame.index >= cut]


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    err = np.abs(y_pred - y_true)
    over = np.maximum(y_true - 1.0, 1e-6)
    return {
        "mae": float(err.mean()),
        "mape": float((err / y_true).mean()),
        "overhead_mae": float(err.mean()),  # same absolute error, stated against PUE − 1:
        "overhead_mape": float((err / over).mean()),
    }


def train(frame: pd.DataFrame, *, holdout_fraction: float = 0.2, seed: int = 0,
          features: list[str] | None = None) -> PueModel:
    """Fit on the time-ordered training part, score on the hold-out, then refit on all data
    (the scores describe the procedure; the shipped model has seen the newest data).

    Features: :data:`FEATURES` plus the :data:`PLANT_FEATURES` the frame has data for."""
    features = list(features or FEATURES + [f for f in PLANT_FEATURES if f in frame and frame[f].notna().any()])
    frame = frame.dropna(subset=[TARGET])
    if len(frame) < 50:
        raise ValueError(f"need at least 50 rows of facility data to train, have {len(frame)}")
    tr, te = split_time_ordered(frame, holdout_fraction)

    def fit(df):
        est = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.08, max_leaf_nodes=31,
                                            min_samples_leaf=20, l2_regularization=1e-3, random_state=seed)
        # One thread: the data is small, and OpenMP spinning on a shared, busy host is far
        # slower than a single core (measured: 100 s vs 1 s under load).
        with threadpool_limits(limits=1):
            est.fit(df[features].astype(float), df[TARGET].to_numpy())
        return est

    est = fit(tr)
    with threadpool_limits(limits=1):
        pred = np.maximum(est.predict(te[features].astype(float)), 1.0)
    scores = score(te[TARGET].to_numpy(), pred)
    rel = np.abs(pred - te[TARGET].to_numpy()) / te[TARGET].to_numpy()
    residual_max = max(RESIDUAL_FACTOR * float(np.quantile(rel, 0.99)), RESIDUAL_MIN) if rel.size else None
    final = fit(frame)
    ranges = {}
    for f in features:
        col = frame[f].astype(float)
        ranges[f] = (float(col.min()), float(col.max())) if col.notna().any() else (-math.inf, math.inf)
    idx = frame.index.to_numpy()
    step = int(np.median(np.diff(idx))) if len(idx) > 1 else 0
    return PueModel(final, features, (int(idx[0]), int(idx[-1]) + step),
                    (int(te.index[0]), int(te.index[-1]) + step), scores, ranges, len(tr), len(te),
                    joint=fit_joint(frame, features), residual_max=residual_max)


def fit_joint(frame: pd.DataFrame, features: list[str]) -> dict | None:
    """The joint detector: Mahalanobis distance over the features that vary in training,
    time features left out, on standardised values (ridge-regularised covariance)."""
    cols = [f for f in features if f not in TIME_FEATURES and f in frame and frame[f].notna().all()
            and float(frame[f].std()) > 1e-9]
    if len(cols) < 2 or len(frame) < 10 * len(cols):
        return None
    X = frame[cols].to_numpy(float)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    Z = (X - mean) / scale
    inv = np.linalg.inv(np.cov(Z, rowvar=False) + 1e-3 * np.eye(len(cols)))
    d2 = np.einsum("ij,jk,ik->i", Z, inv, Z)
    return {"features": cols, "mean": mean, "scale": scale, "inv_cov": inv,
            "threshold": JOINT_FACTOR * float(np.quantile(d2, JOINT_QUANTILE))}


def evaluate(model: PueModel, frame: pd.DataFrame) -> dict[str, float]:
    """Scores of *model* on *frame* (e.g. data newer than its training window)."""
    frame = frame.dropna(subset=[TARGET])
    if frame.empty:
        return {}
    return score(frame[TARGET].to_numpy(), model.predict(frame))
