"""The peak search over daily bounds, as plain data: same answer as reading every hour, fewer
days read."""

import random

import pytest

from dcim.store.base import stats_of_buckets
from dcim.store.peak_search import DayBound, day_bound, stats_from_day_bounds

DAY = 86_400 * 10**9
HOUR = 3600 * 10**9


def make_site(seed: int, groups: int = 5, days: int = 30):
    """{(group, day): {series: {hour ns: mean}}} with gaps and a daily shape."""
    rnd = random.Random(seed)
    data = {}
    for g in range(groups):
        for d in range(days):
            series = {}
            for s in range(3):
                hours = {}
                for h in range(24):
                    if rnd.random() < 0.1:
                        continue
                    hours[d * DAY + h * HOUR] = 100 + 50 * (9 <= h < 18) + rnd.uniform(0, 40) + (80 if rnd.random() < 0.01 else 0)
                if hours:
                    series[s] = hours
            if series:
                data[(g, d * DAY)] = series
    return data


@pytest.mark.parametrize("seed", range(6))
def test_same_answer_as_reading_every_hour_and_fewer_days(seed):
    data = make_site(seed)
    bounds = {k: day_bound([max(h.values()) for h in series.values()], [sum(h.values()) for h in series.values()],
                           [len(h) for h in series.values()], 24) for k, series in data.items()}
    read = []

    def read_hours(pairs):
        read.extend(pairs)
        out = {}
        for k in pairs:
            sums: dict[int, float] = {}
            for hours in data[k].values():
                for t, v in hours.items():
                    sums[t] = sums.get(t, 0.0) + v
            out[k] = sorted(sums.items())
        return out

    got = stats_from_day_bounds(bounds, read_hours)
    for g in {k[0] for k in data}:
        buckets: dict[int, list[float]] = {}
        for (gg, _), series in data.items():
            if gg == g:
                for hours in series.values():
                    for t, v in hours.items():
                        buckets.setdefault(t, []).append(v)
        want = stats_of_buckets(buckets, "sum")
        st = got[g]
        assert (st.buckets, st.peak_ns) == (want.buckets, want.peak_ns)
        assert st.total == pytest.approx(want.total, rel=1e-12) and st.peak == pytest.approx(want.peak, rel=1e-12)
    assert len(set(read)) == len(read)  # no day read twice
    assert len(read) < len(data)


def test_equal_peaks_on_two_days_give_the_earlier_hour():
    bounds = {("r", 0): DayBound(10.0, 30.0, 24), ("r", DAY): DayBound(10.0, 30.0, 24)}
    hours = {("r", 0): [(5 * HOUR, 10.0)], ("r", DAY): [(DAY + HOUR, 10.0)]}
    st = stats_from_day_bounds(bounds, lambda pairs: {k: hours[k] for k in pairs})["r"]
    assert (st.peak, st.peak_ns, st.buckets, st.total) == (10.0, 5 * HOUR, 48, 60.0)


def test_hours_of_a_day_covered_by_no_series_alone_are_counted_from_the_hours():
    b = day_bound([5.0, 7.0], [50.0, 70.0], [10, 14], 24)
    assert b.hours is None and b.bound == 12.0
    assert day_bound([5.0, 7.0], [50.0, 70.0], [24, 3], 24).hours == 24
    assert day_bound([5.0], [50.0], [10], 24).hours == 10
    # absent series add nothing, so a negative peak must not lower the bound
    assert day_bound([-5.0, 7.0], [0.0, 0.0], [24, 24], 24).bound == 7.0
