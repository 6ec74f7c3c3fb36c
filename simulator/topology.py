"""The twin's fixed wiring, built once from the inventory: which outlet and phase of which PDU
carries each server, which cooling unit serves each rack and how much hot air it breathes back,
which UPS feeds each rack. Pure functions over the inventory (the one random input, the PSUs'
uneven load sharing, comes from the caller's generator so the twin's random streams stay put)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcim.config import CoolingUnit, Pdu, Ups
from dcim.inventory import Inventory
from simulator import physics


@dataclass
class PduMaps:
    """Linear maps from server power to outlet and phase power, every PDU stacked, so a step is
    two small matrix products instead of a loop over PDUs."""

    phase_slices: list[slice]  # each PDU's rows in the stacked phase arrays
    outlet_slices: list[slice]  # each PDU's rows in the stacked outlet arrays
    m_outlet: np.ndarray  # outlets × servers
    m_phase: np.ndarray  # phases × servers
    phase_pdu: np.ndarray  # the PDU of each stacked phase
    outlet_pdu: np.ndarray  # the PDU of each stacked outlet


def pdu_maps(pdus: Sequence[Pdu], pdu_rack: Sequence[int], per_rack: np.ndarray, servers_of_rack: list[list[int]],
             n_servers: int, rng: np.random.Generator) -> PduMaps:
    """A rack's load is shared equally by its PDUs (dual-corded A/B servers). Each server's share
    of a PDU spreads over 3 outlets (one per phase), PSU sharing uneven by a few percent
    [assumption], which gives realistic mild phase imbalance."""
    phase_slices, outlet_slices = [], []
    ph_off = ol_off = 0
    for p in pdus:
        phase_slices.append(slice(ph_off, ph_off + p.phases))
        outlet_slices.append(slice(ol_off, ol_off + p.outlets))
        ph_off += p.phases
        ol_off += p.outlets
    m_outlet = np.zeros((ol_off, n_servers))
    m_phase = np.zeros((ph_off, n_servers))
    phase_pdu = np.zeros(ph_off, dtype=np.int64)
    outlet_pdu = np.zeros(ol_off, dtype=np.int64)
    for i, (p, rk) in enumerate(zip(pdus, pdu_rack)):
        share = 1.0 / per_rack[rk]
        ps, os_ = phase_slices[i], outlet_slices[i]
        phase_pdu[ps] = i
        outlet_pdu[os_] = i
        for j, k in enumerate(servers_of_rack[rk]):
            w = np.clip(1.0 + rng.normal(0.0, 0.04, 3), 0.8, 1.2)
            w = w / w.sum()
            for m in range(3):
                if p.outlets:
                    outlet = (3 * j + m) % p.outlets
                    m_outlet[os_.start + outlet, k] += share * w[m]
                    m_phase[ps.start + outlet % p.phases, k] += share * w[m]
                else:
                    m_phase[ps.start:ps.stop, k] += share * w[m] / p.phases
    return PduMaps(phase_slices, outlet_slices, m_outlet, m_phase, phase_pdu, outlet_pdu)


def rack_units(inv: Inventory, air_units: Sequence[CoolingUnit], rack_index: dict[str, int]) -> np.ndarray:
    """The air unit (index into *air_units*) serving each rack, −1 for none: each unit serves the
    racks it names; racks no unit names go to the first air unit of their room."""
    rack_unit = np.full(len(inv.racks), -1, dtype=np.int64)
    for ui, u in enumerate(air_units):
        for name in u.racks:
            if name in rack_index and rack_unit[rack_index[name]] < 0:
                rack_unit[rack_index[name]] = ui
    for k, r in enumerate(inv.racks):
        if rack_unit[k] < 0:
            for ui, u in enumerate(air_units):
                if u.room == r.room:
                    rack_unit[k] = ui
                    break
    return rack_unit


def rack_recirculation(inv: Inventory, air_units: Sequence[CoolingUnit], rack_unit: np.ndarray) -> np.ndarray:
    """Recirculation per rack [assumption, physics.RECIRC_*]: row ends leak more in rooms."""
    row_len: dict[tuple[str, int], int] = {}
    for r in inv.racks:
        row_len[(r.room, r.row_index)] = max(row_len.get((r.room, r.row_index), 0), r.position + 1)
    recirc = []
    for k, r in enumerate(inv.racks):
        ui = rack_unit[k]
        inrow = ui >= 0 and air_units[ui].kind == "inrow"
        f = physics.RECIRC_INROW if inrow else physics.RECIRC_ROOM
        if not inrow and (r.position == 0 or r.position == row_len[(r.room, r.row_index)] - 1):
            f += physics.RECIRC_ROW_END_EXTRA
        recirc.append(f)
    return np.array(recirc)


def rack_ups_shares(upses: Sequence[Ups], rack_room: Sequence[str]) -> np.ndarray:
    """UPS × rack: the share of each rack each UPS feeds. A UPS serves the racks of its rooms
    (split evenly when several share a room)."""
    shares = np.zeros((len(upses), len(rack_room)))
    for k, room in enumerate(rack_room):
        serving = [ui for ui, u in enumerate(upses) if room in u.rooms]
        for ui in serving:
            shares[ui, k] = 1.0 / len(serving)
    return shares

