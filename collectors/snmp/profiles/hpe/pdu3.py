"""HPE metered / switched PDUs of the "pdu3" generation (CPQPOWER-MIB .232.165.11; built by
Panduit). Tables are indexed by the PDU's place in a daisy chain (1 = the one answering), then
the phase or outlet:
- pdu3InputTable .2.1.1: pdu3InputPowerWatts .5 in W (per PDU);
- pdu3InputPhaseTable .2.2.1: pdu3InputPhaseIndex .1 (0 on a phase row the PDU does not have),
  pdu3InputPhaseVoltage .3 in 0.1 V, pdu3InputPhaseCurrent .11 in 0.01 A;
- pdu3OutletTable .5.1.1: pdu3OutletCurrent .5 in 0.01 A, pdu3OutletWatts .13 in W; the table
  has rows past the PDU's last outlet (empty name, all 0) whose pdu3OutletControlStatus
  (.5.2.1.1: 1 off, 2 on, 3 pendingOff, 4 pendingOn) reads 0: those rows are not outlets.
Rows of a chained PDU other than the first are tagged by the whole index (phase=2.1)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_P = "1.3.6.1.4.1.232.165.11"
_PHASE = {"index_tags": {"phase": -1}, "unit_index": {0: 1},
          "match_column": (f"{_P}.2.2.1.1", (1, 2, 3))}
_OUTLET = {"index_tags": {"outlet": -1}, "unit_index": {0: 1},
           "match_column": (f"{_P}.5.2.1.1", (1, 2, 3, 4))}

HPE_PDU3 = Profile(
    name="hpe_pdu3", kind="pdu", description="HPE metered/switched PDU, pdu3 generation (CPQPOWER-MIB)",
    sys_object_ids=("1.3.6.1.4.1.232.165.11",),
    aliases=("hpe_pdu", "cpqpower_pdu3"),
    readings=(
        column(f"{_P}.2.1.1.5", "pdu", "power_w", 1.0, agg="sum"),                  # pdu3InputPowerWatts
        column(f"{_P}.2.2.1.3", "pdu_phase", "voltage_v", 0.1, **_PHASE),          # pdu3InputPhaseVoltage
        column(f"{_P}.2.2.1.11", "pdu_phase", "current_a", 0.01, **_PHASE),        # pdu3InputPhaseCurrent
        column(f"{_P}.5.1.1.5", "pdu_outlet", "current_a", 0.01, **_OUTLET),       # pdu3OutletCurrent
        column(f"{_P}.5.1.1.13", "pdu_outlet", "power_w", 1.0, **_OUTLET),         # pdu3OutletWatts
    ),
)

PROFILES = (HPE_PDU3,)
