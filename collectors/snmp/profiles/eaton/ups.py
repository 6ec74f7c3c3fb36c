"""Eaton UPS (XUPS-MIB, with UPS-MIB as the fallback)."""

from __future__ import annotations

from dataclasses import replace

from collectors.snmp.profiles.spec import Profile, column, scalar
from collectors.snmp.profiles.standard.ups_mib import UPS_MIB_READINGS as _UPS_MIB

# Eaton XUPS-MIB: vendor input power first, UPS-MIB as the fallback.
_X = "1.3.6.1.4.1.534.1"
EATON_XUPS = Profile(
    name="eaton_xups", aliases=('eaton_ups', 'xups'), kind="ups", description="Eaton UPS (XUPS-MIB + UPS-MIB)",
    # .534.1 XUPS cards (ConnectUPS), .705.1 MGE/Network-M2, .534.2 Power Xpert Gateway (PXGX 2000: .534.2.12).
    sys_object_ids=("1.3.6.1.4.1.534.1", "1.3.6.1.4.1.705.1", "1.3.6.1.4.1.534.2"),
    readings=(
        scalar(f"{_X}.3.8.3.0", "ups", "input_power_w", 1.0),               # xupsInputTotalWatts
        column(f"{_X}.3.4.1.4", "ups", "input_power_w", 1.0, agg="sum", fallback=True),  # xupsInputWatts
        scalar(f"{_X}.4.9.3.0", "ups", "output_power_w", 1.0),              # xupsOutputTotalWatts
    ) + tuple(replace(r, fallback=True) if r.field == "output_power_w" else r for r in _UPS_MIB) + (
        # Cards that answer XUPS only (a 9PX on a card reporting .705.1 has no UPS-MIB): the
        # vendor objects fill what UPS-MIB did not. Units from XUPS-MIB.
        column(f"{_X}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum", fallback=True),  # xupsOutputWatts, W
        scalar(f"{_X}.4.1.0", "ups", "load_pct", 1.0, fallback=True),                      # xupsOutputLoad, %
        scalar(f"{_X}.2.4.0", "ups", "battery_charge_pct", 1.0, fallback=True),            # xupsBatCapacity, %
        scalar(f"{_X}.2.1.0", "ups", "runtime_s", 1.0, fallback=True),                     # xupsBatTimeRemaining, s
        # xupsInputVoltage / xupsOutputVoltage, V. A phase at 0 V (a real Powerware reports phase 1
        # at 0 V beside 231/228 V) is not measured: absent, so it does not drag the mean down.
        column(f"{_X}.3.4.1.2", "ups", "input_voltage_v", 1.0, agg="mean", fallback=True, sentinels=(-1, 0)),
        column(f"{_X}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean", fallback=True, sentinels=(-1, 0)),
        # xupsOutputSource: normal(3), bypass(4), battery(5), booster(6), reducer(7); other/none: absent.
        scalar(f"{_X}.4.5.0", "ups", "on_battery", enum={3: False, 4: False, 5: True, 6: False, 7: False},
               fallback=True),
    ),
    post=("ups_input_below_output",),
)

PROFILES = (EATON_XUPS,)
