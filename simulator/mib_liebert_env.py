"""Liebert / Vertiv LIEBERT-GP-ENVIRONMENTAL-MIB (IntelliSlot card on a CRAH or a chiller), reference §2.2.

Temperatures are rows of lgpEnvTemperatureTableDegC whose Descr column is an OID naming the
point (supply/return air for a CRAH, supply/return fluid for a chiller); we fill both the whole-°C
column (.3) and the tenths column (.50), as the real card does. Cooling and fan capacity are
state scalars in %. The card does not publish kW: cooling kW = capacity % × rated capacity
(config), and electrical power comes from the mechanical-panel meter.
"""

from __future__ import annotations

from simulator.mib_common import GAUGE, INT, OID, Column, Profile, Scalar, Table

LGP_ENV = "1.3.6.1.4.1.476.1.42.3.4"
WELL_KNOWN = f"{LGP_ENV}.1.1"  # lgpEnvTemperatureWellKnown: descr OIDs
RETURN_AIR, SUPPLY_AIR = f"{WELL_KNOWN}.2", f"{WELL_KNOWN}.3"
SUPPLY_FLUID, RETURN_FLUID = f"{WELL_KNOWN}.20", f"{WELL_KNOWN}.24"
HUMIDITY_RETURN_AIR = f"{LGP_ENV}.2.1.2"
ON, OFF = 1, 2


def _temperature_rows(dev, r):
    # (descr OID, °C, setpoint °C or None); the setpoint belongs to the controlled (supply) point
    if dev.kind == "chiller":
        points = [(SUPPLY_FLUID, r.supply_temp_c, r.setpoint_c), (RETURN_FLUID, r.return_temp_c, None)]
    else:
        points = [(SUPPLY_AIR, r.supply_temp_c, r.setpoint_c), (RETURN_AIR, r.return_temp_c, None)]
    return [((n,), p) for n, p in enumerate(points, 1)]


def _humidity_rows(dev, r):
    return [((1,), r.humidity_pct)] if r.humidity_pct is not None else []


def _capacity_pct(dev, r) -> float:
    return min(100.0, max(0.0, 100.0 * r.cooling_kw / dev.capacity_kw))


PROFILE = Profile(
    name="liebert_env",
    kind="cooling",
    vendor="Liebert",
    model="IntelliSlot Web Card",
    sys_object_id="1.3.6.1.4.1.476.1.42",  # as the Liebert PEX recording reports
    sys_descr="Liebert IntelliSlot Web Card 3.210.0",
    objects=(
        # lgpEnvTemperatureTableDegC: Id (.1), Descr (.2), MeasurementDegC (.3), SetPointDegC (.6),
        # MeasurementTenthsDegC (.50), SetPointTenthsDegC (.53)
        Table(f"{LGP_ENV}.1.3.3.1", _temperature_rows, (
            Column(1, GAUGE, lambda d, r, p, i: i[0]),
            Column(2, OID, lambda d, r, p, i: p[0]),
            Column(3, INT, lambda d, r, p, i: p[1], scale=1, measure=True),
            Column(6, INT, lambda d, r, p, i: p[2], scale=1),
            Column(50, INT, lambda d, r, p, i: p[1], scale=10, measure=True),
            Column(53, INT, lambda d, r, p, i: p[2], scale=10),
        )),
        # lgpEnvHumidityTableRel: Id (.1), Descr (.2), MeasurementRel (.3, %RH)
        Table(f"{LGP_ENV}.2.2.3.1", _humidity_rows, (
            Column(1, GAUGE, lambda d, r, h, i: i[0]),
            Column(2, OID, lambda d, r, h, i: HUMIDITY_RETURN_AIR),
            Column(3, INT, lambda d, r, h, i: h, scale=1, measure=True),
        )),
        Scalar(f"{LGP_ENV}.3.2", INT, lambda d, r: ON if r.cooling_kw > 0 else OFF),  # lgpEnvStateCooling
        Scalar(f"{LGP_ENV}.3.7", INT, lambda d, r: ON if (r.fan_pct or 0) > 0 else OFF),  # lgpEnvStateFan
        Scalar(f"{LGP_ENV}.3.9", INT, _capacity_pct, scale=1, measure=True),  # CoolingCapacity %
        Scalar(f"{LGP_ENV}.3.16", INT, lambda d, r: r.fan_pct, scale=1, measure=True),  # FanCapacity %
    ),
)
