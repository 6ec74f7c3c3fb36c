"""Panduit SmartZone G5 PDUs (PANDUIT-MIB, pdug5 .19536.10.1). Tables are indexed by the PDU's
place in its daisy chain (pdug5IdentIndex, 1 = the one answering), then the group:
- pdug5InputTable .2.1.1 (per PDU): PowerVA .4 (VA), PowerWatts .5 (W), TotalEnergy .6 (kWh,
  since the PDU entered service), PowerFactor .9 (hundredths), TotalCurrent .11 (0.01 A, all
  phases added);
- pdug5GroupTable .3.1.1 (per breaker): Type .3 (2/3/4 = 1/2/3-pole breaker, 5 = outlet section
  without breaker; rows past pdug5GroupCount read 0), Voltage .5 (0.1 V), CurrentRating .11 and
  Current .12 (0.01 A), CurrentPercentLoad .18 (%), PowerVA .19, PowerWatts .20, PowerWattHour
  .21 (Wh, resettable from the GUI: a counter that may reset), PowerFactor .23 (hundredths).
Negative values mean "not available" (MIB): absent. The chain's PDU totals add up; its power
factor is the first PDU's."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_G5 = "1.3.6.1.4.1.19536.10.1"
_IN = f"{_G5}.2.1.1"
_GR = f"{_G5}.3.1.1"
_BREAKER = {"index_tags": {"breaker": -1}, "unit_index": {0: 1}, "match_column": (f"{_GR}.3", (2, 3, 4))}

PANDUIT_G5 = Profile(
    name="panduit_g5", kind="pdu", description="Panduit SmartZone G5 PDU (PANDUIT-MIB)",
    sys_object_ids=("1.3.6.1.4.1.19536.10",),
    aliases=("panduit", "panduit_pdu"),
    readings=(
        column(f"{_IN}.5", "pdu", "power_w", 1.0, agg="sum"),                 # pdug5InputPowerWatts
        column(f"{_IN}.4", "pdu", "apparent_power_va", 1.0, agg="sum"),       # pdug5InputPowerVA
        column(f"{_IN}.6", "pdu", "energy_kwh", 1.0, agg="sum"),              # pdug5InputTotalEnergy, kWh
        column(f"{_IN}.11", "pdu", "current_a", 0.01, agg="sum"),             # pdug5InputTotalCurrent
        column(f"{_IN}.9", "pdu", "power_factor", 0.01, agg="first"),         # pdug5InputPowerFactor
        column(f"{_GR}.5", "pdu_breaker", "voltage_v", 0.1, **_BREAKER),      # pdug5GroupVoltage
        column(f"{_GR}.12", "pdu_breaker", "current_a", 0.01, **_BREAKER),    # pdug5GroupCurrent
        column(f"{_GR}.18", "pdu_breaker", "load_pct", 1.0, **_BREAKER),      # pdug5GroupCurrentPercentLoad
        column(f"{_GR}.19", "pdu_breaker", "apparent_power_va", 1.0, **_BREAKER),   # pdug5GroupPowerVA
        column(f"{_GR}.20", "pdu_breaker", "power_w", 1.0, **_BREAKER),       # pdug5GroupPowerWatts
        column(f"{_GR}.21", "pdu_breaker", "energy_kwh", 0.001, **_BREAKER),  # pdug5GroupPowerWattHour, Wh
        column(f"{_GR}.23", "pdu_breaker", "power_factor", 0.01, **_BREAKER), # pdug5GroupPowerFactor
        column(f"{_GR}.11", "pdu_breaker", "breaker_a", 0.01, **_BREAKER),    # pdug5groupCurrentRating
    ),
)

PROFILES = (PANDUIT_G5,)
