"""What the facility twin emits, rendered from its state: the snapshot the SNMP agents encode
(:func:`build_snapshot`) and the metric-contract Points (:func:`points`), built from the state
arrays, not the snapshot, so backfill stays cheap. Only what real devices emit (see
simulator/facility.py's docstring); nothing here changes the twin."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dcim.config import CoolingUnit, Ups
from dcim.metrics import Point
from simulator import physics, slurm_api
from simulator.readings import CoolingReading, FacilitySnapshot, MeterReading, OutletReading, PduReading, PhaseReading, UpsReading

if TYPE_CHECKING:
    from simulator.facility import FacilityTwin

GRID_VOLTAGE_V = 380.0  # 3-phase line-to-line at UPS/meter level (Korea LV distribution)
ROOM_RH_PCT = 45.0  # room humidity held by the units [assumption]


# --- the snapshot ---------------------------------------------------------------------------------


def build_snapshot(twin: FacilityTwin) -> FacilitySnapshot:
    inv = twin.inventory
    snap = FacilitySnapshot(time_ns=twin.now_ns, outdoor_temp_c=twin.outdoor_c, outdoor_rh_pct=twin.outdoor_rh,
                            it_power_w=twin.it_power_w, cooling_power_w=twin.cooling_power_w,
                            loss_power_w=twin.loss_power_w, facility_power_w=twin.facility_power_w)
    for k, rack in enumerate(inv.racks):
        snap.rack_inlet_temp_c[rack.rack] = float(twin.rack_inlet_c[k])
        snap.rack_outlet_temp_c[rack.rack] = float(twin.rack_outlet_c[k])
        snap.rack_power_w[rack.rack] = float(twin.rack_power_w[k])
    for i, p in enumerate(twin.pdus):
        snap.pdus[p.name] = _pdu_reading(twin, i)
    for u, c in cooling_readings(twin):
        snap.cooling[u.name] = c
    for ups, r in ups_readings(twin):
        snap.ups[ups.name] = r
    pf = physics.SERVER_POWER_FACTOR
    for i, m in enumerate(twin.meters):
        w = twin._meter_power_w[i]
        snap.meters[m.name] = MeterReading(power_w=w, energy_kwh=twin._meter_kwh[i], voltage_v=GRID_VOLTAGE_V,
                                           current_a=w / (math.sqrt(3) * GRID_VOLTAGE_V * pf))
    return snap


def _pdu_reading(twin: FacilityTwin, i: int) -> PduReading:
    p = twin.pdus[i]
    pf = physics.SERVER_POWER_FACTOR
    volt = twin._pdu_voltage_v[i]
    currents = twin._phase_current_a[i].tolist()
    phase_w = twin._phase_power_w[i].tolist()
    phase_kwh = twin._phase_kwh[i].tolist()
    phases = [PhaseReading(current_a=currents[j], voltage_v=volt, power_w=phase_w[j],
                           apparent_power_va=phase_w[j] / pf, energy_kwh=phase_kwh[j])
              for j in range(p.phases)]
    outlet_w = twin._outlet_power_w[i].tolist()
    outlet_kwh = twin._outlet_kwh[i].tolist()
    k_a = 1.0 / (volt * pf)
    outlets = [OutletReading(current_a=w * k_a, power_w=w, energy_kwh=e) for w, e in zip(outlet_w, outlet_kwh)]
    rk = twin._pdu_rack[i]
    return PduReading(
        power_w=float(twin._pdu_power_w[i]), apparent_power_va=float(twin._pdu_power_w[i] / pf),
        energy_kwh=float(twin._pdu_kwh[i]), voltage_v=volt, current_a=float(sum(currents)),
        breaker_a=p.breaker_a, phases=phases, outlets=outlets,
        inlet_temp_c=float(twin.rack_inlet_c[rk]), inlet_rh_pct=ROOM_RH_PCT,
        outlet_temp_c=float(twin.rack_outlet_c[rk]))


def cooling_readings(twin: FacilityTwin) -> list[tuple[CoolingUnit, CoolingReading]]:
    """(unit config, CoolingReading) for every cooling unit, air units first."""
    out = []
    for u, st in zip(twin.air_units, twin._unit_state):
        mask = st["mask"]
        inlet = float(twin.rack_inlet_c[mask].max()) if mask.any() else None
        out.append((u, CoolingReading(
            kind=u.kind, supply_temp_c=st["supply_c"], return_temp_c=st["return_c"],
            setpoint_c=u.supply_setpoint_c, rack_inlet_temp_c=inlet, fan_pct=100.0 * st["speed"],
            airflow_m3s=st["flow"], cooling_kw=st["heat_w"] / 1000.0, power_w=st["power_w"],
            humidity_pct=ROOM_RH_PCT, economizer_pct=None, cop=st["cop"])))
    for c, st in zip(twin.chillers, twin._chiller_state):
        out.append((c, CoolingReading(
            # Variable primary flow holds the design water ΔT while there is load.
            kind="chiller", supply_temp_c=c.supply_setpoint_c,
            return_temp_c=c.supply_setpoint_c + (physics.WATER_DT_K if st["heat_w"] > 0 else 0.0),
            setpoint_c=c.supply_setpoint_c, rack_inlet_temp_c=None, fan_pct=100.0 * st["tower_frac"],
            airflow_m3s=None, cooling_kw=st["heat_w"] / 1000.0, power_w=st["total_w"],
            humidity_pct=twin.outdoor_rh, economizer_pct=100.0 * st["economizer"], cop=st["cop"])))
    return out


def ups_readings(twin: FacilityTwin) -> list[tuple[Ups, UpsReading]]:
    out = []
    pf = physics.SERVER_POWER_FACTOR
    for i, u in enumerate(twin.upses):
        out_w, in_w = twin._ups_out_w[i], twin._ups_in_w[i]
        load = out_w / (u.capacity_kw * 1000.0)
        out.append((u, UpsReading(
            input_power_w=in_w, output_power_w=out_w, load_pct=100.0 * load, on_battery=False,
            energy_kwh=twin._ups_kwh[i], battery_charge_pct=100.0, runtime_s=physics.ups_runtime_s(load),
            input_voltage_v=GRID_VOLTAGE_V, output_voltage_v=GRID_VOLTAGE_V,
            output_current_a=out_w / (math.sqrt(3) * GRID_VOLTAGE_V * pf))))
    return out


# --- metric-contract points -------------------------------------------------------------------------


def points(twin: FacilityTwin, *, include_outlets: bool = False, include_gpus: bool = True) -> list[Point]:
    """The current state as metric-contract Points (one per series), stamped ``now_ns``.
    Outlets are optional (24 series per PDU). Tag dicts are fresh per point."""
    t = twin.now_ns
    out: list[Point] = []
    if include_gpus:
        out += gpu_points(twin, t)
    out += _pdu_points(twin, t, include_outlets)
    out += _device_points(twin, t)
    out += _env_points(twin, t)
    out.append(_facility_point(twin, t))
    return out


def _pdu_points(twin: FacilityTwin, t: int, include_outlets: bool) -> list[Point]:
    pf = physics.SERVER_POWER_FACTOR
    out = []
    pdu_kwh = twin._pdu_kwh.tolist()  # plain floats: the line protocol takes no numpy scalars
    for i, p in enumerate(twin.pdus):
        tags = twin._pdu_tags[i]
        volt = twin._pdu_voltage_v[i]
        currents = twin._phase_current_a[i].tolist()
        phase_w = twin._phase_power_w[i].tolist()
        phase_kwh = twin._phase_kwh[i].tolist()
        power = float(twin._pdu_power_w[i])
        out.append(Point("pdu", dict(tags), {
            "power_w": power, "apparent_power_va": power / pf, "power_factor": pf,
            "energy_kwh": pdu_kwh[i], "current_a": sum(currents), "voltage_v": volt,
            "load_pct": 100.0 * max(currents) / p.breaker_a, "breaker_a": p.breaker_a}, t))
        for j in range(p.phases):
            out.append(Point("pdu_phase", {**tags, "phase": str(j + 1)}, {
                "power_w": phase_w[j], "apparent_power_va": phase_w[j] / pf, "power_factor": pf,
                "energy_kwh": phase_kwh[j], "current_a": currents[j], "voltage_v": volt,
                "load_pct": 100.0 * currents[j] / p.breaker_a, "breaker_a": p.breaker_a}, t))
        if include_outlets:
            outlet_w = twin._outlet_power_w[i].tolist()
            outlet_kwh = twin._outlet_kwh[i].tolist()
            for o in range(p.outlets):
                out.append(Point("pdu_outlet", {**tags, "outlet": str(o + 1)}, {
                    "power_w": outlet_w[o], "energy_kwh": outlet_kwh[o], "current_a": outlet_w[o] / (volt * pf),
                    "voltage_v": volt}, t))
    return out


def _device_points(twin: FacilityTwin, t: int) -> list[Point]:
    """Cooling units, UPSes and meters."""
    inv = twin.inventory
    out = []
    for u, c in cooling_readings(twin):
        fields = {"supply_temp_c": c.supply_temp_c, "return_temp_c": c.return_temp_c, "setpoint_c": c.setpoint_c,
                  "rack_inlet_temp_c": c.rack_inlet_temp_c, "fan_pct": c.fan_pct, "airflow_m3s": c.airflow_m3s,
                  "cooling_kw": c.cooling_kw, "power_w": c.power_w, "humidity_pct": c.humidity_pct,
                  "economizer_pct": c.economizer_pct, "cop": c.cop}
        out.append(Point("cooling", inv.device_tags("cooling", u),
                         {k: float(v) for k, v in fields.items() if v is not None}, t))
    for ups, r in ups_readings(twin):
        out.append(Point("ups", inv.device_tags("ups", ups), {
            "input_power_w": r.input_power_w, "output_power_w": r.output_power_w, "load_pct": r.load_pct,
            "on_battery": r.on_battery, "energy_kwh": r.energy_kwh, "battery_charge_pct": r.battery_charge_pct,
            "runtime_s": r.runtime_s, "input_voltage_v": r.input_voltage_v,
            "output_voltage_v": r.output_voltage_v}, t))
    for i, m in enumerate(twin.meters):
        out.append(Point("meter", inv.device_tags("meter", m),
                         {"power_w": twin._meter_power_w[i], "energy_kwh": twin._meter_kwh[i]}, t))
    return out


def _env_points(twin: FacilityTwin, t: int) -> list[Point]:
    """Each rack's inlet and outlet air."""
    out = []
    inlet = twin.rack_inlet_c.tolist()
    outlet = twin.rack_outlet_c.tolist()
    for k, rack in enumerate(twin.inventory.racks):
        base = {"site": twin.site, "room": rack.room, "rack": rack.rack}
        out.append(Point("env", {**base, "sensor": f"{rack.rack}-inlet", "position": "inlet"},
                         {"temp_c": inlet[k], "humidity_pct": ROOM_RH_PCT}, t))
        out.append(Point("env", {**base, "sensor": f"{rack.rack}-outlet", "position": "outlet"},
                         {"temp_c": outlet[k]}, t))
    return out


def _facility_point(twin: FacilityTwin, t: int) -> Point:
    total_w, it_w, cooling_w = metered_totals_w(twin)
    fac: dict[str, float | int | bool | str] = {
        "total_power_w": total_w, "it_power_w": it_w, "cooling_power_w": cooling_w,
        "loss_power_w": total_w - it_w - cooling_w,
        "outdoor_temp_c": twin.outdoor_c, "outdoor_rh_pct": twin.outdoor_rh}
    if it_w > 0:  # PUE is undefined without IT load: absent, not 0
        fac["pue"] = total_w / it_w
    return Point("facility", {"site": twin.site}, fac, t)


def metered_totals_w(twin: FacilityTwin) -> tuple[float, float, float]:
    """(total, IT, cooling) power as the site's meters read them (with their errors), as a
    real site derives its ``facility`` point (collectors/facility.py); a role without a
    meter falls back to the twin's own value (UPS output for PUE category 1 is as exact as
    the UPS readings the twin emits)."""
    def role(name: str, fallback: float) -> float:
        values = [w for m, w in zip(twin.meters, twin._meter_power_w) if m.role == name]
        return float(sum(values)) if values else fallback
    total = role("facility_total", twin.facility_power_w)
    cooling = role("cooling", twin.cooling_power_w)
    it = role("it", twin.it_power_w) if twin.config.site.pue_category == 3 else twin.it_power_w
    return total, it, cooling


def gpu_points(twin: FacilityTwin, t: int) -> list[Point]:
    """A ``gpu`` point (what NVML reports) and a ``workload`` point (what the scheduler says) per GPU."""
    g = twin.gpu_state
    cons = twin.constraints
    # Convert arrays to Python scalars in bulk (much faster than per-element numpy access).
    power = g.power_w.round(3).tolist()
    energy_j = (g.energy_mj / 1000.0).tolist()
    cap = g.cap_w.tolist()
    temp = g.temp_c.round().tolist()
    mem_temp = g.mem_temp_c.round().tolist()
    util = (g.util * 100.0).round().tolist()
    mem_util = (g.mem_util * 100.0).round().tolist()
    mem_used = g.mem_used_bytes.tolist()
    clock = g.sm_clock_mhz.round().tolist()
    throttle = g.throttle.tolist()
    ecc_c = g.ecc_corrected.tolist()
    # The workload fields come from the twin's Slurm through the Slurm source's own code
    # (simulator/slurm_api.py): job, tenant, class. Nothing twin-only (no true throughput).
    scheduled = {p.tags["uuid"]: p.fields for p in slurm_api.workload_points(twin, twin.slurm_names,
                                                                              twin.workload_mapping)}
    min_w, max_w, default_w = cons.min_w, cons.max_w, cons.default_w
    mem_total, mem_clock = physics.GPU_MEM_TOTAL_BYTES, physics.GPU_MEM_CLOCK_MHZ
    out: list[Point] = []
    append = out.append
    for i, uuid in enumerate(twin.uuids):
        append(Point("gpu", dict(twin._gpu_tags[i]), {
            "power_w": power[i], "power_avg_w": power[i], "energy_j": energy_j[i], "power_limit_w": cap[i],
            "power_limit_default_w": default_w, "power_limit_min_w": min_w, "power_limit_max_w": max_w,
            "temp_c": temp[i], "mem_temp_c": mem_temp[i], "util_pct": util[i], "mem_util_pct": mem_util[i],
            "mem_used_bytes": mem_used[i], "mem_total_bytes": mem_total, "sm_clock_mhz": clock[i],
            "mem_clock_mhz": mem_clock, "throttle_reasons": throttle[i], "ecc_uncorrected": 0,
            "ecc_corrected": ecc_c[i], "pstate": 0}, t))
        append(Point("workload", dict(twin._workload_tags[i]), dict(scheduled[uuid]), t))
    return out
