"""AKCP sensorProbe2/4/8, securityProbe and their OEM versions (SPAGENT-MIB, .3854.1.2.2.1).
One row per sensor port in the temperature table (.16.1) and the humidity table (.17.1); a
port with nothing plugged in stays in the table, offline. Only online rows (Online .5 = 1) are
read, so an empty port is absent rather than 0 °C.

Temperature: sensorProbeTempDegreeRaw (.14) in tenths of a degree of the unit named by
sensorProbeTempDegreeType (.12: 0 Fahrenheit, 1 Celsius); humidity: sensorProbeHumidityPercent
(.3) in %RH. Rows are tagged by port (sensor = <device>-<port>)."""

from __future__ import annotations

from typing import Any

from collectors.snmp.profiles.spec import Profile, column, fahrenheit

_T = "1.3.6.1.4.1.3854.1.2.2.1.16.1"   # sensorProbeTempEntry, indexed by port
_H = "1.3.6.1.4.1.3854.1.2.2.1.17.1"   # sensorProbeHumidityEntry
_ROW: dict[str, Any] = {"index_tags": {"sensor": -1}}
_ONLINE_C = ((f"{_T}.5", (1,)), (f"{_T}.12", (1,)))
_ONLINE_F = ((f"{_T}.5", (1,)), (f"{_T}.12", (0,)))

AKCP_SENSORPROBE = Profile(
    name="akcp_sensorprobe", kind="env", description="AKCP sensorProbe/securityProbe (SPAGENT-MIB)",
    sys_object_ids=("1.3.6.1.4.1.3854",),
    aliases=("akcp", "sensorprobe"),
    readings=(
        column(f"{_T}.14", "env", "temp_c", 0.1, match_all=_ONLINE_C, allow_negative=True, sentinels=(), **_ROW),
        column(f"{_T}.14", "env", "temp_c", match_all=_ONLINE_F, allow_negative=True, sentinels=(),
               **fahrenheit(10), **_ROW),
        column(f"{_H}.3", "env", "humidity_pct", 1.0, match_all=((f"{_H}.5", (1,)),), **_ROW),
    ),
)

PROFILES = (AKCP_SENSORPROBE,)
