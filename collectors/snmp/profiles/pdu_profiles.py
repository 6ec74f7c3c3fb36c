"""Rack PDU profiles (reference §1). Scales are from the MIB texts and verified on real walks
where a recording exists (APC AP8641/AP8932/AP7902B in snmpsim-data)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

# --- APC / Schneider PowerNet-MIB rPDU2 (.318.1.1.26) ------------------------------------------
_R = "1.3.6.1.4.1.318.1.1.26"
APC_RPDU2 = Profile(
    name="apc_rpdu2", kind="pdu", description="APC/Schneider rack PDU (PowerNet-MIB rPDU2)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.4",),
    readings=(
        # Device row 1 is the PDU itself (row 2.. are daisy-chained NPS units, not polled here).
        scalar(f"{_R}.4.3.1.5.1", "pdu", "power_w", 10.0),            # hundredths of kW
        scalar(f"{_R}.4.3.1.9.1", "pdu", "energy_kwh", 0.1),          # tenths of kWh, resettable
        scalar(f"{_R}.4.3.1.16.1", "pdu", "apparent_power_va", 10.0),  # hundredths of kVA
        scalar(f"{_R}.4.3.1.17.1", "pdu", "power_factor", 0.01),
        column(f"{_R}.6.3.1.5", "pdu_phase", "current_a", 0.1, index_tags={"phase": -1}),
        column(f"{_R}.6.3.1.6", "pdu_phase", "voltage_v", 1.0, index_tags={"phase": -1}),
        column(f"{_R}.6.3.1.7", "pdu_phase", "power_w", 10.0, index_tags={"phase": -1}),
        column(f"{_R}.6.3.1.8", "pdu_phase", "apparent_power_va", 10.0, index_tags={"phase": -1}),
        column(f"{_R}.6.3.1.9", "pdu_phase", "power_factor", 0.01, index_tags={"phase": -1}),
        column(f"{_R}.6.1.1.7", "pdu_phase", "breaker_a", 1.0, index_tags={"phase": -1}),  # overload threshold
        # Total input current: the phase currents summed (the contract's pdu.current_a).
        column(f"{_R}.6.3.1.5", "pdu", "current_a", 0.1, agg="sum"),
        column(f"{_R}.8.3.1.5", "pdu_breaker", "current_a", 0.1, index_tags={"breaker": -1}),
        column(f"{_R}.8.1.1.7", "pdu_breaker", "breaker_a", 1.0, index_tags={"breaker": -1}),
        column(f"{_R}.9.4.3.1.6", "pdu_outlet", "current_a", 0.1, index_tags={"outlet": -1}),
        column(f"{_R}.9.4.3.1.7", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}),
        column(f"{_R}.9.4.3.1.11", "pdu_outlet", "energy_kwh", 0.1, index_tags={"outlet": -1}),
        # Rack inlet probes plugged into the PDU (rPDU2SensorTempHumidity).
        column(f"{_R}.10.2.2.1.8", "env", "temp_c", 0.1, index_tags={"sensor": -1},
               allow_negative=True, tags={"position": "inlet"}),
        column(f"{_R}.10.2.2.1.10", "env", "humidity_pct", 1.0, index_tags={"sensor": -1},
               tags={"position": "inlet"}),
    ),
)

# --- Raritan PDU2-MIB (.13742.6): generic sensor tables, decimal digits per sensor -------------
_X = "1.3.6.1.4.1.13742.6"
# sensorType enum -> (field, scale to SI before decimal digits). activeEnergy is in Wh.
_RARITAN_TYPES = {1: ("current_a", 1.0), 4: ("voltage_v", 1.0), 5: ("power_w", 1.0),
                  6: ("apparent_power_va", 1.0), 7: ("power_factor", 1.0), 8: ("energy_kwh", 0.001)}


def _raritan(table: str, digits: str, measurement: str, tag: str | None, tag_pos: int, type_pos: int,
             digits_index: tuple[int, ...] | None = None, agg: str | None = None) -> list:
    out = []
    for sensor_type, (field_, scale) in _RARITAN_TYPES.items():
        out.append(column(
            f"{table}.4", measurement, field_, scale,
            index_tags={tag: tag_pos} if tag else {}, match_index={type_pos: sensor_type},
            # isAvailable (.2) is a TruthValue: 1 true.
            match_column=(f"{table}.2", (1,)), digits_oid=digits, digits_index=digits_index,
            agg=("sum" if field_ in ("power_w", "apparent_power_va", "energy_kwh", "current_a") else "mean")
            if agg else None))
    return out


RARITAN_PDU2 = Profile(
    name="raritan_pdu2", kind="pdu", description="Raritan PX2/PX3 (PDU2-MIB), also Legrand, ServerTech PRO3X",
    sys_object_ids=("1.3.6.1.4.1.13742.6",),
    readings=tuple(
        # Inlet sensors: index pduId.inletId.sensorType -> the PDU as a whole (inlets summed).
        _raritan(f"{_X}.5.2.3.1", f"{_X}.3.3.4.1.7", "pdu", None, 0, 2, agg="whole")
        # Inlet poles (lines): pduId.inletId.pole.sensorType; digits as the inlet's (same type).
        + _raritan(f"{_X}.5.2.4.1", f"{_X}.3.3.4.1.7", "pdu_phase", "phase", 2, 3, digits_index=(0, 1, 3))
        # Over-current protectors: pduId.ocpId.sensorType.
        + _raritan(f"{_X}.5.3.3.1", f"{_X}.3.4.4.1.7", "pdu_breaker", "breaker", 1, 2)
        # Outlets: pduId.outletId.sensorType.
        + _raritan(f"{_X}.5.4.3.1", f"{_X}.3.5.4.1.7", "pdu_outlet", "outlet", 1, 2)
    ),
)

# --- ServerTech Sentry4-MIB (.1718.4.1) --------------------------------------------------------
_S = "1.3.6.1.4.1.1718.4.1"
SENTRY4 = Profile(
    name="sentry4", kind="pdu", description="ServerTech PRO2 (Sentry4-MIB)",
    sys_object_ids=("1.3.6.1.4.1.1718.4",),
    readings=(
        # Input cords (unit.cord) summed into the PDU.
        column(f"{_S}.3.3.1.3", "pdu", "power_w", 1.0, agg="sum"),
        column(f"{_S}.3.3.1.5", "pdu", "apparent_power_va", 1.0, agg="sum"),
        column(f"{_S}.3.3.1.8", "pdu", "power_factor", 0.01, agg="mean"),
        column(f"{_S}.3.3.1.10", "pdu", "energy_kwh", 0.1, agg="sum"),      # tenths of kWh
        column(f"{_S}.5.3.1.3", "pdu_phase", "voltage_v", 0.1, index_tags={"phase": -1}),
        column(f"{_S}.5.3.1.6", "pdu_phase", "current_a", 0.01, index_tags={"phase": -1}),
        column(f"{_S}.5.3.1.8", "pdu_phase", "power_w", 1.0, index_tags={"phase": -1}),
        column(f"{_S}.5.3.1.9", "pdu_phase", "apparent_power_va", 1.0, index_tags={"phase": -1}),
        column(f"{_S}.5.3.1.10", "pdu_phase", "power_factor", 0.01, index_tags={"phase": -1}),
        column(f"{_S}.5.3.1.13", "pdu_phase", "energy_kwh", 0.1, index_tags={"phase": -1}),
        column(f"{_S}.7.3.1.3", "pdu_breaker", "current_a", 0.01, index_tags={"breaker": -1}),
        column(f"{_S}.7.3.1.5", "pdu_breaker", "load_pct", 0.1, index_tags={"breaker": -1}),
        column(f"{_S}.8.3.1.3", "pdu_outlet", "current_a", 0.01, index_tags={"outlet": -1}),
        column(f"{_S}.8.3.1.6", "pdu_outlet", "voltage_v", 0.1, index_tags={"outlet": -1}),
        column(f"{_S}.8.3.1.7", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}),
        column(f"{_S}.8.3.1.10", "pdu_outlet", "power_factor", 0.01, index_tags={"outlet": -1}),
        column(f"{_S}.8.3.1.14", "pdu_outlet", "energy_kwh", 0.001, index_tags={"outlet": -1}),  # Wh
        # Temperature (tenths °C, -410 = absent) and humidity (%, -1 = absent) probes.
        column(f"{_S}.9.3.1.1", "env", "temp_c", 0.1, index_tags={"sensor": -1}, allow_negative=True,
               sentinels=(-410, -1), tags={"position": "inlet"}),
        column(f"{_S}.10.3.1.1", "env", "humidity_pct", 1.0, index_tags={"sensor": -1},
               tags={"position": "inlet"}),
    ),
)

# --- Eaton EATON-EPDU-MIB (.534.6.6.7), G3/Marlin -----------------------------------------------
_E = "1.3.6.1.4.1.534.6.6.7"
# inputWatts k = 4 is the 3-phase total on Marlin, not a phase: only k = 1..3 are read.
_K = {2: (1, 2, 3)}
EATON_EPDU = Profile(
    name="eaton_epdu", kind="pdu", description="Eaton G3/Marlin ePDU (EATON-EPDU-MIB)",
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

# --- Vertiv / Geist (GEIST-IMD / VERTIV-V5-MIB, .21239.5.2.3) -----------------------------------
_G = "1.3.6.1.4.1.21239.5.2.3"
GEIST = Profile(
    name="geist", kind="pdu", description="Vertiv/Geist rack PDU (VERTIV-V5-MIB)",
    sys_object_ids=("1.3.6.1.4.1.21239.5.2", "1.3.6.1.4.1.21239.2"),
    readings=(
        column(f"{_G}.1.1.9", "pdu", "power_w", 1.0, agg="sum"),
        column(f"{_G}.1.1.10", "pdu", "apparent_power_va", 1.0, agg="sum"),
        column(f"{_G}.1.1.11", "pdu", "power_factor", 0.01, agg="mean"),          # percent
        column(f"{_G}.1.1.12", "pdu", "energy_kwh", 0.001, agg="sum"),            # Wh, capped gauge
        column(f"{_G}.2.1.4", "pdu_phase", "voltage_v", 0.1, index_tags={"phase": -1}),    # decivolts
        column(f"{_G}.2.1.8", "pdu_phase", "current_a", 0.01, index_tags={"phase": -1}),   # centiamps
        column(f"{_G}.2.1.12", "pdu_phase", "power_w", 1.0, index_tags={"phase": -1}),
        column(f"{_G}.2.1.13", "pdu_phase", "apparent_power_va", 1.0, index_tags={"phase": -1}),
        column(f"{_G}.2.1.14", "pdu_phase", "power_factor", 0.01, index_tags={"phase": -1}),
        column(f"{_G}.2.1.15", "pdu_phase", "energy_kwh", 0.001, index_tags={"phase": -1}),
        column(f"{_G}.3.1.4", "pdu_breaker", "current_a", 0.01, index_tags={"breaker": -1}),
        column(f"{_G}.3.1.12", "pdu_breaker", "power_w", 1.0, index_tags={"breaker": -1}),
        column(f"{_G}.6.1.8", "pdu_outlet", "current_a", 0.01, index_tags={"outlet": -1}),
        column(f"{_G}.6.1.12", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}),
        column(f"{_G}.6.1.15", "pdu_outlet", "energy_kwh", 0.001, index_tags={"outlet": -1}),
    ),
)

PROFILES = (APC_RPDU2, RARITAN_PDU2, SENTRY4, EATON_EPDU, GEIST)
