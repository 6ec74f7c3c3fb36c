"""Enlogic metered / switched rack PDUs (ENLOGIC-PDU-MIB, enterprise .38446.1). Every status
table is indexed by the unit (1 = the PDU answering, more in a daisy chain), then the row:
- pduUnitStatusTable .2.4.1: ActivePower .4 (W), ApparentPower .5 (VA), Energy .9 (lifetime,
  tenths of kWh);
- pduInputPhaseStatusTable .3.4.1: Count .2, Current .5 (hundredths of A), Voltage .6 (V),
  ActivePower .7 (W), ApparentPower .8 (VA), PowerFactor .9 (active / apparent, in hundredths).
  Rows 1..3 are the phases of a wye PDU or the lines of a delta one; rows 4..6 are a delta
  PDU's phase pairs, which would count the same load twice as phases: not read;
- pduCircuitBreakerStatusTable .4.4.1: Count .2 (0 on the unused rows, labelled "NA"),
  Current .5 (hundredths of A);
- pduOutletMeteredStatusTable .5.9.1: Current .5 (hundredths of A), ActivePower .6 (W).
Rows of a chained unit other than the first are tagged by the whole index (phase=2.1)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_E = "1.3.6.1.4.1.38446.1"
_UNIT, _PHASE, _CB, _OUTLET = f"{_E}.2.4.1", f"{_E}.3.4.1", f"{_E}.4.4.1", f"{_E}.5.9.1"
_PRESENT = tuple(range(1, 256))    # the Count column of a row that exists
_PH = {"index_tags": {"phase": -1}, "unit_index": {0: 1}, "match_index": {1: (1, 2, 3)},
       "match_column": (f"{_PHASE}.2", _PRESENT)}
_BR = {"index_tags": {"breaker": -1}, "unit_index": {0: 1}, "match_column": (f"{_CB}.2", _PRESENT)}
_OUT = {"index_tags": {"outlet": -1}, "unit_index": {0: 1}}

ENLOGIC_PDU = Profile(
    name="enlogic_pdu", kind="pdu", description="Enlogic metered/switched rack PDU (ENLOGIC-PDU-MIB)",
    sys_object_ids=("1.3.6.1.4.1.38446",),
    aliases=("enlogic",),
    readings=(
        column(f"{_UNIT}.4", "pdu", "power_w", 1.0, agg="sum"),                 # pduUnitStatusActivePower
        column(f"{_UNIT}.5", "pdu", "apparent_power_va", 1.0, agg="sum"),       # pduUnitStatusApparentPower
        column(f"{_UNIT}.9", "pdu", "energy_kwh", 0.1, agg="sum"),              # pduUnitStatusEnergy
        column(f"{_PHASE}.6", "pdu_phase", "voltage_v", 1.0, **_PH),            # pduInputPhaseStatusVoltage
        column(f"{_PHASE}.5", "pdu_phase", "current_a", 0.01, **_PH),           # ...Current
        column(f"{_PHASE}.7", "pdu_phase", "power_w", 1.0, **_PH),              # ...ActivePower
        column(f"{_PHASE}.8", "pdu_phase", "apparent_power_va", 1.0, **_PH),    # ...ApparentPower
        column(f"{_PHASE}.9", "pdu_phase", "power_factor", 0.01, **_PH),        # ...PowerFactor
        column(f"{_CB}.5", "pdu_breaker", "current_a", 0.01, **_BR),            # pduCircuitBreakerStatusCurrent
        column(f"{_OUTLET}.5", "pdu_outlet", "current_a", 0.01, **_OUT),        # pduOutletMeteredStatusCurrent
        column(f"{_OUTLET}.6", "pdu_outlet", "power_w", 1.0, **_OUT),           # ...ActivePower
    ),
)

PROFILES = (ENLOGIC_PDU,)
