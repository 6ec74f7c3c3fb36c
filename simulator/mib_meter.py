"""Power meter: ENTITY-SENSOR-MIB (RFC 3433) plus the EMAN ENERGY-OBJECT-MIB energy counter.

Why this choice: the reference names no panel-meter MIB, and real meters (PowerLogic, Janitza,
Socomec) each have their own; ENTITY-SENSOR-MIB is the standard generic fallback the collectors
already support. It has no energy type, so the energy counter is served from RFC 7460
(ENERGY-OBJECT-MIB): ``eoPower`` ``.229.1.2.1.1.1`` (W, unit multiplier ``.229.1.2.1.3.1`` = 0) and
``eoEnergyConsumed`` ``.229.1.5.1.2.1`` (Wh). Simplification: the RFC indexes eoEnergyTable by
(parameters index, collection start time); we serve a single row with index 1.

Sensors (entPhysicalIndex): 1 active power (watts, scale kilo, precision 2 → kW with 2 decimals),
2 voltage (voltsAC, units, precision 1), 3 current (amperes, units, precision 1).
SI value = value × 10^(3·(scale−9)) × 10^(−precision).
"""

from __future__ import annotations

from simulator.mib_common import GAUGE, INT, STR, Column, Profile, Table

ENT_PHYSICAL = "1.3.6.1.2.1.47.1.1.1.1"
ENT_SENSOR = "1.3.6.1.2.1.99.1.1.1"
EO = "1.3.6.1.2.1.229.1"
WATTS, VOLTS_AC, AMPERES = 6, 3, 5  # EntitySensorDataType
UNITS, KILO = 9, 10  # EntitySensorDataScale
OK = 1  # EntitySensorStatus

# entPhysicalIndex: (name, type, scale, precision, unitsDisplay, getter of the SI value)
SENSORS = {
    1: ("active power", WATTS, KILO, 2, "kW", lambda r: r.power_w),
    2: ("voltage L-L", VOLTS_AC, UNITS, 1, "V", lambda r: r.voltage_v),
    3: ("current", AMPERES, UNITS, 1, "A", lambda r: r.current_a),
}


def _raw(index: int, r) -> int:
    _, _, scale, precision, _, get = SENSORS[index]
    return int(round(get(r) / 10 ** (3 * (scale - 9)) * 10 ** precision))


def _rows(dev, r):
    return [((n,), n) for n in SENSORS]


def _meter_row(dev, r):
    return [((1,), None)]


PROFILE = Profile(
    name="entity_sensor_meter",
    kind="meter",
    vendor="generic",
    model="panel meter",
    sys_object_id="1.3.6.1.2.1.99",  # entitySensorMIB: a generic meter has no vendor branch here
    sys_descr="Power meter (ENTITY-SENSOR-MIB, ENERGY-OBJECT-MIB)",
    objects=(
        Table(ENT_PHYSICAL, _rows, (
            Column(2, STR, lambda d, r, n, i: f"{d.name} {SENSORS[n][0]}"),  # entPhysicalDescr
            Column(7, STR, lambda d, r, n, i: f"{d.name}/{SENSORS[n][0]}"),  # entPhysicalName
        )),
        Table(ENT_SENSOR, _rows, (
            Column(1, INT, lambda d, r, n, i: SENSORS[n][1]),
            Column(2, INT, lambda d, r, n, i: SENSORS[n][2]),
            Column(3, INT, lambda d, r, n, i: SENSORS[n][3]),
            Column(4, INT, lambda d, r, n, i: _raw(n, r), measure=True),
            Column(5, INT, lambda d, r, n, i: OK),
            Column(6, STR, lambda d, r, n, i: SENSORS[n][4]),
        )),
        # eoPowerTable (index entPhysicalIndex 1): eoPower (.1, W), eoPowerUnitMultiplier (.3, 10^0)
        Table(f"{EO}.2.1", _meter_row, (
            Column(1, INT, lambda d, r, it, i: r.power_w, scale=1, measure=True),
            Column(3, INT, lambda d, r, it, i: 0),
        )),
        # eoEnergyTable, single row 1: eoEnergyConsumed (.2, Wh)
        Table(f"{EO}.5.1", _meter_row, (
            Column(2, GAUGE, lambda d, r, it, i: r.energy_kwh * 1000.0, scale=1, measure=True),
        )),
    ),
)
