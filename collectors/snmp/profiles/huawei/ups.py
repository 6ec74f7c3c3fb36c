"""Huawei UPS2000/UPS5000 on a GSE200M/NetEco card (HUAWEI-UPS-MIB, .2011.6.174.1). The card
reports Net-SNMP's generic Linux sysObjectID, so the profile is found by probing
hwUpsDeviceType. Its UPS-MIB answers with values that do not agree with the UPS's own objects
(upsOutputPower 34 W on a UPS carrying 10 kW), hence a vendor profile.

The per-phase objects are separate columns of one table indexed by the UPS (a parallel system
has one row per rack), so each reading walks the table entry and picks its columns by index
part 0 (the column number): phase A/B/C of one quantity roll up into one UPS field. Scales are
the MIB's (NetEco "accurate to one decimal place"): voltages 0.1 V, active power 0.1 kW, load
0.1 %, battery capacity %, backup time s."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_H = "1.3.6.1.4.1.2011.6.174.1"
_OUTPUT = f"{_H}.4.100.1"     # hwUpsOutputEntry: column.deviceId
_INPUT = f"{_H}.3.100.1"      # hwUpsInputEntry
_BATTERY = f"{_H}.6.100.1"    # hwUpsBatteryEntry
_OPER = f"{_H}.2.101.1"       # hwUpsDeviceOperInfoEntry

HUAWEI_UPS = Profile(
    name="huawei_ups", kind="ups", description="Huawei UPS2000/UPS5000 (HUAWEI-UPS-MIB)",
    probe_oid=f"{_H}.2.100.1.2.1",    # hwUpsDeviceType of the first UPS
    aliases=("huawei_ups5000",),
    readings=(
        # hwUpsOutputActivePowerA/B/C (.8/.9/.10), 0.1 kW.
        column(_OUTPUT, "ups", "output_power_w", 100.0, match_index={0: (8, 9, 10)}, agg="sum"),
        # hwUpsOutputLoadA/B/C (.14/.15/.16), 0.1 %: the most loaded phase, as for UPS-MIB lines.
        column(_OUTPUT, "ups", "load_pct", 0.1, match_index={0: (14, 15, 16)}, agg="max"),
        column(_OUTPUT, "ups", "output_voltage_v", 0.1, match_index={0: (1, 2, 3)}, agg="mean"),
        column(_INPUT, "ups", "input_voltage_v", 0.1, match_index={0: (1, 2, 3)}, agg="mean"),
        # hwUpsDevicePowerSupplyMethod: 4 battery mode, 7 battery ECO mode.
        column(f"{_OPER}.1", "ups", "on_battery", enum={4: True, 7: True}, enum_default=False, agg="first"),
        column(f"{_BATTERY}.3", "ups", "battery_charge_pct", 1.0, agg="mean"),  # hwUpsBatteryCapacityLeft, %
        column(f"{_BATTERY}.4", "ups", "runtime_s", 1.0, agg="first"),          # hwUpsBatteryBackupTime, s
    ),
)

PROFILES = (HUAWEI_UPS,)
