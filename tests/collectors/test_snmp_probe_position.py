"""A rack probe's position from its name (collectors/snmp/profiles/probe_position.py): PDU MIBs
carry only a name for their external probes, so "rear"/"exhaust"/"outlet" in it makes an outlet
probe (the Racks page's outlet column), anything else stays the inlet; read end to end with
`dcim probe` from snmpsim serving a Raritan PDU2 whose sensors are named."""

from __future__ import annotations

import json

import pytest

from collectors.snmp.profiles.probe_position import probe_position
from dcim.cli.main import main


@pytest.mark.parametrize("name, expected", [
    ("A01 rear", "outlet"), ("Rack 12 Exhaust", "outlet"), ("C01 outlet temperature", "outlet"),
    ("hot aisle, top", "outlet"), ("HOT-AISLE", "outlet"), (b"A01 rear", "outlet"),
    ("A01 inlet", "inlet"), ("front (not rear)", "inlet"), ("Cold_Aisle 3", "inlet"),
    ("Temperature 1", "inlet"), ("", "inlet"), ("feedback loop", "inlet"), ("Backplane", "inlet"),
])
def test_names(name, expected):
    assert probe_position(name) == expected


def test_a_name_that_says_nothing_keeps_the_profiles_default():
    assert probe_position("Sensor 3", default="outlet") == "outlet"
    assert probe_position("Sensor 3 front", default="outlet") == "inlet"


def test_raritan_external_sensors_take_their_position_from_their_names(snmpsim_agent, capsys):
    agent = snmpsim_agent
    capsys.readouterr()
    assert main(["probe", f"{agent.host}:{agent.port}", "--community",
                 "walks/raritan/synthetic-px-external-sensors", "--format", "json"]) == 0
    env = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = {p["tags"]["sensor"].rsplit("-", 1)[1]: (p["tags"]["position"], p["fields"]) for p in env
           if p["measurement"] == "env"}
    assert got == {"1": ("inlet", {"temp_c": pytest.approx(23.5)}),      # "Rack 7 Front Top"
                   "2": ("inlet", {"humidity_pct": 41.0}),               # "Rack 7 Humidity": no side named
                   "4": ("outlet", {"temp_c": pytest.approx(24.0)})}     # "Rack 7 Rear Exhaust"
