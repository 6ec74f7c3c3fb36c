"""Delta UPS network agents (DeltaUPS-MIB, sysObjectID .2254.2.4), also sold as Minuteman. The
agent publishes its measurements on the standard UPS-MIB (RFC 1628); the vendor branch carries
identity only, so the standard readings are the profile."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile
from collectors.snmp.profiles.standard.ups_mib import UPS_MIB_READINGS

DELTA_UPS = Profile(
    name="delta_ups", kind="ups", description="Delta / Minuteman UPS agent (DeltaUPS-MIB identity + UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.2254.2",),
    aliases=("deltaups", "minuteman"),
    readings=UPS_MIB_READINGS, post=("ups_input_below_output",),
)

PROFILES = (DELTA_UPS,)
