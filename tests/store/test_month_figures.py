"""Month figures per group (dcim.store.month_figures.per_group), over plain data: what both
stores make of the month rows they read."""

from dcim.store.base import BucketStats
from dcim.store.counters import CounterSpan
from dcim.store.month_figures import per_group

H = 3_600_000_000_000


def test_each_series_months_chain_and_add_up():
    jul, aug = BucketStats(700, 70_000.0, 300.0, 5 * H), BucketStats(744, 80_000.0, 450.0, 900 * H)
    got = per_group([("energy_j", ("g1",), [CounterSpan(10.0, 50.0, 40.0, 0), CounterSpan(2.0, 9.0, 7.0, 0)]),
                     ("power_w", ("g1",), [jul, aug]),
                     ("energy_j", ("g2",), [CounterSpan(5.0, 8.0, 3.0, 0)])],
                    ["energy_j"], ["power_w"])
    counters, hourly = got
    assert counters == {"energy_j": {("g1",): (40.0 + 2.0 + 7.0, 1), ("g2",): (3.0, 0)}}  # 50 -> 2 is a reset
    assert hourly == {"power_w": {("g1",): BucketStats(1444, 150_000.0, 450.0, 900 * H)}}


def test_a_group_of_several_series_is_refused_but_for_each():
    """Month figures cannot be split into hours: two series' sums per hour are unknown (their
    peak hours may differ), so the caller reads the hours; ``each`` adds the series up."""
    a, b = BucketStats(10, 100.0, 20.0, 3 * H), BucketStats(10, 50.0, 30.0, 4 * H)
    two = [("power_w", ("rack",), [a]), ("power_w", ("rack",), [b])]
    assert per_group(two, [], ["power_w"], "sum") is None
    assert per_group(two, [], ["power_w"], "each") == ({}, {"power_w": {("rack",): BucketStats(20, 150.0, 30.0, 4 * H)}})
    spans = [("energy_j", ("rack",), [CounterSpan(1.0, 2.0, 1.0, 0)]), ("energy_j", ("rack",), [CounterSpan(1.0, 3.0, 2.0, 0)])]
    assert per_group(spans, ["energy_j"], [], "each") is None
