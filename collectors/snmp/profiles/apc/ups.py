"""APC Smart-UPS / Symmetra (PowerNet-MIB ``upsAdv*`` / ``upsHighPrec*``, UPS-MIB as the fallback).

Many APC cards answer only PowerNet (no UPS-MIB): everything the contract has is read from the
vendor branch, high precision (tenths) first, the whole-unit ``upsAdv`` objects as fallbacks.
"""

from __future__ import annotations

from dataclasses import replace

from collectors.snmp.profiles.spec import Profile, column, scalar
from collectors.snmp.profiles.standard.ups_mib import UPS_MIB_READINGS as _UPS_MIB

_A = "1.3.6.1.4.1.318.1.1.1"
_IEM = "1.3.6.1.4.1.318.1.1.10.2.3.2.1"   # iemStatusProbesEntry: probes plugged into the card
_VENDOR = (
    # upsPhaseInputPower (3-phase), index input.phase: input 1 is the mains input; input 2, where
    # present, is the bypass (a Galaxy VS's reads 23 W on standby) and is not the UPS's draw.
    column(f"{_A}.9.2.3.1.9", "ups", "input_power_w", 1.0, agg="sum", match_index={0: 1}),
    scalar(f"{_A}.4.2.8.0", "ups", "output_power_w", 1.0),               # upsAdvOutputActivePower
    scalar(f"{_A}.4.3.6.0", "ups", "energy_kwh", 0.01),                  # upsHighPrecOutputEnergyUsage
    scalar(f"{_A}.4.3.3.0", "ups", "load_pct", 0.1),                     # upsHighPrecOutputLoad, tenths %
    scalar(f"{_A}.4.2.3.0", "ups", "load_pct", 1.0, fallback=True),      # upsAdvOutputLoad
    scalar(f"{_A}.3.3.1.0", "ups", "input_voltage_v", 0.1),              # upsHighPrecInputLineVoltage
    scalar(f"{_A}.3.2.1.0", "ups", "input_voltage_v", 1.0, fallback=True),  # upsAdvInputLineVoltage
    scalar(f"{_A}.4.3.1.0", "ups", "output_voltage_v", 0.1),             # upsHighPrecOutputVoltage
    scalar(f"{_A}.4.2.1.0", "ups", "output_voltage_v", 1.0, fallback=True),  # upsAdvOutputVoltage
    scalar(f"{_A}.2.3.1.0", "ups", "battery_charge_pct", 0.1),           # upsHighPrecBatteryCapacity
    scalar(f"{_A}.2.2.1.0", "ups", "battery_charge_pct", 1.0, fallback=True),  # upsAdvBatteryCapacity
    scalar(f"{_A}.2.2.3.0", "ups", "runtime_s", 0.01),                   # upsAdvBatteryRunTimeRemaining, TimeTicks
    # upsBasicOutputStatus: 3 onBattery; 2 onLine, 4 onSmartBoost, ... are mains.
    scalar(f"{_A}.4.1.1.0", "ups", "on_battery", enum={3: True}, enum_default=False),
    # Probes (iemStatusProbeCurrentTemp in the unit of .5: 1 celsius; humidity in %).
    column(f"{_IEM}.3", "env", "temp_c", 1.0, index_tags={"sensor": -1}, match_column=(f"{_IEM}.5", (1,)),
           allow_negative=True, tags={"position": "inlet"}),
    column(f"{_IEM}.6", "env", "humidity_pct", 1.0, index_tags={"sensor": -1}, sentinels=(-1, 0),
           tags={"position": "inlet"}),
)
_VENDOR_FIELDS = {r.field for r in _VENDOR if r.measurement == "ups"}

APC_UPS = Profile(
    name="apc_ups", kind="ups", aliases=("apc_smartups", "apc_symmetra", "apc_galaxy"),
    description="APC Smart-UPS / Symmetra / Galaxy (PowerNet-MIB upsAdv/upsHighPrec/upsPhase + UPS-MIB)",
    # .3.2 Smart-UPS/Symmetra, .3.27 Symmetra/Smart-UPS 3-phase, .3.28 Galaxy (VS 40 kW: .3.28.75).
    sys_object_ids=("1.3.6.1.4.1.318.1.3.2", "1.3.6.1.4.1.318.1.3.27", "1.3.6.1.4.1.318.1.3.28"),
    readings=_VENDOR + tuple(replace(r, fallback=True) if r.field in _VENDOR_FIELDS else r for r in _UPS_MIB),
    post=("ups_input_below_output",),
    identity=(f"{_A}.1.1.1",),   # upsBasicIdentModel
)

PROFILES = (APC_UPS,)
