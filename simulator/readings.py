"""What the twin's physics exposes each step, per device: the ground truth its SNMP agents
encode into vendor MIBs and its simulated GPUs report.

Units are SI as in the metric contract. ``None`` means the device does not have that reading.
Energy counters only ever increase (unless an explicit reset is injected).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PhaseReading:
    current_a: float
    voltage_v: float
    power_w: float
    apparent_power_va: float
    energy_kwh: float


@dataclass
class OutletReading:
    current_a: float
    power_w: float
    energy_kwh: float
    on: bool = True


@dataclass
class PduReading:
    power_w: float
    apparent_power_va: float
    energy_kwh: float
    voltage_v: float
    current_a: float  # total input current (sum over phases for 3-phase, per-phase RMS summed)
    breaker_a: float
    phases: list[PhaseReading] = field(default_factory=list)
    outlets: list[OutletReading] = field(default_factory=list)
    inlet_temp_c: float | None = None  # rack inlet probe attached to the PDU
    inlet_rh_pct: float | None = None
    outlet_temp_c: float | None = None  # the probe at the rack's rear (its exhaust), named so


@dataclass
class CoolingReading:
    kind: str  # crah, inrow, chiller
    supply_temp_c: float
    return_temp_c: float
    setpoint_c: float
    rack_inlet_temp_c: float | None
    fan_pct: float | None
    airflow_m3s: float | None
    cooling_kw: float
    power_w: float
    humidity_pct: float | None
    economizer_pct: float | None = None
    cop: float | None = None


@dataclass
class UpsReading:
    input_power_w: float
    output_power_w: float
    load_pct: float
    on_battery: bool
    energy_kwh: float  # output energy counter
    battery_charge_pct: float
    runtime_s: float
    input_voltage_v: float
    output_voltage_v: float
    output_current_a: float


@dataclass
class MeterReading:
    power_w: float
    energy_kwh: float
    voltage_v: float = 380.0
    current_a: float = 0.0


@dataclass
class FacilitySnapshot:
    """Everything the twin knows at one instant (UTC ns)."""

    time_ns: int
    pdus: dict[str, PduReading] = field(default_factory=dict)
    cooling: dict[str, CoolingReading] = field(default_factory=dict)
    ups: dict[str, UpsReading] = field(default_factory=dict)
    meters: dict[str, MeterReading] = field(default_factory=dict)
    rack_inlet_temp_c: dict[str, float] = field(default_factory=dict)
    rack_outlet_temp_c: dict[str, float] = field(default_factory=dict)
    rack_power_w: dict[str, float] = field(default_factory=dict)
    outdoor_temp_c: float = 15.0
    outdoor_rh_pct: float = 60.0
    it_power_w: float = 0.0
    cooling_power_w: float = 0.0
    loss_power_w: float = 0.0
    facility_power_w: float = 0.0
