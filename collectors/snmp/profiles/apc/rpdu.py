"""APC / Schneider rack PDUs (PowerNet-MIB)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

# --- APC / Schneider PowerNet-MIB rPDU2 (.318.1.1.26) ------------------------------------------
_R = "1.3.6.1.4.1.318.1.1.26"
APC_RPDU2 = Profile(
    name="apc_rpdu2", aliases=('apc_pdu',), kind="pdu", description="APC/Schneider rack PDU (PowerNet-MIB rPDU2)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.4",),
    identity=(f"{_R}.4.3.1",),   # rPDU2DeviceStatusEntry
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
        # Rack probes plugged into the PDU (rPDU2SensorTempHumidity): inlet unless the probe's
        # name (rPDU2SensorTempHumidityStatusName, .3) says rear/exhaust/outlet.
        column(f"{_R}.10.2.2.1.8", "env", "temp_c", 0.1, index_tags={"sensor": -1},
               allow_negative=True, tags={"position": "inlet"}, position_from=f"{_R}.10.2.2.1.3"),
        column(f"{_R}.10.2.2.1.10", "env", "humidity_pct", 1.0, index_tags={"sensor": -1},
               tags={"position": "inlet"}, position_from=f"{_R}.10.2.2.1.3"),
    ),
)

# --- APC PowerNet-MIB rPDU (.318.1.1.12): first-generation AP79xx/AP78xx -----------------------
# Units without the rPDU2 branch publish only these; rPDU2 units publish both (rPDU2 is read).
_L = "1.3.6.1.4.1.318.1.1.12"
_LOAD = f"{_L}.2.3.1.1"      # rPDULoadStatusEntry: one row per phase, then one per bank
_PHASE_ROWS = {"match_column": (f"{_LOAD}.5", (0,)), "tag_from": {"phase": f"{_LOAD}.4"}}
_BANK_ROWS = {"match_column": (f"{_LOAD}.5", tuple(range(1, 65))), "tag_from": {"breaker": f"{_LOAD}.5"}}
APC_RPDU = Profile(
    name="apc_rpdu", aliases=("apc_rpdu1", "apc_ap79xx"), kind="pdu",
    description="APC rack PDU, first generation (PowerNet-MIB rPDU)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.4",),
    identity=(_LOAD,),
    readings=(
        scalar(f"{_L}.1.16.0", "pdu", "power_w", 1.0),                 # rPDUIdentDevicePowerWatts, W
        scalar(f"{_L}.1.18.0", "pdu", "apparent_power_va", 1.0),       # rPDUIdentDevicePowerVA, VA
        scalar(f"{_L}.1.17.0", "pdu", "power_factor", 0.001),          # rPDUIdentDevicePowerFactor, 1/1000
        scalar(f"{_L}.1.15.0", "pdu", "voltage_v", 1.0),               # rPDUIdentDeviceLinetoLineVoltage, V
        # rPDULoadStatusLoad (tenths of A): phase rows have bank number 0, bank rows a bank number.
        column(f"{_LOAD}.2", "pdu_phase", "current_a", 0.1, **_PHASE_ROWS),
        column(f"{_LOAD}.2", "pdu", "current_a", 0.1, agg="sum", match_column=(f"{_LOAD}.5", (0,))),
        column(f"{_LOAD}.2", "pdu_breaker", "current_a", 0.1, **_BANK_ROWS),
        # rPDULoadPhaseConfigOverloadThreshold, rPDULoadBankConfigOverloadThreshold
        column(f"{_L}.2.2.1.1.4", "pdu_phase", "breaker_a", 1.0, index_tags={"phase": -1}),
        column(f"{_L}.2.4.1.1.4", "pdu_breaker", "breaker_a", 1.0, index_tags={"breaker": -1}),
        column(f"{_L}.3.5.1.1.7", "pdu_outlet", "current_a", 0.1, index_tags={"outlet": -1}),  # rPDUOutletStatusLoad
    ),
)

# rPDU2 first: a unit answering both branches is read from the richer one.
PROFILES = (APC_RPDU2, APC_RPDU)
