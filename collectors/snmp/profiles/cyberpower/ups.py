"""CyberPower UPS through an RMCARD (CPS-MIB, .3808.1.1.1 upsAdvance*). The card's sysObjectID
is not specific to UPSes (an OL2200RTXL2U's RMCARD205 reports .3808.1.1.3, the ePDU branch), so
the UPS is recognised by its upsBaseOutputStatus object answering (identity)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, fahrenheit, scalar

_U = "1.3.6.1.4.1.3808.1.1.1"
# upsBaseOutputStatus: 1 unknown, 2 onLine, 3 onBattery, 4 onBoost, 5 onSleep, 6 off,
# 7 rebooting, 8 onECO, 9 onBypass, 10 onBuck, 11 onOverload. Unknown/off/sleep/rebooting: absent.
_ON_BATTERY = {2: False, 3: True, 4: False, 8: False, 9: False, 10: False, 11: False}

CYBERPOWER_UPS = Profile(
    name="cyberpower_ups", kind="ups", description="CyberPower UPS with RMCARD (CPS-MIB upsAdvance*)",
    sys_object_ids=("1.3.6.1.4.1.3808",),
    identity=(f"{_U}.4.1.1",),          # upsBaseOutputStatus
    aliases=("cps_ups", "cyberpower"),
    readings=(
        scalar(f"{_U}.4.1.1.0", "ups", "on_battery", enum=_ON_BATTERY, enum_default=None),
        scalar(f"{_U}.2.2.1.0", "ups", "battery_charge_pct", 1.0),     # upsAdvanceBatteryCapacity, %
        scalar(f"{_U}.2.2.4.0", "ups", "runtime_s", 0.01),             # ...RunTimeRemaining, TimeTicks
        scalar(f"{_U}.3.2.1.0", "ups", "input_voltage_v", 0.1),        # upsAdvanceInputLineVoltage, 1/10 V
        scalar(f"{_U}.4.2.1.0", "ups", "output_voltage_v", 0.1),       # upsAdvanceOutputVoltage, 1/10 V
        scalar(f"{_U}.4.2.3.0", "ups", "load_pct", 1.0),               # upsAdvanceOutputLoad, %
        scalar(f"{_U}.4.2.5.0", "ups", "output_power_w", 1.0),         # upsAdvanceOutputPower, W
        # The card's environment probe (ENVIROSENSOR): envirTemperature in 1/10 °F (converted),
        # envirHumidity in %RH.
        scalar("1.3.6.1.4.1.3808.1.1.4.2.1.0", "env", "temp_c", allow_negative=True, tags={"position": "inlet"},
               **fahrenheit(10)),
        scalar("1.3.6.1.4.1.3808.1.1.4.3.1.0", "env", "humidity_pct", 1.0, tags={"position": "inlet"}),
    ),
)

PROFILES = (CYBERPOWER_UPS,)
