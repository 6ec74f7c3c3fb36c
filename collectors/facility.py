"""The ``facility`` measurement, derived from one cycle's meter, UPS, PDU and cooling readings.

Pure function, no I/O. Definitions (The Green Grid):

- total_power_w: the facility_total meters, summed;
- it_power_w: at the metering point of the site's PUE category: 1 = UPS output (summed over
  the UPSes), 2 = PDU input (summed over the rack PDUs), 3 = the ``it`` meters;
- cooling_power_w: the ``cooling`` (mechanical panel) meters; failing those, the cooling
  units' own electrical input when every unit reports it;
- loss_power_w = total - IT - cooling (distribution, UPS losses, lighting);
- pue = total / IT.

A value is absent when an input is missing or incomplete: if 2 UPSes are expected and one did
not answer, the IT power of one UPS would make the PUE look twice as bad, so there is no PUE
that cycle. A PUE is never made up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from dcim.metrics import FieldValue, Point


def _sum(points: list[Point], field: str, expected: int | None) -> float | None:
    values = [float(p.fields[field]) for p in points if field in p.fields]
    if not values or (expected is not None and len(values) < expected):
        return None
    return float(sum(values))


def derive_facility(points: Iterable[Point], site: str, *, pue_category: int = 1,
                    expected: dict[str, int] | None = None, time_ns: int | None = None) -> Point | None:
    """The facility point for *site* from a cycle's *points*, or None when nothing is derivable.

    *expected* counts the devices of each input the site has (keys ``meter_facility_total``,
    ``meter_cooling``, ``meter_it``, ``ups``, ``pdu``, ``cooling``); when given, an input is only
    used if every one of its devices reported.
    """
    expected = expected or {}
    site_points = [p for p in points if p.tags.get("site") in (site, None)]
    meters = [p for p in site_points if p.measurement == "meter"]

    def meter(role: str) -> float | None:
        return _sum([p for p in meters if p.tags.get("role") == role], "power_w",
                    expected.get(f"meter_{role}"))

    total = meter("facility_total")
    if pue_category == 1:
        it = _sum([p for p in site_points if p.measurement == "ups"], "output_power_w", expected.get("ups"))
    elif pue_category == 2:
        it = _sum([p for p in site_points if p.measurement == "pdu"], "power_w", expected.get("pdu"))
    else:
        it = meter("it")
    cooling = meter("cooling")
    if cooling is None and not expected.get("meter_cooling"):
        cooling = _sum([p for p in site_points if p.measurement == "cooling"], "power_w",
                       expected.get("cooling") or None)

    fields: dict[str, FieldValue] = {}
    if total is not None:
        fields["total_power_w"] = total
    if it is not None:
        fields["it_power_w"] = it
    if cooling is not None:
        fields["cooling_power_w"] = cooling
    if total is not None and it is not None and cooling is not None:
        fields["loss_power_w"] = total - it - cooling
    if total is not None and it is not None and it > 0:
        fields["pue"] = round(total / it, 6)
    if not fields:
        return None
    return Point("facility", {"site": site}, fields, time.time_ns() if time_ns is None else time_ns)
