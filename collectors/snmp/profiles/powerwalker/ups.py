"""PowerWalker (and other Phoenixtec-built) UPSes on the newer "Network Management Card for UPS",
which answers EPPC-MIB under .935.10.1.1 (the older cards' PPC-MIB is in phoenixtec/; this
prefix is longer, so it wins for these cards). Per-phase tables: upsESystemInputTable .2.16.1
and upsESystemOutputTable .2.18.1, indexed by phase: voltage .3 in 0.1 V, output load .7 in %,
output watts .5 in W (-1 when the UPS does not measure it). upsESystemStatus .2.1: 5 on
battery, 6 battery test (also on battery)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_E = "1.3.6.1.4.1.935.10.1.1"

POWERWALKER_UPS = Profile(
    name="powerwalker_ups", kind="ups", description="PowerWalker UPS on the EPPC network card (EPPC-MIB)",
    sys_object_ids=("1.3.6.1.4.1.935.10",),
    aliases=("eppc_ups",),
    readings=(
        column(f"{_E}.2.18.1.5", "ups", "output_power_w", 1.0, agg="sum"),       # upsESystemOutputWatt
        column(f"{_E}.2.18.1.7", "ups", "load_pct", 1.0, agg="max"),             # upsESystemOutputLoad, %
        column(f"{_E}.2.16.1.3", "ups", "input_voltage_v", 0.1, agg="mean"),     # upsESystemInputVoltage
        column(f"{_E}.2.18.1.3", "ups", "output_voltage_v", 0.1, agg="mean"),    # upsESystemOutputVoltage
        scalar(f"{_E}.2.1.0", "ups", "on_battery", enum={5: True, 6: True}, enum_default=False),
        scalar(f"{_E}.3.4.0", "ups", "battery_charge_pct", 1.0),                # upsEBatteryEstimatedChargeRemaining
    ),
)

PROFILES = (POWERWALKER_UPS,)
