"""The report's arithmetic over plain data: integration, periods, PUE (counters: tests/store/test_counters.py)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dcim.report import energy
from dcim.report.periods import date_range, month, previous_quarter, quarter, trailing_twelve_months


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
