"""EAST UPSes (EA9000 series) on the iStars SNMP card (sysObjectID .40614). The card answers the
standard UPS-MIB (RFC 1628) with two quirks the generic profile cannot know:
- line rows are indexed <line>.0 (upsInputVoltage.1.0, not .1); read as tables, harmless;
- objects the UPS does not report read 0, not absent: the per-line watts (input and output)
  answer 0 while the same lines carry 20-30 % load, and upsEstimatedMinutesRemaining answers 0
  at 100 % charge on mains. Those objects take 0 as "not measured" here (a sum with a line
  absent is absent), where the generic profile would report 0 W and 0 s.
The vendor branch (.40614.1.2) carries only alarm flags and thresholds: not read."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_U = "1.3.6.1.2.1.33.1"
_UNMEASURED = (0, -1)

EAST_UPS = Profile(
    name="east_ups", kind="ups", description="EAST UPS on the iStars card (UPS-MIB, 0 = not measured)",
    sys_object_ids=("1.3.6.1.4.1.40614",),
    aliases=("istars_ups",),
    readings=(
        column(f"{_U}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum", sentinels=_UNMEASURED),  # upsOutputPower
        column(f"{_U}.3.3.1.5", "ups", "input_power_w", 1.0, agg="sum", sentinels=_UNMEASURED),   # upsInputTruePower
        column(f"{_U}.4.4.1.5", "ups", "load_pct", 1.0, agg="max"),          # upsOutputPercentLoad
        column(f"{_U}.3.3.1.3", "ups", "input_voltage_v", 1.0, agg="mean"),  # upsInputVoltage, V
        column(f"{_U}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean"),  # upsOutputVoltage, V
        scalar(f"{_U}.4.1.0", "ups", "on_battery", enum={5: True}, enum_default=False),  # upsOutputSource
        scalar(f"{_U}.2.4.0", "ups", "battery_charge_pct", 1.0),            # upsEstimatedChargeRemaining
        scalar(f"{_U}.2.3.0", "ups", "runtime_s", 60.0, sentinels=_UNMEASURED),  # upsEstimatedMinutesRemaining
    ),
)

PROFILES = (EAST_UPS,)
