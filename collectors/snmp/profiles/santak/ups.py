"""Santak (Eaton's brand in China) UPSes on the "WebPower Pro II" SNMP card, sysObjectID
.2468.1.2.1. The card answers the standard UPS-MIB (RFC 1628) with per-line output watts that
add up to the load, but some objects the UPS does not report answer 0, several of them typed
TimeTicks where the MIB says INTEGER: upsEstimatedMinutesRemaining (0 at 100 % charge on mains)
and upsInputTruePower (0 on every line). Those take 0 as "not measured" here; the generic
profile would report 0 s of runtime."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_U = "1.3.6.1.2.1.33.1"
_UNMEASURED = (0, -1)

SANTAK_UPS = Profile(
    name="santak_ups", kind="ups", description="Santak UPS on the WebPower Pro II card (UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.2468.1.2",),
    aliases=("webpower_ups",),
    readings=(
        column(f"{_U}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum"),    # upsOutputPower, W
        column(f"{_U}.3.3.1.5", "ups", "input_power_w", 1.0, agg="sum", sentinels=_UNMEASURED),
        column(f"{_U}.4.4.1.5", "ups", "load_pct", 1.0, agg="max"),          # upsOutputPercentLoad
        column(f"{_U}.3.3.1.3", "ups", "input_voltage_v", 1.0, agg="mean"),  # upsInputVoltage, V
        column(f"{_U}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean"),  # upsOutputVoltage, V
        scalar(f"{_U}.4.1.0", "ups", "on_battery", enum={5: True}, enum_default=False),  # upsOutputSource
        scalar(f"{_U}.2.4.0", "ups", "battery_charge_pct", 1.0),            # upsEstimatedChargeRemaining
        scalar(f"{_U}.2.3.0", "ups", "runtime_s", 60.0, sentinels=_UNMEASURED),  # upsEstimatedMinutesRemaining
    ),
    post=("ups_input_below_output",),
)

PROFILES = (SANTAK_UPS,)
