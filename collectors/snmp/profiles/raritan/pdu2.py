"""Raritan PX2/PX3 (PDU2-MIB)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, fahrenheit

# --- Raritan PDU2-MIB (.13742.6): generic sensor tables, decimal digits per sensor -------------
_X = "1.3.6.1.4.1.13742.6"
# sensorType enum -> (field, scale to SI before decimal digits). activeEnergy is in Wh.
_RARITAN_TYPES = {1: ("current_a", 1.0), 4: ("voltage_v", 1.0), 5: ("power_w", 1.0),
                  6: ("apparent_power_va", 1.0), 7: ("power_factor", 1.0), 8: ("energy_kwh", 0.001)}


_AVAILABLE = tuple(range(0, 32))   # sensorStateEnumeration values other than unavailable(-1)


def _raritan(table: str, digits: str, measurement: str, tag: str | None, tag_pos: int, type_pos: int,
             digits_index: tuple[int, ...] | None = None, agg: str | None = None) -> list:
    out = []
    for sensor_type, (field_, scale) in _RARITAN_TYPES.items():
        out.append(column(
            f"{table}.4", measurement, field_, scale,
            index_tags={tag: tag_pos} if tag else {}, unit_index={0: 1}, match_index={type_pos: sensor_type},
            # isAvailable (.2, TruthValue 1) or, where a card leaves that column out (a real PX2
            # walk has none), the sensor's state (.3) other than unavailable(-1).
            match_column=((f"{table}.2", (1,)), (f"{table}.3", _AVAILABLE)), digits_oid=digits,
            digits_index=digits_index,
            agg=("sum" if field_ in ("power_w", "apparent_power_va", "energy_kwh", "current_a") else "mean")
            if agg else None))
    return out


# External (rack) sensors: externalSensorConfigurationEntry (.3.6.3.1: type .2, units .16, decimal
# digits .17) and measurementsExternalSensorEntry (.5.5.3.1: state .3, value .4), both indexed
# pduId.sensorId. sensorTypeEnumeration temperature(10), humidity(11); sensorUnitsEnumeration
# degreeC(7), percent(9), degreeF(14) (a PDU set to Fahrenheit reports in °F).
_EXT_CFG = f"{_X}.3.6.3.1"
_EXT = f"{_X}.5.5.3.1"


def _external(field_: str, sensor_type: int, units: int, **kw):
    return column(f"{_EXT}.4", "env", field_, kw.pop("scale", 1.0), index_tags={"sensor": -1}, unit_index={0: 1},
                  match_all=((f"{_EXT_CFG}.2", (sensor_type,)), (f"{_EXT_CFG}.16", (units,)),
                             (f"{_EXT}.3", _AVAILABLE)),
                  digits_oid=f"{_EXT_CFG}.17", tags={"position": "inlet"},
                  position_from=f"{_EXT_CFG}.4", **kw)   # externalSensorName: "A01 rear" is an outlet probe


_EXTERNAL = [
    _external("temp_c", 10, 7, allow_negative=True),
    _external("temp_c", 10, 14, allow_negative=True, **fahrenheit()),
    _external("humidity_pct", 11, 9),
]

RARITAN_PDU2 = Profile(
    name="raritan_pdu2", aliases=('raritan',), kind="pdu",
    description="Raritan PX2/PX3 (PDU2-MIB), also Legrand, ServerTech PRO3X",
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
        + _EXTERNAL
    ),
)

PROFILES = (RARITAN_PDU2,)
