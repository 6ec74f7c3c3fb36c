"""APC InRow cooling: the airIRRC/airIRRP objects (PowerNet-MIB airIR) and the generic
``coolingUnit`` tables newer InRow RC/RD/DX firmware publishes instead. Both share the InRow
sysObjectIDs (.318.1.3.14.N); which tables answer decides (identity), airIR first."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, fahrenheit, scalar

# --- APC InRow (PowerNet-MIB airIR) --------------------------------------------------------------
_RC = "1.3.6.1.4.1.318.1.1.13.3.2.2.2"   # airIRRCUnitStatus.N.0 (chilled-water InRow RC)
_RP = "1.3.6.1.4.1.318.1.1.13.3.3.1.2.2"  # airIRRP100UnitStatus.N.0 (DX InRow RP)
_T = {"allow_negative": True}
APC_INROW = Profile(
    name="apc_inrow", aliases=('inrow', 'apc_airir'), kind="cooling",
    description="APC InRow RC/RP (PowerNet-MIB airIRRC / airIRRP)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.14",),
    identity=("1.3.6.1.4.1.318.1.1.13.3.2.2.2", "1.3.6.1.4.1.318.1.1.13.3.3.1.2.2"),  # airIRRC / airIRRP status
    readings=(
        scalar(f"{_RC}.2.0", "cooling", "cooling_kw", 0.1),               # tenths kW
        # airIRRCUnitStatusAirFlowMetric: the MIB text says hundredths of L/s, but real units
        # carry whole L/s (their own CFM object, .4, agrees): L/s -> m³/s.
        scalar(f"{_RC}.5.0", "cooling", "airflow_m3s", 1e-3),
        scalar(f"{_RC}.7.0", "cooling", "rack_inlet_temp_c", 0.1, **_T),
        scalar(f"{_RC}.9.0", "cooling", "supply_temp_c", 0.1, **_T),
        scalar(f"{_RC}.11.0", "cooling", "return_temp_c", 0.1, **_T),
        scalar(f"{_RC}.16.0", "cooling", "fan_pct", 0.1),                 # tenths %
        # RP (DX) units report the same things elsewhere, plus compressor drive power.
        scalar(f"{_RP}.5.0", "cooling", "supply_temp_c", 0.1, fallback=True, **_T),
        scalar(f"{_RP}.7.0", "cooling", "return_temp_c", 0.1, fallback=True, **_T),
        scalar(f"{_RP}.12.0", "cooling", "fan_pct", 0.1, fallback=True),
        scalar(f"{_RP}.14.0", "cooling", "cooling_kw", 0.1, fallback=True),
        scalar(f"{_RP}.36.0", "cooling", "power_w", 100.0),              # tenths kW -> W
    ),
)

# --- PowerNet coolingUnit (.318.1.1.27.1): generic analog status rows ---------------------------
# coolingUnitStatusAnalogEntry, index unit.row: description (.2), value (.3), units (.4) and the
# divisor to the real value (.5). Every reading picks its rows by description AND units: the
# unit publishes each temperature twice (F and C rows) and group totals beside its own.
_CU = "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1"


def _cu(field_: str, descriptions: tuple[str, ...], units: str, scale: float = 1.0, **kw):
    return column(f"{_CU}.3", "cooling", field_, scale, agg="first", divisor_oid=f"{_CU}.5",
                  match_all=((f"{_CU}.2", descriptions), (f"{_CU}.4", (units,))), **kw)


def _cu_temp(field_: str, descriptions: tuple[str, ...]):
    # Celsius rows; the Fahrenheit twin only where a unit publishes no Celsius row.
    return (_cu(field_, descriptions, "C", allow_negative=True),
            _cu(field_, descriptions, "F", allow_negative=True, fallback=True, **fahrenheit()))


# Descriptions differ by product line: InRow RC ("Supply Air Temperature") and DX ("Supply
# Temperature"); group and "Total" rows (the whole InRow group) are never the unit's own.
APC_COOLING_UNIT = Profile(
    name="apc_cooling_unit", aliases=("apc_coolingunit", "apc_inrow_dx"), kind="cooling",
    description="APC InRow RC/RD/DX on the generic PowerNet coolingUnit tables",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.14",),
    identity=(_CU,),
    readings=(
        *_cu_temp("supply_temp_c", ("Supply Air Temperature", "Supply Temperature")),
        *_cu_temp("return_temp_c", ("Return Air Temperature", "Return Temperature")),
        *_cu_temp("rack_inlet_temp_c", ("Unit Maximum Rack Inlet Temperature", "Maximum Rack Inlet Temperature")),
        _cu("cooling_kw", ("Cool Output",), "kW"),
        _cu("airflow_m3s", ("Airflow",), "L/s", 1e-3),                        # L/s -> m³/s
        _cu("airflow_m3s", ("Airflow",), "CFM", 0.00047194745, fallback=True),  # ft³/min -> m³/s
        _cu("fan_pct", ("Fan Speed",), "%"),
        _cu("power_w", ("Unit Power",), "W"),
        _cu("power_w", ("Unit Power",), "kW", 1000.0, fallback=True),
        _cu("humidity_pct", ("Humidity",), "%RH"),
    ),
)

# airIR first: a unit answering both keeps the objects it was first read with.
PROFILES = (APC_INROW, APC_COOLING_UNIT)
