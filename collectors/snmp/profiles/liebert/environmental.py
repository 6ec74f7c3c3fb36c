"""Liebert/Vertiv cooling (LIEBERT-GP-ENVIRONMENTAL-MIB)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

# --- Liebert / Vertiv LIEBERT-GP-ENVIRONMENTAL-MIB -----------------------------------------------
_L = "1.3.6.1.4.1.476.1.42.3.4"
_T = {"allow_negative": True}
_TEMP = f"{_L}.1.3.3.1"             # lgpEnvTemperatureTableDegC entry
_DESCR = f"{_TEMP}.2"               # an OID naming the measurement point
# lgpEnvTemperatureWellKnown descr OIDs: air for a CRAH, fluid for a chiller.
_RETURN = ("1.3.6.1.4.1.476.1.42.3.4.1.1.2", "1.3.6.1.4.1.476.1.42.3.4.1.1.24")
_SUPPLY = ("1.3.6.1.4.1.476.1.42.3.4.1.1.3", "1.3.6.1.4.1.476.1.42.3.4.1.1.20")
_HUM = f"{_L}.2.2.3.1"
LIEBERT_ENV = Profile(
    name="liebert_env", aliases=('liebert', 'liebert_gp'), kind="cooling",
    description="Liebert/Vertiv CRAC/CRAH (LIEBERT-GP-ENVIRONMENTAL-MIB)",
    sys_object_ids=("1.3.6.1.4.1.476.1.42",),
    readings=(
        # Tenths first (more precise), whole degrees as the fallback (older cards lack .50).
        column(f"{_TEMP}.50", "cooling", "return_temp_c", 0.1, agg="first", match_column=(_DESCR, _RETURN), **_T),
        column(f"{_TEMP}.3", "cooling", "return_temp_c", 1.0, agg="first", match_column=(_DESCR, _RETURN),
               fallback=True, **_T),
        column(f"{_TEMP}.50", "cooling", "supply_temp_c", 0.1, agg="first", match_column=(_DESCR, _SUPPLY), **_T),
        column(f"{_TEMP}.3", "cooling", "supply_temp_c", 1.0, agg="first", match_column=(_DESCR, _SUPPLY),
               fallback=True, **_T),
        # The set point of the controlled point: the real Liebert PEX (snmpsim-data) controls on
        # return air (23 °C there); units controlling on supply publish it on the supply row.
        column(f"{_TEMP}.53", "cooling", "setpoint_c", 0.1, agg="first", match_column=(_DESCR, _RETURN), **_T),
        column(f"{_TEMP}.6", "cooling", "setpoint_c", 1.0, agg="first", match_column=(_DESCR, _RETURN),
               fallback=True, **_T),
        column(f"{_TEMP}.53", "cooling", "setpoint_c", 0.1, agg="first", match_column=(_DESCR, _SUPPLY),
               fallback=True, **_T),
        column(f"{_TEMP}.6", "cooling", "setpoint_c", 1.0, agg="first", match_column=(_DESCR, _SUPPLY),
               fallback=True, **_T),
        column(f"{_HUM}.3", "cooling", "humidity_pct", 1.0, agg="first"),
        scalar(f"{_L}.3.16.0", "cooling", "fan_pct", 1.0),                 # lgpEnvStateFanCapacity %
        # The card publishes no kW: cooling capacity % x the unit's rated capacity (config).
        scalar(f"{_L}.3.9.0", "cooling", "cooling_kw", 0.01, device_factor="capacity_kw"),
    ),
)

PROFILES = (LIEBERT_ENV,)
