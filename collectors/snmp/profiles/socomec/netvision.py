"""Socomec UPSes on Net Vision cards. Older cards answer SOCOMECUPS-MIB under .4555.1.1.1, Net
Vision 6 cards SOCOMECUPS7-MIB under .4555.1.1.7 with the same layout; a v6 card still reports
sysObjectID .4555.1.1.1, so both profiles claim the prefix and the branch that answers decides
(identity). Battery group .1.2: upsEstimatedMinutesRemaining (.3, minutes),
upsEstimatedChargeRemaining (.4, %). Output table .1.4.4.1, one row per line:
upsOutputPercentLoad (.4, %), upsOutputPower (.5, W), upsOutputVoltage (.2, V)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_PREFIX = ("1.3.6.1.4.1.4555.1.1",)


def _readings(branch: str) -> tuple:
    return (
        column(f"{branch}.4.4.1.5", "ups", "output_power_w", 1.0, agg="sum"),      # upsOutputPower, W
        column(f"{branch}.4.4.1.4", "ups", "load_pct", 1.0, agg="max"),            # upsOutputPercentLoad
        column(f"{branch}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean"),   # upsOutputVoltage, V
        scalar(f"{branch}.2.4.0", "ups", "battery_charge_pct", 1.0),              # upsEstimatedChargeRemaining
        scalar(f"{branch}.2.3.0", "ups", "runtime_s", 60.0),                       # upsEstimatedMinutesRemaining
    )


_NV7 = "1.3.6.1.4.1.4555.1.1.7.1"
_NV = "1.3.6.1.4.1.4555.1.1.1.1"

SOCOMEC_NETVISION7 = Profile(
    name="socomec_netvision7", kind="ups", description="Socomec UPS on a Net Vision 6 card (SOCOMECUPS7-MIB)",
    sys_object_ids=_PREFIX, identity=(f"{_NV7}.2",), readings=_readings(_NV7),
)
SOCOMEC_NETVISION = Profile(
    name="socomec_netvision", kind="ups", description="Socomec UPS on a Net Vision card (SOCOMECUPS-MIB)",
    sys_object_ids=_PREFIX, identity=(f"{_NV}.2",), readings=_readings(_NV), aliases=("socomec_ups",),
)

PROFILES = (SOCOMEC_NETVISION7, SOCOMEC_NETVISION)
