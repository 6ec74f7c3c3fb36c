"""Awkward text and number types round-trip through BOTH stores unchanged.

Values are written, read back with latest() and query(), and compared with the test's own
data. InfluxDB's line protocol cannot carry a newline in a tag value, nor a backslash that
ends a tag or precedes a space/comma/equals/quote/backslash: those are refused loudly there
(and still stored by SQLite), never silently altered.
"""

from __future__ import annotations

import pytest

from dcim.metrics import Point, PointError
from dcim.store import lineprotocol
from dcim.store.base import StoreError
from dcim.store.influx import InfluxStore

T0 = 1_700_000_000_123_456_789  # sub-second digits down to the nanosecond

TAG_VALUES = [
    "plain",
    "with space",
    "comma,inside",
    "equals=inside",
    'double"quote',
    "single'quote",
    r"back\slash",
    r"C:\dir\file",
    "서울 데이터센터",
    "mixed, =\"' 한글\\x",
]
STRING_VALUES = TAG_VALUES + [
    "line\nbreak",
    "crlf\r\nend",
    "trailing\\",
    '\\"',
    "\\\\ double",
    "",
]


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path):
    if request.param == "sqlite":
        from dcim.store.sqlite import SqliteStore

        s = SqliteStore(tmp_path / "escape.sqlite")
        yield s
        s.close()
    else:
        yield request.getfixturevalue("influx_store")


def test_tag_and_string_values_round_trip(store):
    points = []
    for i, tag in enumerate(TAG_VALUES):
        for j, text in enumerate(STRING_VALUES):
            points.append(Point("workload", {"site": "s", "host": tag, "uuid": f"u{j}"},
                                {"job": text, "tenant": tag, "start_ns": 5}, T0 + i * 1000 + j))
    store.write(points)
    got = {(p.tags["host"], p.tags["uuid"]): p for p in store.latest("workload")}
    assert len(got) == len(points)
    for p in points:
        back = got[(p.tags["host"], p.tags["uuid"])]
        assert back.tags == p.tags
        assert back.fields == p.fields
        assert back.time_ns == p.time_ns
    # the same values as filters and group keys
    for tag in TAG_VALUES:
        [series] = store.query("workload", ["start_ns"], T0, T0 + 10**9, agg="count", group_by=["host"],
                               where={"host": tag})
        assert series.tags == {"host": tag}
        assert series.values["start_ns"] == [len(STRING_VALUES)]


def test_int_stays_int_and_float_stays_float(store):
    tags = {"site": "s", "room": "r", "rack": "a", "host": "h", "gpu": "0", "uuid": "GPU-x", "model": "m"}
    big = 2**53 + 1  # not representable as a float
    store.write([Point("gpu", tags, {"mem_used_bytes": big, "pstate": 0, "power_w": 300,
                                     "temp_c": 41.25, "util_pct": 1e-7, "energy_j": 1.5e15}, T0)])
    [p] = store.latest("gpu")
    assert p.fields == {"mem_used_bytes": big, "pstate": 0, "power_w": 300.0, "temp_c": 41.25,
                        "util_pct": 1e-7, "energy_j": 1.5e15}
    assert {k: type(v) for k, v in p.fields.items()} == {
        "mem_used_bytes": int, "pstate": int, "power_w": float, "temp_c": float, "util_pct": float,
        "energy_j": float}
    [s] = store.query("gpu", ["mem_used_bytes"], T0, T0 + 1, agg="max")
    assert s.values["mem_used_bytes"] == [big] and type(s.values["mem_used_bytes"][0]) is int


def test_bools(store):
    store.write([Point("ups", {"site": "s", "ups": "u1"}, {"on_battery": True}, T0),
                 Point("ups", {"site": "s", "ups": "u2"}, {"on_battery": False}, T0)])
    got = {p.tags["ups"]: p.fields["on_battery"] for p in store.latest("ups")}
    assert got == {"u1": True, "u2": False}
    assert all(type(v) is bool for v in got.values())


def test_nanosecond_times_exact(store):
    tags = {"site": "s", "meter": "m1", "role": "it"}
    times = [T0, T0 + 1, T0 + 999, T0 + 1_000_001]
    store.write([Point("meter", tags, {"power_w": float(i)}, t) for i, t in enumerate(times)])
    [s] = store.query("meter", ["power_w"], T0, T0 + 2_000_000, every_s=1e-9, agg="last")
    assert s.times_ns == times
    assert s.values["power_w"] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("precision,unit_ns", [("ns", 1), ("ms", 1_000_000), ("s", 1_000_000_000)])
def test_influx_write_precision_floors_time(influxd, precision, unit_ns):
    import uuid

    db = "prec_" + uuid.uuid4().hex[:8]
    store = InfluxStore(influxd.url, db, precision=precision)
    tags = {"site": "s", "meter": "m1", "role": "it"}
    try:
        store.write([Point("meter", tags, {"power_w": 1.0}, T0)])
        [p] = store.latest("meter")
        assert p.time_ns == T0 - T0 % unit_ns
    finally:
        store.execute(f'DROP DATABASE "{db}"')
        store.close()


@pytest.mark.parametrize("tag", ["new\nline", "car\rret", "ends\\", "back\\ space", "back\\,comma",
                                 'back\\"quote', "two\\\\"])
def test_influx_refuses_what_line_protocol_cannot_carry(influx_store, tmp_path, tag):
    point = Point("workload", {"site": "s", "host": tag, "uuid": "u"}, {"job": "j"}, T0)
    with pytest.raises(PointError):
        influx_store.check_point(point)
    with pytest.raises(StoreError, match="line protocol"):
        influx_store.write([point])
    # ...which SQLite stores as given
    from dcim.store.sqlite import SqliteStore

    with SqliteStore(tmp_path / "x.sqlite") as sq:
        sq.write([point])
        [back] = sq.latest("workload")
        assert back.tags["host"] == tag


def test_line_protocol_text():
    # The exact bytes for the documented cases (InfluxDB's own line protocol reference).
    p = Point("collector", {"target": "a b,c=d", "collector": "snmp"},
              {"error": 'say "hi" \\ now', "ok": False, "points": 3, "duration_s": 0.25}, 1_500)
    assert lineprotocol.to_line(p) == ('collector,collector=snmp,target=a\\ b\\,c\\=d '
                                       'error="say \\"hi\\" \\\\ now",ok=false,points=3i,duration_s=0.25 1500')
    assert lineprotocol.to_line(p, "ms") == lineprotocol.to_line(p).replace(" 1500", " 0")
    weird = Point("m x,y", {"k=1": "v"}, {"f k": 1.0}, 7)
    assert lineprotocol.to_line(weird) == "m\\ x\\,y,k\\=1=v f\\ k=1.0 7"
    with pytest.raises(PointError):
        lineprotocol.to_line(Point("gpu", {}, {"power_w": float("inf")}, 1))
    # an empty tag value is no tag at all in InfluxDB
    assert lineprotocol.to_line(Point("gpu", {"host": "", "uuid": "u"}, {"pstate": 2}, 1)) == "gpu,uuid=u pstate=2i 1"


def test_tag_prefix_cache_notices_mutation():
    tags = {"site": "a", "meter": "m", "role": "it"}
    first = lineprotocol.to_line(Point("meter", tags, {"power_w": 1.0}, 1))
    tags["site"] = "b"
    second = lineprotocol.to_line(Point("meter", tags, {"power_w": 1.0}, 1))
    assert first.startswith("meter,meter=m,role=it,site=a ")
    assert second.startswith("meter,meter=m,role=it,site=b ")
