"""ServerTech PRO1/PRO2 (Sentry4-MIB)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

# --- ServerTech Sentry4-MIB (.1718.4.1) --------------------------------------------------------
_S = "1.3.6.1.4.1.1718.4.1"
# Rows are unit.cord.<phase|branch|outlet>: unit 1 is the master tower, 2.. link towers; cord 1 the
# first input cord. A link tower's rows are tagged by the whole index (see spec.Reading.unit_index).
_UNIT = {0: 1, 1: 1}
SENTRY4 = Profile(
    name="sentry4", aliases=('servertech', 'sentry'), kind="pdu", description="ServerTech PRO2 (Sentry4-MIB)",
    sys_object_ids=("1.3.6.1.4.1.1718.4",),
    readings=(
        # Input cords (unit.cord) summed into the PDU.
        column(f"{_S}.3.3.1.3", "pdu", "power_w", 1.0, agg="sum"),
        column(f"{_S}.3.3.1.5", "pdu", "apparent_power_va", 1.0, agg="sum"),
        column(f"{_S}.3.3.1.8", "pdu", "power_factor", 0.01, agg="mean"),
        column(f"{_S}.3.3.1.10", "pdu", "energy_kwh", 0.1, agg="sum"),      # tenths of kWh
        column(f"{_S}.5.3.1.3", "pdu_phase", "voltage_v", 0.1, index_tags={"phase": -1}, unit_index=_UNIT),
        column(f"{_S}.5.3.1.6", "pdu_phase", "current_a", 0.01, index_tags={"phase": -1}, unit_index=_UNIT),
        column(f"{_S}.5.3.1.8", "pdu_phase", "power_w", 1.0, index_tags={"phase": -1}, unit_index=_UNIT),
        column(f"{_S}.5.3.1.9", "pdu_phase", "apparent_power_va", 1.0, index_tags={"phase": -1}, unit_index=_UNIT),
        column(f"{_S}.5.3.1.10", "pdu_phase", "power_factor", 0.01, index_tags={"phase": -1}, unit_index=_UNIT),
        column(f"{_S}.5.3.1.13", "pdu_phase", "energy_kwh", 0.1, index_tags={"phase": -1}, unit_index=_UNIT),
        column(f"{_S}.7.3.1.3", "pdu_breaker", "current_a", 0.01, index_tags={"breaker": -1}, unit_index=_UNIT),
        column(f"{_S}.7.3.1.5", "pdu_breaker", "load_pct", 0.1, index_tags={"breaker": -1}, unit_index=_UNIT),
        column(f"{_S}.8.3.1.3", "pdu_outlet", "current_a", 0.01, index_tags={"outlet": -1}, unit_index=_UNIT),
        column(f"{_S}.8.3.1.6", "pdu_outlet", "voltage_v", 0.1, index_tags={"outlet": -1}, unit_index=_UNIT),
        column(f"{_S}.8.3.1.7", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}, unit_index=_UNIT),
        column(f"{_S}.8.3.1.10", "pdu_outlet", "power_factor", 0.01, index_tags={"outlet": -1}, unit_index=_UNIT),
        column(f"{_S}.8.3.1.14", "pdu_outlet", "energy_kwh", 0.001, index_tags={"outlet": -1}, unit_index=_UNIT),  # Wh
        # Temperature (tenths °C, -410 = absent) and humidity (%, -1 = absent) probes.
        column(f"{_S}.9.3.1.1", "env", "temp_c", 0.1, index_tags={"sensor": -1}, unit_index={0: 1}, allow_negative=True,
               sentinels=(-410, -1), tags={"position": "inlet"}),
        column(f"{_S}.10.3.1.1", "env", "humidity_pct", 1.0, index_tags={"sensor": -1}, unit_index={0: 1},
               tags={"position": "inlet"}),
    ),
)

PROFILES = (SENTRY4,)
