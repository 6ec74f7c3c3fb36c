"""Features for the PUE model, read from the store (``facility`` and ``cooling`` measurements).

One row per time bucket (default 5 min, the Google 2014 resolution). Features are things the
optimizer can *set or observe before acting* — IT load, cooling set points, weather, time — and,
where a site's plant reports them (the ``cooling`` measurement), its state: economizer share,
chiller stages running, air-unit and cooling-tower fan speeds (:data:`PLANT_FEATURES`, Google
2014's "plant state"). Never the plant's power (cooling power, PUE parts): that is the target.
Fan speeds follow the heat, so pricing a different IT load scales them with it
(:data:`LOAD_DRIVEN`, used by ``PueModel.facility_power_w``). A site without them trains on
:data:`FEATURES` alone (absent columns are all NaN and left out).

Target: ``pue = mean(total_power_w) / mean(it_power_w)`` per bucket (a ratio of energies,
never a mean of instantaneous PUEs).
"""

from __future__ import annotations

from datetime import UTC, datetime
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
# Plant state, where the site's cooling units report it (NaN where they do not).
PLANT_FEATURES = [
    "economizer_pct",  # share of the chilled-water load carried by free cooling, % (chiller plants)
    "chillers_running",  # chiller units carrying load (the plant's stages)
    "air_fan_pct",  # mean fan speed of the air units (CRAH, in-row), %
    "tower_fan_pct",  # mean cooling-tower / condenser fan speed of the chiller plants, %
]
# Plant outputs that follow the heat load: scaled with the IT load when pricing another load.
LOAD_DRIVEN = ("air_fan_pct", "tower_fan_pct")
TARGET = "pue"
MEASURED_PUE = "measured_pue"  # in current_row only: the metered PUE now (the residual check)


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
        return pd.DataFrame(columns=FEATURES + PLANT_FEATURES + [TARGET])
    s = fac[0]
    df = pd.DataFrame({k: pd.Series(v, index=s.times_ns, dtype=float) for k, v in s.values.items()})
    # per unit, then the plain mean over units — exactly what current_row() computes live
    cool = store.query("cooling", ["setpoint_c", "fan_pct", "economizer_pct", "cooling_kw"], start_ns, end_ns,
                       every_s=every_s, group_by=["unit", "kind"], where=where)
    cols: dict[str, list[pd.Series]] = {}
    for c in cool:
        plant = "chiller" if c.tags.get("kind") == "chiller" else "air"
        for f in ("setpoint_c", "fan_pct", "economizer_pct", "cooling_kw"):
            v = c.values.get(f)
            if v is not None:
                cols.setdefault(f"{plant}:{f}", []).append(pd.Series(v, index=c.times_ns, dtype=float))

    def mean_of(key):
        return pd.concat(cols[key], axis=1).mean(axis=1) if key in cols else np.nan

    df["supply_setpoint_c"] = mean_of("air:setpoint_c")
    df["chw_setpoint_c"] = mean_of("chiller:setpoint_c")
    df["economizer_pct"] = mean_of("chiller:economizer_pct")
    df["air_fan_pct"] = mean_of("air:fan_pct")
    df["tower_fan_pct"] = mean_of("chiller:fan_pct")
    if "chiller:cooling_kw" in cols:
        df["chillers_running"] = (pd.concat(cols["chiller:cooling_kw"], axis=1) > 0).sum(axis=1)
    df["it_power_kw"] = df["it_power_w"] / 1000.0
    df[TARGET] = df["total_power_w"] / df["it_power_w"]
    for k, v in time_features(df.index.to_numpy(), tz).items():
        df[k] = v
    for col in FEATURES + PLANT_FEATURES:
        if col not in df:
            df[col] = np.nan
    df = df[np.isfinite(df[TARGET]) & (df["it_power_w"] > 0)]
    return df[FEATURES + PLANT_FEATURES + [TARGET]].sort_index()


def current_row(store, now_ns: int, *, tz: str = "UTC", site: str | None = None,
                max_age_s: float = 600.0) -> tuple[dict[str, float], float]:
    """Latest feature values and the age (s) of the oldest input used. Missing → NaN."""
    where = {"site": site} if site else None
    since = now_ns - int(max_age_s * 1e9)
    row = {f: float("nan") for f in FEATURES + PLANT_FEATURES + [MEASURED_PUE]}
    ages = []
    nan = float("nan")
    for p in store.latest("facility", where=where, since_ns=since):
        it_w, total_w = float(p.fields.get("it_power_w", nan)), float(p.fields.get("total_power_w", nan))
        row["it_power_kw"] = it_w / 1000.0
        row["outdoor_temp_c"] = float(p.fields.get("outdoor_temp_c", nan))
        row["outdoor_rh_pct"] = float(p.fields.get("outdoor_rh_pct", nan))
        if it_w > 0 and np.isfinite(total_w):
            row[MEASURED_PUE] = total_w / it_w
        ages.append((now_ns - p.time_ns) / 1e9)
    vals: dict[str, list[float]] = {}
    for p in store.latest("cooling", where=where, since_ns=since):
        plant = "chiller" if p.tags.get("kind") == "chiller" else "air"
        for f in ("setpoint_c", "fan_pct", "economizer_pct", "cooling_kw"):
            if p.fields.get(f) is not None:
                vals.setdefault(f"{plant}:{f}", []).append(float(p.fields[f]))
    for key, name in (("air:setpoint_c", "supply_setpoint_c"), ("chiller:setpoint_c", "chw_setpoint_c"),
                      ("chiller:economizer_pct", "economizer_pct"), ("air:fan_pct", "air_fan_pct"),
                      ("chiller:fan_pct", "tower_fan_pct")):
        if key in vals:
            row[name] = float(np.mean(vals[key]))
    if "chiller:cooling_kw" in vals:
        row["chillers_running"] = float(sum(v > 0 for v in vals["chiller:cooling_kw"]))
    row.update({k: float(v[0]) for k, v in time_features(np.array([now_ns]), tz).items()})
    return row, (max(ages) if ages else float("inf"))


def utc_iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
