"""ENTITY-SENSOR-MIB (RFC 3433): the generic fallback for PDUs and meters whose vendor MIB we
do not know. Rows are chosen by entPhySensorType; each row's scale and precision are read at
discovery: SI value = value x 10^(3*(scale-9)) x 10^(-precision). operStatus must be ok(1).
There is no energy sensor type, so energy is absent (integrate power downstream)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

ENT_SENSOR = "1.3.6.1.2.1.99.1.1.1"
_VALUE = f"{ENT_SENSOR}.4"
_TYPE = f"{ENT_SENSOR}.1"
# entPhySensorType enum
VOLTS_AC, AMPERES, WATTS, CELSIUS, PERCENT_RH = 3, 5, 6, 8, 9


def _sensor(measurement: str, field_: str, sensor_type: int, **kw):
    return column(_VALUE, measurement, field_, 1.0, entity_scale=True, match_column=(_TYPE, (sensor_type,)),
                  sentinels=(), **kw)


ENTITY_PDU = Profile(
    name="entity_sensor", aliases=('entity', 'entity_sensor_pdu'), kind="pdu",
    description="Generic PDU over ENTITY-SENSOR-MIB (RFC 3433)",
    sys_object_ids=("1.3.6.1.2.1.99",),
    readings=(
        _sensor("pdu", "power_w", WATTS, agg="sum"),
        _sensor("pdu", "current_a", AMPERES, agg="sum"),
        _sensor("pdu", "voltage_v", VOLTS_AC, agg="mean"),
        _sensor("env", "temp_c", CELSIUS, index_tags={"sensor": -1}, allow_negative=True, tags={"position": "inlet"}),
        _sensor("env", "humidity_pct", PERCENT_RH, index_tags={"sensor": -1}, tags={"position": "inlet"}),
    ),
    probe_oid=_TYPE, probe_is_table=True,
)

# A meter: ENTITY-SENSOR watts, plus the EMAN ENERGY-OBJECT-MIB (RFC 7460) energy counter and
# power where the agent has them (the twin's panel meters serve exactly this pair).
_EO = "1.3.6.1.2.1.229.1"
ENTITY_METER = Profile(
    name="entity_sensor_meter", kind="meter", description="Generic meter: ENTITY-SENSOR-MIB + ENERGY-OBJECT-MIB",
    sys_object_ids=("1.3.6.1.2.1.99",),
    readings=(
        _sensor("meter", "power_w", WATTS, agg="sum"),
        column(f"{_EO}.2.1.1", "meter", "power_w", 1.0, agg="sum", fallback=True),     # eoPower (multiplier 0)
        column(f"{_EO}.5.1.2", "meter", "energy_kwh", 0.001, agg="sum"),                # eoEnergyConsumed, Wh
    ),
    probe_oid=_TYPE, probe_is_table=True,
)

PROFILES = (ENTITY_PDU, ENTITY_METER)
