"""Vertiv Liebert ITA2 UPS (VERTIV-ITA2-MIB, .13400.2.54). Every object is a scalar under
.13400.2.54.2 ("system"), units from the MIB's DESCRIPTIONs:
- status .1: upsOutputSource .2 (0 no output, 1 on main, 2 on battery, 3 on bypass,
  4 on utility and battery);
- input .2: inputPhaseVoltageA .1 (0.1 V);
- output .3: outputPhaseVoltageA .1 (0.1 V), outputActivePowerA/B/C .8/.9/.10 (0.01 kW),
  outputLoadA/B/C .14/.15/.16 (0.1 %);
- battery .5: batteryRemainsTime .7 (0.1 min), batteryEnvironmentTemperature .9 (0.1 degC;
  65535 when no probe answers), batteryCapacity .10 (%).
The per-phase output objects are read as rows of the output group (index <object>.0), so the
UPS's output power is the sum of its phases and its load the most loaded phase; a single-phase
unit answers 0 on B and C."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_S = "1.3.6.1.4.1.13400.2.54.2"

VERTIV_ITA2 = Profile(
    name="vertiv_ita2", kind="ups", description="Vertiv Liebert ITA2 UPS (VERTIV-ITA2-MIB)",
    sys_object_ids=("1.3.6.1.4.1.13400.2.54",),
    aliases=("ita2",),
    readings=(
        scalar(f"{_S}.1.2.0", "ups", "on_battery", enum={2: True, 4: True}, enum_default=False),  # upsOutputSource
        scalar(f"{_S}.2.1.0", "ups", "input_voltage_v", 0.1),                  # inputPhaseVoltageA
        scalar(f"{_S}.3.1.0", "ups", "output_voltage_v", 0.1),                 # outputPhaseVoltageA
        column(f"{_S}.3", "ups", "output_power_w", 10.0, agg="sum",
               match_index={0: (8, 9, 10)}),                                  # outputActivePowerA..C, 0.01 kW
        column(f"{_S}.3", "ups", "load_pct", 0.1, agg="max",
               match_index={0: (14, 15, 16)}),                                # outputLoadA..C, 0.1 %
        scalar(f"{_S}.5.7.0", "ups", "runtime_s", 6.0),                        # batteryRemainsTime, 0.1 min
        scalar(f"{_S}.5.10.0", "ups", "battery_charge_pct", 1.0),              # batteryCapacity
        scalar(f"{_S}.5.9.0", "env", "temp_c", 0.1, allow_negative=True,
               sentinels=(65535,)),                                            # batteryEnvironmentTemperature
    ),
)

PROFILES = (VERTIV_ITA2,)
