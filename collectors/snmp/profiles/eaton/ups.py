"""Eaton UPS (XUPS-MIB, with UPS-MIB as the fallback)."""

from __future__ import annotations

from dataclasses import replace

from collectors.snmp.profiles.spec import Profile, column, scalar
from collectors.snmp.profiles.standard.ups_mib import UPS_MIB_READINGS as _UPS_MIB

# Eaton XUPS-MIB: vendor input power first, UPS-MIB as the fallback.
_X = "1.3.6.1.4.1.534.1"
EATON_XUPS = Profile(
    name="eaton_xups", aliases=('eaton_ups', 'xups'), kind="ups", description="Eaton UPS (XUPS-MIB + UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.534.1", "1.3.6.1.4.1.705.1"),
    readings=(
        scalar(f"{_X}.3.8.3.0", "ups", "input_power_w", 1.0),               # xupsInputTotalWatts
        column(f"{_X}.3.4.1.4", "ups", "input_power_w", 1.0, agg="sum", fallback=True),  # xupsInputWatts
        scalar(f"{_X}.4.9.3.0", "ups", "output_power_w", 1.0),              # xupsOutputTotalWatts
    ) + tuple(replace(r, fallback=True) if r.field == "output_power_w" else r for r in _UPS_MIB),
    post=("ups_input_below_output",),
)

PROFILES = (EATON_XUPS,)
