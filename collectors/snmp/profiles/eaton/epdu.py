"""Eaton ePDU G3/Marlin (EATON-EPDU-MIB)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

# --- Eaton EATON-EPDU-MIB (.534.6.6.7), G3/Marlin -----------------------------------------------
_E = "1.3.6.1.4.1.534.6.6.7"
# inputWatts k = 4 is the 3-phase total on Marlin, not a phase: only k = 1..3 are read.
_K = {2: (1, 2, 3)}
EATON_EPDU = Profile(
    name="eaton_epdu", aliases=('eaton_pdu',), kind="pdu", description="Eaton G3/Marlin ePDU (EATON-EPDU-MIB)",
    sys_object_ids=("1.3.6.1.4.1.534.6.6.7",),
    readings=(
        column(f"{_E}.3.2.1.3", "pdu_phase", "voltage_v", 0.001, index_tags={"phase": -1}),     # mV
        column(f"{_E}.3.3.1.4", "pdu_phase", "current_a", 0.001, index_tags={"phase": -1}),     # mA
        column(f"{_E}.3.3.1.11", "pdu_phase", "load_pct", 1.0, index_tags={"phase": -1}),
        column(f"{_E}.3.4.1.4", "pdu_phase", "power_w", 1.0, index_tags={"phase": -1}, match_index=_K),
        column(f"{_E}.3.4.1.3", "pdu_phase", "apparent_power_va", 1.0, index_tags={"phase": -1}, match_index=_K),
        column(f"{_E}.3.4.1.5", "pdu_phase", "energy_kwh", 0.001, index_tags={"phase": -1}, match_index=_K),   # Wh
        column(f"{_E}.3.4.1.4", "pdu", "power_w", 1.0, agg="sum", match_index=_K),
        column(f"{_E}.3.4.1.5", "pdu", "energy_kwh", 0.001, agg="sum", match_index=_K),
        column(f"{_E}.3.4.1.3", "pdu", "apparent_power_va", 1.0, agg="sum", match_index=_K),
        column(f"{_E}.5.4.1.3", "pdu_breaker", "current_a", 0.001, index_tags={"breaker": -1}),
        column(f"{_E}.5.4.1.10", "pdu_breaker", "load_pct", 1.0, index_tags={"breaker": -1}),
        column(f"{_E}.5.5.1.3", "pdu_breaker", "power_w", 1.0, index_tags={"breaker": -1}),
        column(f"{_E}.6.4.1.3", "pdu_outlet", "current_a", 0.001, index_tags={"outlet": -1}),
        column(f"{_E}.6.5.1.3", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}),
        column(f"{_E}.6.5.1.4", "pdu_outlet", "energy_kwh", 0.001, index_tags={"outlet": -1}),
    ),
)

PROFILES = (EATON_EPDU,)
