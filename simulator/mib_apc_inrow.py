"""APC InRow RC (PowerNet-MIB airIRRC, chilled-water in-row cooler ACRC1xx), reference §2.1.

Per-unit scalars under airIRRCUnitStatus ``.318.1.1.13.3.2.2.2.N.0``. Like the real unit it
reports its cooling output, not its own electrical input (that is metered on the mechanical
panel), so ``power_w`` of the reading is not served here.
"""

from __future__ import annotations

from simulator.mib_common import INT, Profile, Scalar

STATUS = "1.3.6.1.4.1.318.1.1.13.3.2.2.2"
OPERATE_ON = 2  # airIRRCUnitStatusOperateMode: 1 standby, 2 on, 3 idle


def _unit(n: int, value, scale: float) -> Scalar:
    return Scalar(f"{STATUS}.{n}", INT, value, scale=scale, measure=True)


PROFILE = Profile(
    name="apc_inrow",
    kind="cooling",
    vendor="APC",
    model="ACRC301S",
    sys_object_id="1.3.6.1.4.1.318.1.3.14.5",  # airIRRC100Series
    sys_descr="APC Web/SNMP Management Card (MB:v4.0.1 PF:v6.4.6 PN:apc_hw05_aos_646.bin "
              "AN1:apc_hw05_acrc_646.bin MN:ACRC301S HR:05)",
    objects=(
        Scalar(f"{STATUS}.1", INT, lambda d, r: OPERATE_ON if r.cooling_kw > 0 else 1),
        _unit(2, lambda d, r: r.cooling_kw, 10),  # CoolOutput, tenths kW
        # CoolDemand: what the zone asks for; the twin meets it, so output == demand
        _unit(3, lambda d, r: r.cooling_kw, 10),
        # AirFlowMetric: whole L/s, as real units publish it (the MIB text says hundredths)
        _unit(5, lambda d, r: None if r.airflow_m3s is None else r.airflow_m3s * 1000.0, 1),
        _unit(7, lambda d, r: r.rack_inlet_temp_c, 10),  # RackInletTempMetric, tenths °C
        _unit(9, lambda d, r: r.supply_temp_c, 10),  # SupplyAirTempMetric
        _unit(11, lambda d, r: r.return_temp_c, 10),  # ReturnAirTempMetric
        _unit(16, lambda d, r: r.fan_pct, 10),  # FanSpeed, tenths %
    ),
)
