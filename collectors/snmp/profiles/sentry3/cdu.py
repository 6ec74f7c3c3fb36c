"""ServerTech Sentry3-MIB (.1718.3): Sentry Switched/Smart CDUs, one master tower and up to three
link towers, each with its own input feeds. Every table is indexed tower.infeed[.outlet] or
envMon.sensor, so rows of tower 2+ are tagged by the whole index (unit_index). Scales are the
MIB's UNITS clauses; -1 means "not measured" throughout the MIB."""

from __future__ import annotations

from typing import Any

from collectors.snmp.profiles.spec import Profile, column, fahrenheit

_S = "1.3.6.1.4.1.1718.3.2"
_INFEED = f"{_S}.2.1"        # infeedEntry: towerIndex.infeedIndex
_OUTLET = f"{_S}.3.1"        # outletEntry: towerIndex.infeedIndex.outletIndex
_SENSOR = f"{_S}.5.1"        # tempHumidSensorEntry: envMonIndex.tempHumidSensorIndex
_TOWER = {0: 1}              # index part 0 is the tower (or envMon unit); tower 1 keeps short tags
_PHASE = {"index_tags": {"phase": -1}, "unit_index": _TOWER}
_ENV: dict[str, Any] = {"index_tags": {"sensor": -1}, "unit_index": _TOWER, "tags": {"position": "inlet"}}

SENTRY3 = Profile(
    name="sentry3", kind="pdu", description="ServerTech Sentry Switched/Smart CDU (Sentry3-MIB), multi-tower",
    sys_object_ids=("1.3.6.1.4.1.1718.3",),
    aliases=("servertech_sentry3", "sentry_cdu"),
    readings=(
        # One input feed (cord/phase) per row.
        column(f"{_INFEED}.7", "pdu_phase", "current_a", 0.01, **_PHASE),        # infeedLoadValue, 1/100 A
        column(f"{_INFEED}.11", "pdu_phase", "voltage_v", 0.1, **_PHASE),        # infeedVoltage, 1/10 V
        column(f"{_INFEED}.10", "pdu_phase", "breaker_a", 1.0, **_PHASE),        # infeedCapacity, A
        column(f"{_INFEED}.12", "pdu_phase", "power_w", 1.0, **_PHASE),          # infeedPower, W
        column(f"{_INFEED}.13", "pdu_phase", "apparent_power_va", 1.0, **_PHASE),  # infeedApparentPower, VA
        column(f"{_INFEED}.14", "pdu_phase", "power_factor", 0.01, **_PHASE),    # infeedPowerFactor, 1/100
        column(f"{_INFEED}.16", "pdu_phase", "energy_kwh", 0.1, **_PHASE),       # infeedEnergy, 1/10 kWh
        column(f"{_INFEED}.20", "pdu_phase", "load_pct", 0.1, **_PHASE),         # infeedCapacityUsed, 1/10 %
        # The CDU as a whole: every feed of every tower.
        column(f"{_INFEED}.12", "pdu", "power_w", 1.0, agg="sum"),
        column(f"{_INFEED}.16", "pdu", "energy_kwh", 0.1, agg="sum"),
        column(f"{_INFEED}.7", "pdu", "current_a", 0.01, agg="sum"),
        column(f"{_OUTLET}.7", "pdu_outlet", "current_a", 0.01, index_tags={"outlet": -1}, unit_index={0: 1, 1: 1}),
        column(f"{_OUTLET}.14", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}, unit_index={0: 1, 1: 1}),
        # tempHumidSensorTempValue is in tenths of the scale tempHumidSensorTempScale (.13) names:
        # celsius(0) (or no scale object: Celsius by the MIB) and fahrenheit(1), converted.
        column(f"{_SENSOR}.6", "env", "temp_c", 0.1, match_column=(f"{_SENSOR}.13", (0, None)),
               allow_negative=True, **_ENV),
        column(f"{_SENSOR}.6", "env", "temp_c", match_column=(f"{_SENSOR}.13", (1,)),
               allow_negative=True, **fahrenheit(10), **_ENV),
        column(f"{_SENSOR}.10", "env", "humidity_pct", 1.0, **_ENV),            # tempHumidSensorHumidValue, %RH
    ),
)

PROFILES = (SENTRY3,)
