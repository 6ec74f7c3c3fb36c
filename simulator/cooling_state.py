"""One step of the twin's cooling and power chain, as pure functions of the step's heat and
power: each air unit's fans, temperatures and power, the chiller plant's share of the heat, the
UPSes' output and losses. The facility twin (simulator/facility.py) calls these in order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dcim.config import CoolingUnit, Ups
from simulator import physics


def air_unit_state(u: CoolingUnit, heat_w: float, direct_expansion: bool) -> dict:
    """An air unit removing *heat_w* from its racks, plus its own fan heat. *direct_expansion*
    (no chiller on site): the unit's own compressor does the cooling, and draws for it."""
    cap_w = u.capacity_kw * 1000.0
    speed = physics.unit_fan_speed_frac(heat_w, cap_w)
    rated_fan_w = physics.UNIT_FAN_W_PER_KW * u.capacity_kw
    fan_w = physics.fan_power_w(rated_fan_w, speed)
    removed_w = heat_w + fan_w
    over = max(0.0, removed_w / cap_w - 1.0)
    supply_c = u.supply_setpoint_c + physics.OVERLOAD_K_PER_FRAC * over
    flow = speed * physics.air_flow_m3s(cap_w, physics.UNIT_DESIGN_DT_K)
    return_c = supply_c + removed_w / (physics.AIR_DENSITY_KG_M3 * physics.AIR_CP_J_KGK * flow)
    power_w = fan_w
    cop = None
    if direct_expansion:
        cop = physics.crac_cop(supply_c)
        power_w += removed_w / cop
    return dict(heat_w=removed_w, speed=speed, flow=flow, supply_c=supply_c, return_c=return_c, power_w=power_w,
                cop=cop)


def chiller_states(chillers: Sequence[CoolingUnit], air_heat_w: float, outdoor_c: float,
                   outdoor_rh: float) -> tuple[list[dict], float]:
    """The chiller plant(s) sharing the air units' heat by capacity: each one's state and the
    plant's power (W)."""
    states = []
    plant_w = 0.0
    total_cap = sum(c.capacity_kw for c in chillers) or 1.0
    for c in chillers:
        heat_w = air_heat_w * c.capacity_kw / total_cap
        st = physics.plant_power_w(heat_w, c.capacity_kw * 1000.0, c.supply_setpoint_c, outdoor_c, outdoor_rh)
        st["heat_w"] = heat_w
        states.append(st)
        total_w = st["total_w"]
        assert total_w is not None  # physics.plant_power_w: only its cop may be None
        plant_w += total_w
    return states, plant_w


def ups_chain(upses: Sequence[Ups], rack_ups_share: np.ndarray,
              rack_pdu_in: np.ndarray) -> tuple[list[float], list[float], float, float]:
    """(each UPS's output W, its input W, their losses together, the racks' power no UPS carries)."""
    out_ws: list[float] = []
    in_ws: list[float] = []
    ups_loss_w = 0.0
    for ui, u in enumerate(upses):
        out_w = float((rack_ups_share[ui] * rack_pdu_in).sum())
        loss = float(physics.chain_loss_w(out_w, u.capacity_kw * 1000.0, physics.UPS_LOSS))
        out_ws.append(out_w)
        in_ws.append(out_w + loss)
        ups_loss_w += loss
    unprotected_w = float(((1.0 - rack_ups_share.sum(axis=0)) * rack_pdu_in).sum()) if upses \
        else float(rack_pdu_in.sum())
    return out_ws, in_ws, ups_loss_w, unprotected_w
