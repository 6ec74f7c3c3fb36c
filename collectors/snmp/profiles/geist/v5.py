"""Vertiv/Geist rack PDUs (VERTIV-V5-MIB / GEIST-V5-MIB)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

# --- Vertiv / Geist (GEIST-IMD / VERTIV-V5-MIB, .21239.5.2.3) -----------------------------------
_G = "1.3.6.1.4.1.21239.5.2.3"
GEIST = Profile(
    name="geist", aliases=('vertiv_pdu', 'geist_pdu'), kind="pdu", description="Vertiv/Geist rack PDU (VERTIV-V5-MIB)",
    # .21239.5.2: V5 firmware; .21239.2: older Geist; .21239.42: the newer Vertiv/Geist rPDU IDs,
    # which publish the same V5 tables.
    sys_object_ids=("1.3.6.1.4.1.21239.5.2", "1.3.6.1.4.1.21239.2", "1.3.6.1.4.1.21239.42"),
    readings=(
        column(f"{_G}.1.1.9", "pdu", "power_w", 1.0, agg="sum"),
        column(f"{_G}.1.1.10", "pdu", "apparent_power_va", 1.0, agg="sum"),
        column(f"{_G}.1.1.11", "pdu", "power_factor", 0.01, agg="mean"),          # percent
        column(f"{_G}.1.1.12", "pdu", "energy_kwh", 0.001, agg="sum"),            # Wh, capped gauge
        column(f"{_G}.2.1.4", "pdu_phase", "voltage_v", 0.1, index_tags={"phase": -1}),    # decivolts
        column(f"{_G}.2.1.8", "pdu_phase", "current_a", 0.01, index_tags={"phase": -1}),   # centiamps
        column(f"{_G}.2.1.12", "pdu_phase", "power_w", 1.0, index_tags={"phase": -1}),
        column(f"{_G}.2.1.13", "pdu_phase", "apparent_power_va", 1.0, index_tags={"phase": -1}),
        column(f"{_G}.2.1.14", "pdu_phase", "power_factor", 0.01, index_tags={"phase": -1}),
        column(f"{_G}.2.1.15", "pdu_phase", "energy_kwh", 0.001, index_tags={"phase": -1}),
        column(f"{_G}.3.1.4", "pdu_breaker", "current_a", 0.01, index_tags={"breaker": -1}),
        column(f"{_G}.3.1.12", "pdu_breaker", "power_w", 1.0, index_tags={"breaker": -1}),
        column(f"{_G}.6.1.8", "pdu_outlet", "current_a", 0.01, index_tags={"outlet": -1}),
        column(f"{_G}.6.1.12", "pdu_outlet", "power_w", 1.0, index_tags={"outlet": -1}),
        column(f"{_G}.6.1.15", "pdu_outlet", "energy_kwh", 0.001, index_tags={"outlet": -1}),
    ),
)

PROFILES = (GEIST,)
