"""Janitza UMG 604/605/508/509/511 power analysers (JANITZA-MIB, .34278): rmsSumme3 p3 is the
three-phase real power in W, energieSumme3 wh3 the three-phase active energy in 1/10 kWh. The
meter contract carries power and energy only; the per-phase objects (.34278.1) are not read."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, scalar

_J = "1.3.6.1.4.1.34278"

JANITZA_UMG = Profile(
    name="janitza_umg", kind="meter", description="Janitza UMG power analyser (JANITZA-MIB)",
    sys_object_ids=(_J,),
    aliases=("janitza",),
    readings=(
        # Real power may be negative (energy exported): every value is a reading, no sentinel.
        scalar(f"{_J}.2.1.0", "meter", "power_w", 1.0, allow_negative=True, sentinels=()),  # p3, W
        scalar(f"{_J}.5.1.0", "meter", "energy_kwh", 0.1, sentinels=()),                   # wh3, 1/10 kWh
    ),
)

PROFILES = (JANITZA_UMG,)
