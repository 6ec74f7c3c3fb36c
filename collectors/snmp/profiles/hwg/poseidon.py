"""HW group Poseidon / Poseidon2 environment monitors (POSEIDON-MIB, .21796.3.3). One row per
detected sensor in sensTable (.3.1): sensState .4 (0 invalid, 1 normal, 2 alarmstate, 3 alarm),
sensValue .6 "the integer (decimal * 10) representation of sensor value", sensUnit .9 (0 celsius,
1 fahrenheit, 3 percent, ...). A row is read only where the sensor is valid (state 1..3) and its
unit is one the contract has: temperature (°C or °F) or relative humidity (%). Voltage,
current, dew point and other units are not env fields and stay unread. Rows are tagged by sensor
index (sensor = <device>-<index>)."""

from __future__ import annotations

from typing import Any

from collectors.snmp.profiles.spec import Profile, column, fahrenheit

_S = "1.3.6.1.4.1.21796.3.3.3.1"   # sensEntry, indexed by sensIndex
_VALID = (f"{_S}.4", (1, 2, 3))     # sensState: not invalid (0)
_ROW: dict[str, Any] = {"index_tags": {"sensor": -1}}

HWG_POSEIDON = Profile(
    name="hwg_poseidon", kind="env", description="HW group Poseidon sensors (POSEIDON-MIB)",
    sys_object_ids=("1.3.6.1.4.1.21796.3.3",),
    aliases=("poseidon", "hwg"),
    readings=(
        column(f"{_S}.6", "env", "temp_c", 0.1, match_all=(_VALID, (f"{_S}.9", (0,))),
               allow_negative=True, sentinels=(), **_ROW),
        column(f"{_S}.6", "env", "temp_c", match_all=(_VALID, (f"{_S}.9", (1,))),
               allow_negative=True, sentinels=(), **fahrenheit(10), **_ROW),
        column(f"{_S}.6", "env", "humidity_pct", 0.1, match_all=(_VALID, (f"{_S}.9", (3,))), **_ROW),
    ),
)

PROFILES = (HWG_POSEIDON,)
