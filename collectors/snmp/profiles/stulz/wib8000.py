"""Stulz CRAC/CRAH units behind a WIB8000 web interface board (Stulz-WIB8000-MIB, .29462.10).
One board serves every unit on its buses; each variable is a column indexed
<bus>.<unit address>.<module>, under .29462.10.2.1 plus the MIB's group path and the
variable's number. Each unit becomes one cooling point tagged by the board's name and its
address: rows of bus 1 keep the short address (unit=<board>-3), another bus's rows carry it
(unit=<board>-2.1), so adding a bus renames nothing and two boards never share a tag.

Read (MIB units): unitReturnAirTemperature (1192) and unitSupplyAirTemperature (1193) in
1/10 degC, unitSetpointAirTratureCorrected (1175, the air temperature set point in force) in
1/10 degC, unitHumidity (1171, the unit's relative humidity) in 1/10 %, fan1Speed (6932) in %.
Not read: water temperatures, pressures, valve openings (no contract field), outside air."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_A = "1.3.6.1.4.1.29462.10.2.1.1.1.1"     # unit air values: .1.1.1.<var> temperatures, .2.1.1.<var> humidity
_FAN = "1.3.6.1.4.1.29462.10.2.1.1.2.4.1.1"
_ROW = {"index_tags": {"unit": 1}, "unit_index": {0: 1}}   # index: bus, unit address, module

STULZ_WIB8000 = Profile(
    name="stulz_wib8000", kind="cooling", description="Stulz units on a WIB8000 board (Stulz-WIB8000-MIB)",
    sys_object_ids=("1.3.6.1.4.1.29462.10",),
    aliases=("stulz", "wib8000"),
    readings=(
        column(f"{_A}.1.1.1.1193", "cooling", "supply_temp_c", 0.1, **_ROW),   # unitSupplyAirTemperature
        column(f"{_A}.1.1.1.1192", "cooling", "return_temp_c", 0.1, **_ROW),   # unitReturnAirTemperature
        column(f"{_A}.1.1.1.1175", "cooling", "setpoint_c", 0.1, **_ROW),      # unitSetpointAirTratureCorrected
        column(f"{_A}.2.1.1.1171", "cooling", "humidity_pct", 0.1, **_ROW),    # unitHumidity
        column(f"{_FAN}.6932", "cooling", "fan_pct", 1.0, **_ROW),             # fan1Speed
    ),
)

PROFILES = (STULZ_WIB8000,)
