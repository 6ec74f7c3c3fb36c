"""The metric contract rejects what does not fit it."""

import pytest

from dcim.metrics import MEASUREMENTS, Point, PointError, validate_point


def gpu_point(**fields):
    tags = {"site": "s", "room": "r", "rack": "A01", "host": "h", "gpu": "0", "uuid": "GPU-1", "model": "H100"}
    return Point("gpu", tags, fields or {"power_w": 300.0}, 1_700_000_000_000_000_000)


def test_valid_point_passes():
    validate_point(gpu_point(power_w=312.5, mem_used_bytes=10, throttle_reasons=0))


@pytest.mark.parametrize("point,fragment", [
    (Point("gpus", {}, {"power_w": 1.0}), "unknown measurement"),
    (gpu_point(power_watts=1.0), "unknown field(s) ['power_watts']"),
    (gpu_point(power_w="300"), "expected a number"),
    (gpu_point(power_w=float("nan")), "expected a number"),
    (gpu_point(mem_used_bytes=1.5), "expected an integer"),
    (gpu_point(mem_used_bytes=True), "expected an integer"),
    (Point("ups", {"site": "s", "ups": "u"}, {"on_battery": 1}), "expected bool"),
    (Point("ups", {"site": "s", "ups": "u", "rack": "x"}, {"load_pct": 1.0}), "unknown tag(s) ['rack']"),
    (Point("meter", {"site": "s"}, {}), "at least one field"),
])
def test_invalid_points_are_rejected(point, fragment):
    with pytest.raises(PointError) as info:
        validate_point(point)
    assert fragment in str(info.value)


def test_every_field_has_si_unit_in_name_or_is_dimensionless():
    suffix_units = {"_w": "W", "_va": "VA", "_kwh": "kWh", "_j": "J", "_a": "A", "_v": "V", "_c": "°C",
                    "_pct": "%", "_bytes": "B", "_mhz": "MHz", "_s": "s", "_kw": "kW", "_m3s": "m³/s"}
    for m in MEASUREMENTS.values():
        for f in m.fields.values():
            for suffix, unit in suffix_units.items():
                if f.name.endswith(suffix):
                    assert f.unit == unit, f"{m.name}.{f.name}: unit {f.unit!r} does not match its name"
                    break


def test_json_shape():
    p = gpu_point(power_w=1.0)
    assert p.to_json() == {"measurement": "gpu", "tags": p.tags, "fields": {"power_w": 1.0},
                           "time": "2023-11-14T22:13:20Z"}
