"""The report's arithmetic: plain functions over series, no I/O.

Counters are stored raw (DESIGN.md); their reset-aware increase is ``dcim.store.counters``
(the stores compute it too). Where a device has no counter, energy comes from integrating mean
power over time buckets. Coverage is the share of the period's buckets that had data.
"""

from __future__ import annotations

NS_PER_H = 3.6e12


def integrate_mean_sum(sum_of_means_w: float, bucket_s: float) -> float:
    """Energy in kWh from the sum (W) of the mean powers of buckets of *bucket_s* seconds."""
    return sum_of_means_w * bucket_s / 3.6e6


def coverage_of(buckets_with_data: int, expected_buckets: int) -> float:
    """Share (%) of the period's buckets that held data, from their count."""
    if expected_buckets <= 0:
        return 0.0
    return min(100.0, 100.0 * buckets_with_data / expected_buckets)


def pue(facility_kwh: float | None, it_kwh: float | None) -> float | None:
    """Energy-based PUE over a period; None when either side is unknown or IT is zero."""
    if facility_kwh is None or not it_kwh:
        return None
    return facility_kwh / it_kwh


def allocate_overhead(entity_it_kwh: float, site_it_kwh: float | None, site_facility_kwh: float | None) -> float | None:
    """Chargeback: an entity's share of facility energy = its IT energy × the site's period PUE."""
    p = pue(site_facility_kwh, site_it_kwh)
    return None if p is None else entity_it_kwh * p


def peak(times_ns: list[int], values: list[float | None]) -> tuple[float | None, int | None]:
    """The largest value and its time."""
    best, at = None, None
    for t, v in zip(times_ns, values):
        if v is not None and (best is None or v > best):
            best, at = v, t
    return best, at
