"""collectors.facility: PUE and friends from one cycle's readings; absent, never made up."""

from __future__ import annotations

import pytest

from collectors.facility import derive_facility
from dcim.metrics import Point, validate_point

S = "site-1"


def meter(name, role, w):
    return Point("meter", {"site": S, "meter": name, "role": role}, {"power_w": w})


def ups(name, out_w, **more):
    return Point("ups", {"site": S, "ups": name}, {"output_power_w": out_w, **more})


EXPECTED = {"meter_facility_total": 1, "meter_cooling": 1, "ups": 2}


def test_full_cycle():
    p = derive_facility([meter("main", "facility_total", 500_000.0), meter("mech", "cooling", 100_000.0),
                         ups("u1", 200_000.0), ups("u2", 160_000.0)], S, expected=EXPECTED, time_ns=1)
    validate_point(p)
    assert p.tags == {"site": S}
    assert p.fields == {"total_power_w": 500_000.0, "it_power_w": 360_000.0, "cooling_power_w": 100_000.0,
                        "loss_power_w": 40_000.0, "pue": pytest.approx(500 / 360)}


def test_a_missing_ups_means_no_it_power_and_no_pue():
    u2_without_output = Point("ups", {"site": S, "ups": "u2"}, {"on_battery": False})
    p = derive_facility([meter("main", "facility_total", 500_000.0), meter("mech", "cooling", 100_000.0),
                         ups("u1", 200_000.0), u2_without_output], S, expected=EXPECTED)
    assert "it_power_w" not in p.fields and "pue" not in p.fields and "loss_power_w" not in p.fields
    assert p.fields["total_power_w"] == 500_000.0


def test_no_facility_meter_means_no_pue():
    p = derive_facility([ups("u1", 200_000.0), ups("u2", 100_000.0)], S, expected=EXPECTED)
    assert p.fields == {"it_power_w": 300_000.0}


def test_nothing_derivable_is_none():
    assert derive_facility([], S, expected=EXPECTED) is None
    assert derive_facility([Point("pdu", {"site": S, "pdu": "p"}, {"power_w": 1.0})], S) is None


def test_zero_it_power_gives_no_pue():
    p = derive_facility([meter("main", "facility_total", 1000.0), ups("u1", 0.0)], S)
    assert "pue" not in p.fields and p.fields["it_power_w"] == 0.0


def test_category_2_uses_pdu_inputs_and_cooling_unit_power_without_a_meter():
    pts = [meter("main", "facility_total", 10_000.0),
           Point("pdu", {"site": S, "pdu": "a"}, {"power_w": 3000.0}),
           Point("pdu", {"site": S, "pdu": "b"}, {"power_w": 5000.0}),
           Point("cooling", {"site": S, "unit": "c"}, {"power_w": 1500.0})]
    p = derive_facility(pts, S, pue_category=2, expected={"pdu": 2, "cooling": 1})
    assert p.fields == {"total_power_w": 10_000.0, "it_power_w": 8000.0, "cooling_power_w": 1500.0,
                        "loss_power_w": 500.0, "pue": 1.25}


def test_other_sites_are_ignored():
    pts = [meter("main", "facility_total", 10_000.0), ups("u1", 8000.0),
           Point("ups", {"site": "elsewhere", "ups": "x"}, {"output_power_w": 1e6})]
    assert derive_facility(pts, S).fields["it_power_w"] == 8000.0
