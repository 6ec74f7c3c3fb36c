"""APC Smart-UPS / Symmetra (PowerNet-MIB upsAdv*/upsHighPrec*, with UPS-MIB as the fallback)."""

from __future__ import annotations

from dataclasses import replace

from collectors.snmp.profiles.spec import Profile, column, scalar
from collectors.snmp.profiles.standard.ups_mib import UPS_MIB_READINGS as _UPS_MIB

# APC PowerNet UPS: high-precision energy counters and per-phase input power.
_A = "1.3.6.1.4.1.318.1.1.1"
APC_UPS = Profile(
    name="apc_ups", kind="ups", description="APC Smart-UPS / Symmetra (PowerNet-MIB + UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.2", "1.3.6.1.4.1.318.1.3.27"),
    readings=(
        column(f"{_A}.9.2.3.1.9", "ups", "input_power_w", 1.0, agg="sum"),    # upsPhaseInputPower
        scalar(f"{_A}.4.2.8.0", "ups", "output_power_w", 1.0),               # upsAdvOutputActivePower
        scalar(f"{_A}.4.3.6.0", "ups", "energy_kwh", 0.01),                  # hundredths kWh (output)
    ) + tuple(replace(r, fallback=True) if r.field in ("input_power_w", "output_power_w") else r
              for r in _UPS_MIB),
    post=("ups_input_below_output",),
)

PROFILES = (APC_UPS,)
