"""APC InRow cooling (PowerNet-MIB airIR)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, scalar

# --- APC InRow (PowerNet-MIB airIR) --------------------------------------------------------------
_RC = "1.3.6.1.4.1.318.1.1.13.3.2.2.2"   # airIRRCUnitStatus.N.0 (chilled-water InRow RC)
_RP = "1.3.6.1.4.1.318.1.1.13.3.3.1.2.2"  # airIRRP100UnitStatus.N.0 (DX InRow RP)
_T = {"allow_negative": True}
APC_INROW = Profile(
    name="apc_inrow", aliases=('inrow', 'apc_airir'), kind="cooling", description="APC InRow RC/RP (PowerNet-MIB airIRRC / airIRRP)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.14",),
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

PROFILES = (APC_INROW,)
