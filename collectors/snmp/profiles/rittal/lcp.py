"""Rittal Liquid Cooling Package (LCP Inline/Plus) behind a CMC-TC processing unit
(RITTAL-CMC-TC-MIB, .2606.4). The CMC-TC has four sensor-unit ports, each a generic sensor
table (unitNSensorType / unitNSensorValue, .2606.4.2.<2+N>.5.2.1); the LCP is whichever port it
is plugged into, so every port is read and the first that has the sensor wins. Rows are chosen by
sensor type: temp1LCP(56) "Server-In", temp2LCP(57) "Server-Out", fanSpeed(61) (% desired)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_T = "1.3.6.1.4.1.2606.4.2"
TEMP_SERVER_IN, TEMP_SERVER_OUT, FAN_SPEED = 56, 57, 61


def _sensor(field_: str, sensor_type: int, **kw) -> tuple:
    """One reading per sensor-unit port (1..4); ports 2..4 only fill what port 1 lacks."""
    return tuple(
        column(f"{_T}.{2 + port}.5.2.1.5", "cooling", field_, 1.0, agg="first", sentinels=(),
               match_column=(f"{_T}.{2 + port}.5.2.1.2", (sensor_type,)), fallback=port > 1, **kw)
        for port in (1, 2, 3, 4))


RITTAL_LCP = Profile(
    name="rittal_lcp", kind="cooling", description="Rittal LCP on a CMC-TC (RITTAL-CMC-TC-MIB sensor tables)",
    sys_object_ids=("1.3.6.1.4.1.2606.4",),
    aliases=("rittal", "rittal_cmc_tc", "lcp"),
    readings=(
        # The air the LCP blows to the servers' fronts: its supply and the rack inlet it controls.
        *_sensor("supply_temp_c", TEMP_SERVER_IN, allow_negative=True),
        *_sensor("rack_inlet_temp_c", TEMP_SERVER_IN, allow_negative=True),
        *_sensor("return_temp_c", TEMP_SERVER_OUT, allow_negative=True),   # warm air from the servers
        *_sensor("fan_pct", FAN_SPEED),
    ),
)

PROFILES = (RITTAL_LCP,)
