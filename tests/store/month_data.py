"""A quarter of three GPUs for the month-row tests of both stores (test_influx_months,
test_sqlite_months): the fourth quarter of 2026 and a few days around it, every 30 minutes
with jitter: a counter reset inside a month, one at a UTC day's first point and one at the
first point of December in Asia/Seoul, a week without data, a GPU added mid-October and gone
mid-December, an hour without power, equal hourly peaks in October and December, and an int
counter that resets often. In America/New_York the quarter holds the end of daylight saving
time (1 November: a 25-hour day)."""

from __future__ import annotations

import calendar
import math

from dcim.metrics import Point
from dcim.report.periods import month, quarter

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
DAY = 86400 * S
FIRST = calendar.timegm((2026, 9, 29, 0, 0, 0)) * S
LAST = calendar.timegm((2027, 1, 3, 0, 0, 0)) * S
NOW = LAST + DAY + HOUR  # every day of the data is closed
TAGS = {uuid: {"site": "s1", "room": "h1", "rack": rack, "host": host, "gpu": gpu, "uuid": uuid, "model": "H100"}
        for uuid, rack, host, gpu in (("GPU-1", "a", "n1", "0"), ("GPU-2", "a", "n1", "1"), ("GPU-3", "b", "n2", "0"))}
SEOUL_DEC = month("2026-12", "Asia/Seoul").start_ns  # 30 Nov 15:00 UTC
RESET_1 = calendar.timegm((2026, 11, 17, 9, 0, 0)) * S
RESET_3 = calendar.timegm((2026, 11, 20, 0, 0, 0)) * S  # a UTC day's first point
GAP = (calendar.timegm((2026, 11, 3, 0, 0, 0)) * S, calendar.timegm((2026, 11, 10, 6, 0, 0)) * S)
GPU3 = (calendar.timegm((2026, 10, 14, 7, 0, 0)) * S, calendar.timegm((2026, 12, 16, 20, 0, 0)) * S)
PEAKS = (calendar.timegm((2026, 10, 20, 13, 0, 0)) * S, calendar.timegm((2026, 12, 8, 2, 0, 0)) * S)
NO_POWER = calendar.timegm((2026, 10, 5, 11, 0, 0)) * S


def make_points() -> list[Point]:
    points = []
    energy = {"GPU-1": 5.0e9, "GPU-2": 7.5e9, "GPU-3": 1.0e9}
    reset_2_done = False
    k, t = 0, FIRST
    while t < LAST:
        ts = t + (k * 7919 % 50) * S + k % 1000  # odd offsets, nanoseconds included
        hour = ts - ts % HOUR
        for n, (uuid, tags) in enumerate(TAGS.items()):
            if uuid == "GPU-2" and GAP[0] <= ts < GAP[1]:
                continue
            if uuid == "GPU-3" and not GPU3[0] <= ts < GPU3[1]:
                continue
            power = 900.0 if uuid == "GPU-1" and hour in PEAKS else round(150.0 + (k * 7.31 + n * 113.7) % 500.0, 3)
            energy[uuid] += power * 1800
            if uuid == "GPU-1" and RESET_1 <= ts < RESET_1 + 30 * MIN:
                energy[uuid] = 1234.5  # reset inside a month
            if uuid == "GPU-3" and RESET_3 <= ts < RESET_3 + 30 * MIN:
                energy[uuid] = 10.0  # reset between two days inside a month
            if uuid == "GPU-2" and ts >= SEOUL_DEC and not reset_2_done:
                energy[uuid], reset_2_done = 99.0, True  # reset at the first point of December in Seoul
            fields = {"energy_j": energy[uuid], "util_pct": float((k * 37 + n * 11) % 101),
                      "ecc_corrected": (k // 7 + n) % 40 + (k // 3000) * 1000}  # an int counter, reset often
            if not (uuid == "GPU-3" and hour == NO_POWER):
                fields["power_w"] = power
            points.append(Point("gpu", tags, fields, ts))
        k += 1
        t += 30 * MIN
    return points


POINTS = make_points()


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return a == b and type(a) is type(b)


def same_increase(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(same(got[k][0], want[k][0]) and got[k][1] == want[k][1] for k in want)


def same_stats(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        got[k].buckets == want[k].buckets and same(got[k].total, want[k].total) and got[k].peak == want[k].peak
        and got[k].peak_ns == want[k].peak_ns for k in want)


def periods(zone: str) -> list[tuple[int, int]]:
    """The quarter, each of its months, and two months together."""
    q = quarter("2026Q4", zone)
    months = [month(m, zone) for m in ("2026-10", "2026-11", "2026-12")]
    return [(q.start_ns, q.end_ns)] + [(m.start_ns, m.end_ns) for m in months] + [(months[1].start_ns, q.end_ns)]
