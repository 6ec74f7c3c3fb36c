"""Every device profile, and how one is picked for a device.

Selection under ``profile = "auto"``: the longest sysObjectID prefix among the profiles of the
device's kind (then of any kind); failing that, the generic profiles of that kind whose probe
OID answers (UPS-MIB, ENTITY-SENSOR-MIB, EMAN).
"""

from __future__ import annotations

from collectors.snmp.profiles import (cooling_profiles, generic_profiles, meter_profiles, pdu_profiles,
                                      ups_profiles)
from collectors.snmp.profiles.spec import Profile, Reading, column, scalar

ALL: tuple[Profile, ...] = (pdu_profiles.PROFILES + cooling_profiles.PROFILES + ups_profiles.PROFILES
                            + meter_profiles.PROFILES + generic_profiles.PROFILES)
BY_NAME: dict[str, Profile] = {p.name: p for p in ALL}
# Names the twin and older configs use for the same profiles.
ALIASES = {"apc_pdu": "apc_rpdu2", "raritan": "raritan_pdu2", "servertech": "sentry4", "sentry": "sentry4",
           "eaton_pdu": "eaton_epdu", "vertiv_pdu": "geist", "geist_pdu": "geist", "inrow": "apc_inrow",
           "apc_airir": "apc_inrow", "liebert": "liebert_env", "liebert_gp": "liebert_env", "ups": "ups_mib",
           "rfc1628": "ups_mib", "eaton_ups": "eaton_xups", "xups": "eaton_xups", "entity": "entity_sensor", "entity_sensor_pdu": "entity_sensor"}


def normalise(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def get_profile(name: str, kind: str | None = None) -> Profile:
    """A profile by name. A generic family named for another kind of device (the twin calls its
    meters "entity-sensor") resolves to the member for *kind*."""
    key = normalise(name)
    try:
        profile = BY_NAME[key]
        if kind and profile.kind != kind and f"{key}_{kind}" in BY_NAME:
            profile = BY_NAME[f"{key}_{kind}"]
        return profile
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown SNMP profile {name!r} (known: {known}, or auto)") from None


def by_sys_object_id(sys_object_id: str, kind: str | None = None) -> Profile | None:
    """The profile whose sysObjectID prefix matches best, preferring the device's kind."""
    best: tuple[int, int, Profile] | None = None
    oid = sys_object_id.strip(".")
    for profile in ALL:
        for prefix in profile.sys_object_ids:
            if oid == prefix or oid.startswith(prefix + "."):
                rank = (int(kind is None or profile.kind == kind), len(prefix))
                if best is None or rank > best[:2]:
                    best = (*rank, profile)
    return best[2] if best else None


def probe_candidates(kind: str | None) -> list[Profile]:
    """Generic profiles to try by probing, for a device of *kind* (any kind when None)."""
    return [p for p in ALL if p.probe_oid and (kind is None or p.kind == kind)]


__all__ = ["ALL", "BY_NAME", "Profile", "Reading", "by_sys_object_id", "column", "get_profile", "normalise",
           "probe_candidates", "scalar"]
