"""Sinetica (Netcom) UPSController cards, fitted to Mitsubishi and other UPSes. NETCOM-UPS-MIB is
RFC 1628's UPS-MIB re-rooted under the enterprise branch .13891.101 (upsBattery .2, upsInput .3,
upsOutput .4, same objects and units), and the card does not answer the standard .1.3.6.1.2.1.33
tree, so the generic UPS-MIB profile reads nothing on it.

This card reports the UPS's total output power on output line 1 and 0 on the others (58500 W
and 39 % load on line 1 of a 150 kVA UPS), so summing lines and taking the most loaded line are
both right for it."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_N = "1.3.6.1.4.1.13891.101"

SINETICA_UPS = Profile(
    name="sinetica_ups", kind="ups", description="Sinetica/Netcom UPSController, Mitsubishi UPS (NETCOM-UPS-MIB)",
    sys_object_ids=(_N,),
    aliases=("netcom_ups", "mitsubishi_ups"),
    post=("ups_input_below_output",),
    readings=(
        column(f"{_N}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum"),        # upsOutputPower, W
        column(f"{_N}.3.3.1.5", "ups", "input_power_w", 1.0, agg="sum"),         # upsInputTruePower, W
        column(f"{_N}.4.4.1.5", "ups", "load_pct", 1.0, agg="max"),              # upsOutputPercentLoad
        column(f"{_N}.3.3.1.3", "ups", "input_voltage_v", 1.0, agg="mean"),      # upsInputVoltage, V
        column(f"{_N}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean"),     # upsOutputVoltage, V
        scalar(f"{_N}.4.1.0", "ups", "on_battery", enum={5: True}, enum_default=False),  # upsOutputSource 5 battery
        scalar(f"{_N}.2.4.0", "ups", "battery_charge_pct", 1.0),                 # upsEstimatedChargeRemaining
        scalar(f"{_N}.2.3.0", "ups", "runtime_s", 60.0),                         # upsEstimatedMinutesRemaining
    ),
)

PROFILES = (SINETICA_UPS,)
