"""Schleifenbauer PDUs and DPM meters on the databus (SCHLEIFENBAUER-DATABUS-MIB, .31034.12.1).
One gateway answers for every unit on its databus ring; tables are indexed by the unit's
databus address (sdbDevIdIndex, any of 1..255) then the input, so rows are always tagged by
the whole index ("210.1": unit 210, input 1) -- there is no fixed "first unit" to shorten.

Units from the MIB's textual conventions: DeciAmpere and DeciVolt have DISPLAY-HINT "d-2"
(hundredths, whatever the names say), DeciPercent "d-2" (hundredths of a percent: power factor
4594 = 45.94 % = 0.4594), KiloWattHour whole kWh, VA and W whole."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_IN = "1.3.6.1.4.1.31034.12.1.1.2.6.1.1"   # sdbDevInEntry: sdbDevIdIndex.sdbDevInIndex
# unit_index {0: 0}: no unit has address 0, so every row carries its unit address.
_PHASE = {"index_tags": {"phase": -1}, "unit_index": {0: 0}}

SCHLEIFENBAUER = Profile(
    name="schleifenbauer", kind="pdu", description="Schleifenbauer hybrid PDU / DPM (SCHLEIFENBAUER-DATABUS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.31034",),
    aliases=("schleifenbauer_dpm",),
    readings=(
        column(f"{_IN}.5", "pdu_phase", "current_a", 0.01, **_PHASE),           # sdbDevInActualCurrent
        column(f"{_IN}.7", "pdu_phase", "voltage_v", 0.01, **_PHASE),           # sdbDevInActualVoltage
        column(f"{_IN}.10", "pdu_phase", "power_w", 1.0, **_PHASE),             # sdbDevInPowerWatt, W
        column(f"{_IN}.9", "pdu_phase", "apparent_power_va", 1.0, **_PHASE),    # sdbDevInPowerVoltAmpere, VA
        column(f"{_IN}.4", "pdu_phase", "power_factor", 0.0001, **_PHASE),      # sdbDevInPowerFactor, 1/100 %
        column(f"{_IN}.2", "pdu_phase", "energy_kwh", 1.0, **_PHASE),           # sdbDevInKWhTotal, kWh
        column(f"{_IN}.11", "pdu_phase", "breaker_a", 0.01, **_PHASE),          # sdbDevInMaxAmps
        # The PDU as a whole: every input of every unit on the ring.
        column(f"{_IN}.10", "pdu", "power_w", 1.0, agg="sum"),
        column(f"{_IN}.9", "pdu", "apparent_power_va", 1.0, agg="sum"),
        column(f"{_IN}.5", "pdu", "current_a", 0.01, agg="sum"),
        column(f"{_IN}.2", "pdu", "energy_kwh", 1.0, agg="sum"),
    ),
)

PROFILES = (SCHLEIFENBAUER,)
