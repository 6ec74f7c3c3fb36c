"""Which vendor MIB the twin's SNMP agents serve for a device (``agent_profile_for``), and the
names a config may give one (``normalise_profile``). The MIBs themselves are data:
``simulator/mib_*.py``."""

from __future__ import annotations

import logging
from typing import Any

from dcim.inventory import Inventory
from simulator import mib_apc_inrow, mib_apc_pdu, mib_liebert_env, mib_meter, mib_raritan_pdu, mib_ups
from simulator.mib_common import Profile

# Logged under the agents' name, whichever part of them logs (operators filter on it).
log = logging.getLogger("simulator.snmp_agents")


PROFILES: dict[str, Profile] = {p.name: p for p in (
    mib_apc_pdu.PROFILE, mib_raritan_pdu.PROFILE, mib_apc_inrow.PROFILE, mib_liebert_env.PROFILE,
    *mib_ups.PROFILES, mib_meter.PROFILE,
)}
# Other spellings a config may use for the same MIBs.
ALIASES = {  # keys after normalisation (lower case, "-" -> "_"); names match collectors/snmp/profiles
    "apc": "apc_rpdu2", "apc_pdu": "apc_rpdu2", "rpdu2": "apc_rpdu2",
    "raritan": "raritan_pdu2", "raritan_px": "raritan_pdu2", "pdu2": "raritan_pdu2",
    "inrow": "apc_inrow", "apc_airirrc": "apc_inrow",
    "liebert": "liebert_env", "liebert_gp_env": "liebert_env", "liebert_gp_environmental": "liebert_env",
    "eaton": "eaton_xups", "eaton_ups": "eaton_xups", "ups": "ups_mib", "rfc1628": "ups_mib",
    "entity": "entity_sensor_meter", "entity_sensor": "entity_sensor_meter", "meter": "entity_sensor_meter",
}
_DEFAULT_PDU_PROFILES = ("apc_rpdu2", "raritan_pdu2")  # alternate by room order


def normalise_profile(name: str) -> str | None:
    """Profile name from a config spelling, or None if it is not one this simulator serves."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    return key if key in PROFILES else None


def agent_profile_for(kind: str, device: Any, inventory: Inventory) -> Profile:
    """Which vendor MIB the twin serves for a device.

    The device's ``snmp.profile`` wins when it is not "auto" and names a profile we serve.
    Otherwise: PDUs alternate APC / Raritan by the order of their rack's room in the config
    (demo: hall-1 APC, hall-2 Raritan); in-row coolers are APC InRow, CRAHs and chillers
    Liebert; UPSes Eaton; meters ENTITY-SENSOR-MIB.
    """
    wanted = getattr(device.snmp, "profile", "auto") if device.snmp is not None else "auto"
    if wanted and wanted != "auto":
        name = normalise_profile(wanted)
        if name is not None and PROFILES[name].kind == kind:
            return PROFILES[name]
        log.warning("device %s: profile %r is not served by the simulator, using the default", device.name, wanted)
    if kind == "pdu":
        room = inventory.rack_by_name[device.rack].room
        room_index = [r.name for r in inventory.config.rooms].index(room)
        return PROFILES[_DEFAULT_PDU_PROFILES[room_index % 2]]
    if kind == "cooling":
        return PROFILES["apc_inrow" if device.kind == "inrow" else "liebert_env"]
    if kind == "ups":
        return PROFILES["eaton_xups"]
    if kind == "meter":
        return PROFILES["entity_sensor_meter"]
    raise ValueError(f"unknown device kind {kind!r}")
