"""Features for the PUE model, read from the store (``facility`` and ``cooling`` measurements).

One row per time bucket (default 5 min, the Google 2014 resolution). Features are things the
optimizer can *set or observe before acting* — IT load, cooling set points, weather, time —
never outcomes of the plant (cooling power, fan speed), which would leak the target.

Target: ``pue = mean(total_power_w) / mean(it_power_w)`` per bucket (a ratio of energies,
never a mean of instantaneous PUEs).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

FEATURES = [
    "it_power_kw",  # IT load, kW
    "outdoor_temp_c",  # dry bulb, °C
    "outdoor_rh_pct",  # relative humidity, %
    "supply_setpoint_c",  # mean air supply set point of CRAHs / in-row coolers, °C
    "chw_setpoint_c",  # chilled-water supply set point, °C
    "hour_sin", "hour_cos",  # local time of day
    "doy_sin", "doy_cos",  # season
]
TARGET = "pue"


def time_features(times_ns: np.ndarray, tz: str = "UTC") -> dict[str, np.ndarray]:
    """Cyclic local time-of-day and day-of-year features."""
    idx = pd.to_datetime(np.asarray(times_ns, dtype="int64"), utc=True).tz_convert(ZoneInfo(tz))
    hour = idx.hour.to_numpy() + idx.minute.to_numpy() / 60.0
    doy = idx.day_of_year.to_numpy().astype(float)
    return {
        "hour_sin": np.sin(2 * np.pi * hour / 24), "hour_cos": np.cos(2 * np.pi * hour / 24),
        "doy_sin": np.sin(2 * np.pi * doy / 365.25), "doy_cos": np.cos(2 * np.pi * doy / 365.25),
    }


def build_frame(store, start_ns: int, end_ns: int, *, every_s: float = 300.0, tz: str = "UTC",
                site: str | None = None) -> pd.DataFrame:
    """Feature rows (+ target) for [start_ns, end_ns), bucketed by *every_s* seconds.

    Index: bucket start (UTC ns). Missing readings stay NaN (the regressor handles them)."""
    where = {"site": site} if site else None
    fac = store.query("facility", ["total_power_w", "it_power_w", "outdoor_temp_c", "outdoor_rh_pct"],
                      start_ns, end_ns, every_s=every_s, where=where)
    if not fac:
        return pd.DataFrame(columns=FEATURES + [TARGET])
    s = fac[0]
    df = pd.DataFrame({k: pd.Series(v, index=s.times_ns, dtype=float) for k, v in s.values.items()})
    # per unit, then the plain mean over units — exactly what current_row() computes live
    cool = store.query("cooling", ["setpoint_c"], start_ns, end_ns, every_s=every_s, group_by=["unit", "kind"],
                       where=where)
    air, chw = [], []
    for c in cool:
        col = pd.Series(c.values.get("setpoint_c", []), index=c.times_ns, dtype=float)
        (chw if c.tags.get("kind") == "chiller" else air).append(col)
    df["supply_setpoint_c"] = pd.concat(air, axis=1).mean(axis=1) if air else np.nan
    df["chw_setpoint_c"] = pd.concat(chw, axis=1).mean(axis=1) if chw else np.nan
    df["it_power_kw"] = df["it_power_w"] / 1000.0
    df[TARGET] = df["total_power_w"] / df["it_power_w"]
    for k, v in time_features(df.index.to_numpy(), tz).items():
        df[k] = v
    for col in FEATURES:
        if col not in df:
            df[col] = np.nan
    df = df[np.isfinite(df[TARGET]) & (df["it_power_w"] > 0)]
    return df[FEATURES + [TARGET]].sort_index()


def current_row(store, now_ns: int, *, tz: str = "UTC", site: str | None = None,
                max_age_s: float = 600.0) -> tuple[dict[str, float], float]:
    """Latest feature values and the age (s) of the oldest input used. Missing → NaN."""
    where = {"site": site} if site else None
    since = now_ns - int(max_age_s * 1e9)
    row = {f: float("nan") for f in FEATURES}
    ages = []
    for p in store.latest("facility", where=where, since_ns=since):
        row["it_power_kw"] = float(p.fields.get("it_power_w", float("nan"))) / 1000.0
        row["outdoor_temp_c"] = float(p.fields.get("outdoor_temp_c", float("nan")))
        row["outdoor_rh_pct"] = float(p.fields.get("outdoor_rh_pct", float("nan")))
        ages.append((now_ns - p.time_ns) / 1e9)
    air, chw = [], []
    for p in store.latest("cooling", where=where, since_ns=since):
        sp = p.fields.get("setpoint_c")
        if sp is not None:
            (chw if p.tags.get("kind") == "chiller" else air).append(float(sp))
    if air:
        row["supply_setpoint_c"] = float(np.mean(air))
    if chw:
        row["chw_setpoint_c"] = float(np.mean(chw))
    row.update({k: float(v[0]) for k, v in time_features(np.array([now_ns]), tz).items()})
    return row, (max(ages) if ages else float("inf"))


def utc_iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
