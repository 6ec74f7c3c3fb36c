"""Standard MIBs (ENTITY-SENSOR-MIB, RFC 3433) on real walks, read with `dcim probe` over snmpsim.

Expected values are literals worked by hand from the walk: value x 10^(3 x (scale - 9)) x
10^-precision (RFC 3433 entPhySensorScale/Precision), rows whose operStatus is not ok(1) skipped."""

from __future__ import annotations

from tests.collectors.vendor_probe import count_fields, probe


def test_entity_sensor_temperatures_of_a_real_device(snmpsim_agent, capsys):
    # snmpsim-data paloalto-pa-5000: no vendor profile matches its sysObjectID (.25461.2.3.9), so
    # the generic ENTITY-SENSOR profile is picked because entPhySensorType answers.
    profile, points = probe(snmpsim_agent, "walks/standard/paloalto-pa-5000-entity-sensor", capsys, "pdu")
    assert profile == "entity_sensor"
    # Rows 12..15: celsius(8), scale units(9), precision 0: 23, 34, 26, 24 °C.
    assert points[("env", "dev-12")] == {"temp_c": 23.0}
    assert points[("env", "dev-13")] == {"temp_c": 34.0}
    assert points[("env", "dev-14")] == {"temp_c": 26.0}
    assert points[("env", "dev-15")] == {"temp_c": 24.0}
    # Rows 2..11 are fans in rpm (type 10): no field in the contract. No watts/amperes/volts rows:
    # no pdu point at all rather than zeros.
    assert set(points) == {("env", "dev-12"), ("env", "dev-13"), ("env", "dev-14"), ("env", "dev-15")}
    assert count_fields(points) == 4


def test_entity_sensor_precision_and_unavailable_rows(snmpsim_agent, capsys):
    # snmpsim-data arista-dcs-7150s-52-cl: celsius rows at precision 1 (one decimal).
    profile, points = probe(snmpsim_agent, "walks/standard/arista-7150s-entity-sensor", capsys, "pdu")
    assert profile == "entity_sensor"
    want = {"100006001": 28.2, "100006002": 25.8, "100006003": 23.0, "100006004": 19.8,  # 282 .. 198 tenths
            "100006005": 25.0, "100006006": 27.0, "100711101": 18.8, "100721101": 19.8}
    for row, temp_c in want.items():
        assert points[("env", f"dev-{row}")] == {"temp_c": temp_c}, row
    # Fan tray 1 (rpm, operStatus unavailable) has no field and no point.
    assert set(points) == {("env", f"dev-{row}") for row in want}
    assert count_fields(points) == 8
