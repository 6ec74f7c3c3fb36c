"""Phoenixtec Power (PPC) UPS cards (PPC-MIB, .935.1.1.1 upsBase*/upsSmart*), used under many
brands (the walk's is a "Kert"). Vendor objects first (tenths of volts are finer than UPS-MIB's
whole volts); UPS-MIB scalars as the fallback. The UPS-MIB line tables of these cards list three
lines whatever upsOutputNumLines says, zero-filled, so they are not read."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, scalar

_P = "1.3.6.1.4.1.935.1.1.1"
_U = "1.3.6.1.2.1.33.1"
# upsBaseOutputStatus: 1 unknown, 2 onLine, 3 onBattery, 4 onBoost, 5 sleeping, 6 onBypass,
# 7 rebooting, 8 standBy, 9 onBuck. Unknown/sleeping/rebooting/standBy: absent.
_ON_BATTERY = {2: False, 3: True, 4: False, 6: False, 9: False}

PHOENIXTEC_UPS = Profile(
    name="phoenixtec_ups", kind="ups", description="Phoenixtec (PPC) UPS card (PPC-MIB upsSmart* + UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.935",),
    aliases=("ppc_ups", "phoenixtec"),
    readings=(
        scalar(f"{_P}.4.1.1.0", "ups", "on_battery", enum=_ON_BATTERY, enum_default=None),
        scalar(f"{_U}.4.1.0", "ups", "on_battery", enum={5: True, 3: False, 4: False}, enum_default=None,
               fallback=True),                                          # upsOutputSource
        scalar(f"{_P}.2.2.1.0", "ups", "battery_charge_pct", 1.0),     # upsSmartBatteryCapacity, %
        scalar(f"{_U}.2.4.0", "ups", "battery_charge_pct", 1.0, fallback=True),
        scalar(f"{_U}.2.3.0", "ups", "runtime_s", 60.0),               # upsEstimatedMinutesRemaining
        scalar(f"{_P}.3.2.1.0", "ups", "input_voltage_v", 0.1),        # upsSmartInputLineVoltage, 1/10 V
        scalar(f"{_P}.4.2.1.0", "ups", "output_voltage_v", 0.1),       # upsSmartOutputVoltage, 1/10 V
        scalar(f"{_P}.4.2.3.0", "ups", "load_pct", 1.0),               # upsSmartOutputLoad, %
    ),
)

PROFILES = (PHOENIXTEC_UPS,)
