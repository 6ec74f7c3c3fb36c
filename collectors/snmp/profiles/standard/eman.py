"""Electricity meter profiles. Panel meters speak many dialects; the standard ones here are
EMAN POWER-ATTRIBUTES / ENERGY-OBJECT-MIB (RFC 7460) and, as a fallback, ENTITY-SENSOR-MIB
(generic_profiles). The twin's meters are served in whatever simulator/mib_*.py defines; a
profile for them is registered here once that module exists."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

EMAN_METER = Profile(
    name="eman_meter", kind="meter", description="Meter with EMAN POWER-ATTRIBUTES / ENERGY-OBJECT-MIB (RFC 7460)",
    readings=(
        column("1.3.6.1.2.1.230.1.1.1.7", "meter", "power_w", 1.0, agg="sum"),   # eoACPwrAttributesTotalActivePower
        column("1.3.6.1.2.1.229.1.5.1.2", "meter", "energy_kwh", 0.001, agg="sum"),  # eoEnergyConsumed, Wh
    ),
    probe_oid="1.3.6.1.2.1.230.1.1.1.7", probe_is_table=True,
)

PROFILES = (EMAN_METER,)
