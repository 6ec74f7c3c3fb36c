"""UPS-MIB (RFC 1628): any UPS whose card speaks the standard MIB. Vendor UPS profiles
(apc/ups.py, eaton/ups.py) fill its gaps with their own objects and fall back on these."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_U = "1.3.6.1.2.1.33.1"
UPS_MIB_READINGS = (
    column(f"{_U}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum"),
    column(f"{_U}.3.3.1.5", "ups", "input_power_w", 1.0, agg="sum", fallback=True),
    column(f"{_U}.4.4.1.5", "ups", "load_pct", 1.0, agg="max"),           # the most loaded line
    column(f"{_U}.3.3.1.3", "ups", "input_voltage_v", 1.0, agg="mean"),
    column(f"{_U}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean"),
    scalar(f"{_U}.4.1.0", "ups", "on_battery", enum={5: True}, enum_default=False),  # upsOutputSource
    scalar(f"{_U}.2.4.0", "ups", "battery_charge_pct", 1.0),
    scalar(f"{_U}.2.3.0", "ups", "runtime_s", 60.0),                      # minutes
)

UPS_MIB = Profile(
    name="ups_mib", kind="ups", description="Any UPS with the standard UPS-MIB (RFC 1628)",
    sys_object_ids=("1.3.6.1.2.1.33",),  # agents with no vendor branch point at upsMIB itself
    readings=UPS_MIB_READINGS, post=("ups_input_below_output",),
    probe_oid=f"{_U}.1.1.0",  # upsIdentManufacturer
    aliases=("ups", "rfc1628"),
)

PROFILES = (UPS_MIB,)
