"""Liebert/Vertiv UPS behind an IntelliSlot card (UPS-MIB).

Every IntelliSlot card reports sysObjectID .476.1.42, UPS or cooling unit alike, so the UPS is
told apart by which tables answer (identity): LIEBERT-GP-POWER (.476.1.42.3.5) or UPS-MIB's
identity group. A card answering neither (the Liebert PEX recording) stays the cooling profile,
which has no identity and is the family's default."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile
from collectors.snmp.profiles.standard.ups_mib import UPS_MIB_READINGS

LIEBERT_UPS = Profile(
    name="liebert_ups", kind="ups", aliases=("liebert_gxt", "vertiv_intellislot_ups"),
    description="Liebert/Vertiv UPS on an IntelliSlot card (UPS-MIB), told from cooling by the tables that answer",
    sys_object_ids=("1.3.6.1.4.1.476.1.42",),
    identity=("1.3.6.1.4.1.476.1.42.3.5", "1.3.6.1.2.1.33.1.1"),   # lgpPower, upsIdent
    readings=UPS_MIB_READINGS,
    post=("ups_input_below_output",),
)

PROFILES = (LIEBERT_UPS,)
