"""collectors.base.exponential_backoff: the wait after each consecutive failure."""

from collectors.base import exponential_backoff


def test_doubles_from_the_initial_wait_and_stops_at_the_cap():
    wait_s = exponential_backoff(1.0, 300.0)
    assert [wait_s(n) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_fractional_initial_and_a_huge_failure_count_stay_capped():
    wait_s = exponential_backoff(0.5, 10.0)
    assert [wait_s(n) for n in (1, 2, 3, 5, 6)] == [0.5, 1.0, 2.0, 8.0, 10.0]
    assert wait_s(10_000) == 10.0  # no OverflowError from 2 ** 9999
