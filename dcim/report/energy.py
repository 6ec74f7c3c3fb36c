"""The report's arithmetic: plain functions over series, no I/O.

Counters are stored raw (DESIGN.md), so resets are handled here: energy is the sum of the
increases, and after a drop (a reset or a device swap) the counter's new value counts as
energy since the reset. Where a device has no counter, energy comes from integrating mean
power over time buckets. Coverage is the share of the period's buckets that had data.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_H = 3.6e12


@dataclass
class EnergyResult:
    energy_kwh: float | None  # None when there was no data at all
    method: str  # "counter", "integrated_power" or "none"
    coverage_pct: float
    resets: int = 0


def counter_delta(firsts: list[float | None], lasts: list[float | None], maxes: list[float | None]) -> tuple[float, int]:
    """Energy from a counter summarised per bucket as (first, last, max), buckets in time order.

    Inside a bucket: ``max - first``, plus ``last`` if the counter dropped inside it (max > last
    means it reset and climbed again to *last*). Between buckets: the increase from the previous
    last to this first, or this first alone if the counter dropped in between. Returns the
    energy (counter units) and the number of resets seen. Buckets with None are gaps: the
    increase across a gap is still counted (the counter kept counting while we were blind).
    """
    total = 0.0
    resets = 0
    prev_last = None
    for first, last, top in zip(firsts, lasts, maxes):
        if first is None or last is None:
            continue
        if top is None:
            top = max(first, last)
        if prev_last is not None:
            if first >= prev_last:
                total += first - prev_last
            else:
                total += first
                resets += 1
        total += top - first
        if last < top:
            total += last
            resets += 1
        prev_last = last
    return total, resets


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
