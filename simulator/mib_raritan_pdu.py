"""Raritan PDU2-MIB (PX2/PX3 rack PDU), reference §1.2.

Every measurement is a row of a generic sensor table whose index ends in the sensor type. The
scale is per sensor: raw = value × 10^DecimalDigits, and the digits are published in the
configuration tables (inletSensorDecimalDigits, outletSensorDecimalDigits) that a collector reads
once at discovery. We serve current with 3 decimals (PX3-style) on purpose, so a collector that
assumes the "typical" 1 decimal is caught by the tests.

Index layout: inlet sensors pduId.inletId.sensorType, inlet poles pduId.inletId.pole.sensorType,
outlets pduId.outletId.sensorType. One PDU (pduId 1) with one inlet (inletId 1). Inlet poles
have no configuration table here: they use the inlet sensor's decimal digits.
"""

from __future__ import annotations

from simulator.mib_common import GAUGE, INT, STR, Column, Profile, Table

PDU2 = "1.3.6.1.4.1.13742.6"

# sensorType: (units enum, decimal digits). Units: 1 volt, 2 amp, 3 watt, 4 voltamp, 5 wattHour, -1 none.
RMS_CURRENT, RMS_VOLTAGE, ACTIVE_POWER, APPARENT_POWER, POWER_FACTOR, ACTIVE_ENERGY = 1, 4, 5, 6, 7, 8
SENSORS = {
    RMS_CURRENT: (2, 3),
    RMS_VOLTAGE: (1, 0),
    ACTIVE_POWER: (3, 0),
    APPARENT_POWER: (4, 0),
    POWER_FACTOR: (-1, 2),
    ACTIVE_ENERGY: (5, 0),  # Wh
}
STATE_NORMAL = 4  # sensorStateEnumeration normal(4)
TRUE = 1  # TruthValue


def _pf(power_w: float, apparent_va: float) -> float:
    return power_w / apparent_va if apparent_va > 0 else 1.0


def _inlet_values(r) -> dict[int, float]:
    return {
        RMS_CURRENT: r.current_a,
        RMS_VOLTAGE: r.voltage_v,
        ACTIVE_POWER: r.power_w,
        APPARENT_POWER: r.apparent_power_va,
        POWER_FACTOR: _pf(r.power_w, r.apparent_power_va),
        ACTIVE_ENERGY: r.energy_kwh * 1000.0,
    }


def _pole_values(p) -> dict[int, float]:
    return {RMS_CURRENT: p.current_a, RMS_VOLTAGE: p.voltage_v, ACTIVE_POWER: p.power_w,
            ACTIVE_ENERGY: p.energy_kwh * 1000.0}


def _outlet_values(o) -> dict[int, float]:
    return {RMS_CURRENT: o.current_a, ACTIVE_POWER: o.power_w, ACTIVE_ENERGY: o.energy_kwh * 1000.0}


def _scaled(sensor_type: int, value: float) -> int:
    return round(value * 10 ** SENSORS[sensor_type][1])


# Row items are (sensorType, SI value); the row index already ends in the sensorType.
def _inlet_rows(dev, r):
    return [((1, 1, t), (t, v)) for t, v in sorted(_inlet_values(r).items())]


def _pole_rows(dev, r):
    return [((1, 1, n, t), (t, v)) for n, p in enumerate(r.phases, 1) for t, v in sorted(_pole_values(p).items())]


def _outlet_rows(dev, r):
    return [((1, n, t), (t, v)) for n, o in enumerate(r.outlets, 1) for t, v in sorted(_outlet_values(o).items())]


def _inlet_config_rows(dev, r):
    return [((1, 1, t), (t, None)) for t in sorted(_inlet_values(r))]


def _outlet_config_rows(dev, r):
    return [((1, n, t), (t, None)) for n in range(1, len(r.outlets) + 1) for t in (RMS_CURRENT, ACTIVE_POWER,
                                                                                   ACTIVE_ENERGY)]


_CONFIG_COLUMNS = (
    Column(6, INT, lambda d, r, it, i: SENSORS[it[0]][0]),  # units
    Column(7, GAUGE, lambda d, r, it, i: SENSORS[it[0]][1]),  # decimal digits
)

# measurementsXxxSensorIsAvailable (.2), State (.3), Value (.4, Unsigned32), SignedValue (.6)
_MEASUREMENT_COLUMNS = (
    Column(2, INT, lambda d, r, it, i: TRUE),
    Column(3, INT, lambda d, r, it, i: STATE_NORMAL),
    Column(4, GAUGE, lambda d, r, it, i: _scaled(*it), measure=True),
    Column(6, INT, lambda d, r, it, i: _scaled(*it), measure=True),
)


def _outlets(dev, r):
    return [((1, n), o) for n, o in enumerate(r.outlets, 1)]


# External (rack) probes on the PDU's sensor port: externalSensorConfigurationTable (.3.6.3.1: type .2,
# name .4, units .16, decimal digits .17) and measurementsExternalSensorTable (.5.5.3.1: isAvailable
# .2, state .3, value .4), index pduId.sensorId. Sensor 1 is the rack's inlet temperature (type
# temperature(10), units degreeC(7), 1 decimal), sensor 2 its humidity (humidity(11), percent(9), 0).
# Sensor 3 is the temperature at the rack's rear (its exhaust), named "<rack> outlet temperature".
EXT_TEMPERATURE, EXT_HUMIDITY = 10, 11
# sensor id -> (sensorType, units, decimal digits, name after the rack's)
_EXTERNAL = {1: (EXT_TEMPERATURE, 7, 1, "inlet temperature"), 2: (EXT_HUMIDITY, 9, 0, "inlet humidity"),
             3: (EXT_TEMPERATURE, 7, 1, "outlet temperature")}


def _external_rows(dev, r):
    values = {1: r.inlet_temp_c, 2: r.inlet_rh_pct, 3: r.outlet_temp_c}
    return [((1, s), (s, v)) for s, v in values.items() if v is not None]


_EXTERNAL_CONFIG_COLUMNS = (
    Column(2, INT, lambda d, r, it, i: _EXTERNAL[it[0]][0]),
    Column(4, STR, lambda d, r, it, i: f"{d.rack} {_EXTERNAL[it[0]][3]}"),
    Column(16, INT, lambda d, r, it, i: _EXTERNAL[it[0]][1]),
    Column(17, GAUGE, lambda d, r, it, i: _EXTERNAL[it[0]][2]),
)
_EXTERNAL_MEASUREMENT_COLUMNS = (
    Column(2, INT, lambda d, r, it, i: TRUE),
    Column(3, INT, lambda d, r, it, i: STATE_NORMAL),
    Column(4, INT, lambda d, r, it, i: round(it[1] * 10 ** _EXTERNAL[it[0]][2]), measure=True),
)


PROFILE = Profile(
    name="raritan_pdu2",
    kind="pdu",
    vendor="Raritan",
    model="PX3-5190R",
    sys_object_id="1.3.6.1.4.1.13742.6",  # PDU2-MIB root: what PX2/PX3 report as sysObjectID
    sys_descr="PX3 3.5.0.5-46340",
    objects=(
        # pduName (.3.2.2.1.13, index pduId)
        Table(f"{PDU2}.3.2.2.1", lambda d, r: [((1,), None)], (Column(13, STR, lambda d, r, it, i: d.name),)),
        # inletLabel (.3.3.3.1.2, index pduId.inletId)
        Table(f"{PDU2}.3.3.3.1", lambda d, r: [((1, 1), None)], (Column(2, STR, lambda d, r, it, i: "I1"),)),
        # inletSensorConfigurationTable: Units (.6) and DecimalDigits (.7)
        Table(f"{PDU2}.3.3.4.1", _inlet_config_rows, _CONFIG_COLUMNS),
        # outletConfigurationTable: Label (.2), Name (.3)
        Table(f"{PDU2}.3.5.3.1", _outlets, (
            Column(2, STR, lambda d, r, o, i: str(i[1])),
            Column(3, STR, lambda d, r, o, i: f"{d.rack}-{d.feed}-outlet-{i[1]:02d}"),
        )),
        # outletSensorConfigurationTable
        Table(f"{PDU2}.3.5.4.1", _outlet_config_rows, _CONFIG_COLUMNS),
        # measurementsInletSensorTable / InletPoleSensorTable / OutletSensorTable
        Table(f"{PDU2}.5.2.3.1", _inlet_rows, _MEASUREMENT_COLUMNS),
        Table(f"{PDU2}.5.2.4.1", _pole_rows, _MEASUREMENT_COLUMNS),
        Table(f"{PDU2}.5.4.3.1", _outlet_rows, _MEASUREMENT_COLUMNS),
        # the rack probes (hall-2's live inlet temperatures)
        Table(f"{PDU2}.3.6.3.1", _external_rows, _EXTERNAL_CONFIG_COLUMNS),
        Table(f"{PDU2}.5.5.3.1", _external_rows, _EXTERNAL_MEASUREMENT_COLUMNS),
    ),
)
