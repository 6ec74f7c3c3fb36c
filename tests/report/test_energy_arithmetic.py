"""The report's arithmetic over plain data: counters with resets, integration, periods, PUE."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dcim.report import energy
from dcim.report.periods import date_range, month, previous_quarter, quarter, trailing_twelve_months


def summarise(samples, per_bucket):
    """Split a raw counter trace into buckets of *per_bucket* samples → (first, last, max) lists."""
    firsts, lasts, maxes = [], [], []
    for i in range(0, len(samples), per_bucket):
        chunk = samples[i:i + per_bucket]
        firsts.append(chunk[0]), lasts.append(chunk[-1]), maxes.append(max(chunk))
    return firsts, lasts, maxes


def true_energy(samples):
    total = 0.0
    for a, b in zip(samples, samples[1:]):
        total += b - a if b >= a else b
    return total


@pytest.mark.parametrize("reset_at", [None, 7, 12, 13, 20])
def test_counter_delta_matches_sample_by_sample_sum(reset_at):
    samples = []
    value = 1000.0
    for i in range(24):
        if i == reset_at:
            value = 0.5
        samples.append(value)
        value += 3.0 + (i % 5)
    firsts, lasts, maxes = summarise(samples, 6)
    got, resets = energy.counter_delta(firsts, lasts, maxes)
    assert got == pytest.approx(true_energy(samples))
    assert resets == (0 if reset_at is None else 1)


def test_counter_gap_still_counts_energy_across_it():
    firsts, lasts, maxes = [0.0, None, 50.0], [10.0, None, 60.0], [10.0, None, 60.0]
    assert energy.counter_delta(firsts, lasts, maxes) == (60.0, 0)


def test_integrate_power_and_coverage():
    # two hours with data, means 1,000 W and 3,000 W, in a period of four hours
    assert energy.integrate_mean_sum(1000.0 + 3000.0, 3600) == pytest.approx(4.0)  # kWh
    assert energy.integrate_mean_sum(1000.0, 900) == pytest.approx(0.25)  # a 15-minute bucket
    assert energy.coverage_of(2, 4) == 50.0
    assert energy.coverage_of(5, 4) == 100.0 and energy.coverage_of(0, 0) == 0.0


def test_pue_and_chargeback():
    assert energy.pue(130.0, 100.0) == pytest.approx(1.3)
    assert energy.pue(None, 100.0) is None and energy.pue(130.0, 0.0) is None
    assert energy.allocate_overhead(25.0, 100.0, 130.0) == pytest.approx(32.5)


def test_peak_and_its_time():
    assert energy.peak([10, 20, 30], [5.0, None, 7.0]) == (7.0, 30)
    assert energy.peak([], []) == (None, None)


def test_quarter_boundaries_at_seoul_midnight():
    q = quarter("2026Q3", "Asia/Seoul")
    assert q.start.isoformat() == "2026-07-01T00:00:00+09:00" and q.end.isoformat() == "2026-10-01T00:00:00+09:00"
    # Seoul midnight is 15:00 UTC the day before.
    assert datetime.fromtimestamp(q.start_ns / 1e9, ZoneInfo("UTC")).isoformat() == "2026-06-30T15:00:00+00:00"
    assert q.hours == 92 * 24


def test_quarter_in_a_daylight_saving_zone():
    q1 = quarter("2026Q1", "America/New_York")  # DST starts 8 March 2026: one hour shorter
    assert q1.hours == 90 * 24 - 1
    q4 = quarter("2026Q4", "Europe/Berlin")  # DST ends 25 October 2026: one hour longer
    assert q4.hours == 92 * 24 + 1
    assert q4.start.utcoffset().total_seconds() == 7200 and q4.end.utcoffset().total_seconds() == 3600


def test_months_ranges_and_bad_input():
    assert month("2026-02", "Asia/Seoul").hours == 28 * 24
    assert date_range("2026-07-01", "2026-07-15", "Asia/Seoul").hours == 14 * 24
    for bad in ("2026Q5", "Q3", "2026-3"):
        with pytest.raises(ValueError):
            quarter(bad, "UTC")
    with pytest.raises(ValueError):
        date_range("2026-07-15", "2026-07-01", "UTC")


def test_previous_quarter_and_ttm():
    now = datetime(2026, 10, 1, 0, 30, tzinfo=ZoneInfo("Asia/Seoul"))
    assert previous_quarter(now, "Asia/Seoul").label == "2026Q3"
    assert previous_quarter(datetime(2026, 2, 1, tzinfo=ZoneInfo("UTC")), "UTC").label == "2025Q4"
    ttm = trailing_twelve_months(quarter("2026Q3", "Asia/Seoul"))
    assert ttm.start.isoformat() == "2025-10-01T00:00:00+09:00"
