"""Liebert IntelliSlot cards: one sysObjectID (.476.1.42) for UPS and cooling unit alike, so the
profile is chosen by which tables answer. Read with `dcim probe` over snmpsim (real UDP)."""

from __future__ import annotations

from tests.collectors.vendor_probe import probe


def test_real_liebert_pex_is_a_cooling_unit_without_being_told(snmpsim_agent, capsys):
    # snmpsim-data UPS/vertiv-power: a Liebert PEX (IntelliSlot 3.210.0) answering
    # LIEBERT-GP-ENVIRONMENTAL only; probed without --kind, the UPS profile must not take it.
    profile, points = probe(snmpsim_agent, "UPS/vertiv-power", capsys)
    assert profile == "liebert_env"
    assert points[("cooling", None)]["return_temp_c"] == 23.0   # lgpEnvTemperatureMeasurementDegC, return air
    assert points[("cooling", None)]["humidity_pct"] == 42.0    # lgpEnvHumidityMeasurementRel
    assert not any(m == "ups" for m, _ in points)


def test_intellislot_ups_is_told_from_cooling_by_ups_mib_answering(snmpsim_agent, capsys):
    # A SYNTHETIC detection fixture (see its header): same sysObjectID, UPS-MIB answers.
    profile, points = probe(snmpsim_agent, "walks/liebert/synthetic-intellislot-ups", capsys)
    assert profile == "liebert_ups"
    assert points[("ups", None)] == {"output_power_w": 1200.0, "load_pct": 40.0, "output_voltage_v": 230.0,
                                     "battery_charge_pct": 100.0, "on_battery": False}
    assert not any(m == "cooling" for m, _ in points)
