"""Every device profile, found by walking the vendor folders, and how one is picked for a device.

Each sub-package (``apc/``, ``raritan/``, ...) is one vendor family; every module in it (the
package's ``__init__`` included) that defines ``PROFILES`` contributes them. Adding a family is
adding a folder: nothing here lists them (see README.md).

Selection under ``profile = "auto"`` (:func:`candidates`, then the device's identity probes):
1. the profiles whose sysObjectID prefix matches, preferring the device's kind, then the longest
   prefix (the most specific wins);
2. several at that same rank (a sysObjectID shared by several product lines): the first, in
   registry order, whose ``identity`` subtree answers; the device logs the choice once;
3. no prefix matches: the generic profiles of that kind whose probe OID answers (UPS-MIB,
   ENTITY-SENSOR-MIB, EMAN).
"""

from __future__ import annotations

import importlib
import pkgutil

from collectors.snmp.profiles.spec import Profile, Reading, column, scalar

_SEEN: dict[str, str] = {}  # profile name -> module that defines it


def _discover() -> tuple[Profile, ...]:
    """Every PROFILES tuple of every module of every vendor folder, folders in name order."""
    found: list[Profile] = []
    seen = _SEEN
    for folder in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not folder.ispkg or folder.name.startswith("_"):
            continue
        package = importlib.import_module(f"{__name__}.{folder.name}")
        modules = [package] + [
            importlib.import_module(f"{package.__name__}.{m.name}")
            for m in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
            if not m.name.startswith("_") and not m.ispkg]
        for module in modules:
            for profile in getattr(module, "PROFILES", ()):
                if profile.name in seen:
                    if seen[profile.name] == module.__name__ or any(p is profile for p in found):
                        continue  # re-exported by the folder's __init__
                    raise ImportError(f"SNMP profile {profile.name!r} defined twice: in {seen[profile.name]} "
                                      f"and {module.__name__}")
                seen[profile.name] = module.__name__
                found.append(profile)
    return tuple(found)


ALL: tuple[Profile, ...] = _discover()
BY_NAME: dict[str, Profile] = {p.name: p for p in ALL}
# Names the twin and older configs use for the same profiles (each profile's ``aliases``).
ALIASES: dict[str, str] = {alias: p.name for p in ALL for alias in p.aliases}
# profile name -> its vendor folder (for `dcim probe --list-profiles` and error messages).
FOLDER_OF: dict[str, str] = {name: module.split(".")[3] for name, module in _SEEN.items()}


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


def _prefix_of(profile: Profile, oid: str) -> int:
    """Length of the longest of *profile*'s sysObjectID prefixes that *oid* falls under (0: none)."""
    best = 0
    for prefix in profile.sys_object_ids:
        if oid == prefix or oid.startswith(prefix + "."):
            best = max(best, len(prefix.split(".")))
    return best


def candidates(sys_object_id: str, kind: str | None = None) -> list[Profile]:
    """The profiles the sysObjectID selects, all of the best rank (kind match, then the most
    specific prefix), in registry order. More than one: the identity probes decide."""
    oid = sys_object_id.strip().strip(".")
    ranked = []
    for profile in ALL:
        length = _prefix_of(profile, oid)
        if length:
            ranked.append(((int(kind is None or profile.kind == kind), length), profile))
    if not ranked:
        return []
    top = max(rank for rank, _ in ranked)
    return [p for rank, p in ranked if rank == top]


def by_sys_object_id(sys_object_id: str, kind: str | None = None) -> Profile | None:
    """The best sysObjectID match without probing the device (the first of :func:`candidates`)."""
    found = candidates(sys_object_id, kind)
    return found[0] if found else None


def probe_candidates(kind: str | None) -> list[Profile]:
    """Generic profiles to try by probing, for a device of *kind* (any kind when None)."""
    return [p for p in ALL if p.probe_oid and (kind is None or p.kind == kind)]


__all__ = ["ALIASES", "ALL", "BY_NAME", "Profile", "Reading", "by_sys_object_id", "candidates", "column",
           "get_profile", "normalise", "probe_candidates", "scalar"]
