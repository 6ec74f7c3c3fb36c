"""SNMP collection against the twin's real agents (simulator/snmp_agents.py) over UDP, v2c and v3.

Every profile the twin serves is polled and compared with the twin's ground truth (its physics
snapshot), within the vendor's own quantization. Faults are injected in the agents: dead device,
wrong type (garbage), -1 sentinels, swapped model, counter reset.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.engine import SnmpPoller

simulator_agents = pytest.importorskip("simulator.snmp_agents")
service = pytest.importorskip("simulator.service")

from dcim.config import parse_config  # noqa: E402
from dcim.inventory import build_inventory  # noqa: E402


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


DEVICES = [  # (group, name, extra config, profile the twin serves)
    ("pdus", "pdu-apc", {"rack": "R1", "feed": "A"}, "apc_rpdu2"),
    ("pdus", "pdu-raritan", {"rack": "R1", "feed": "B"}, "raritan_pdu2"),
    ("cooling", "irc-1", {"room": "hall", "kind": "inrow", "capacity_kw": 70.0, "racks": ["R1"]}, "apc_inrow"),
    ("cooling", "crah-1", {"room": "hall", "kind": "crah", "capacity_kw": 150.0, "racks": ["R1"]}, "liebert_env"),
    ("cooling", "chiller-1", {"room": "hall", "kind": "chiller", "capacity_kw": 900.0}, "liebert_env"),
    ("ups", "ups-eaton", {"capacity_kw": 400.0, "rooms": ["hall"]}, "eaton_xups"),
    ("ups", "ups-generic", {"capacity_kw": 400.0, "rooms": ["hall"]}, "ups_mib"),
    ("meters", "main", {"role": "facility_total"}, "entity_sensor_meter"),
    ("meters", "mech", {"role": "cooling"}, "entity_sensor_meter"),
]


def _config(ports):
    data = {
        "site": {"name": "twin-site", "timezone": "Asia/Seoul"},
        "rooms": [{"name": "hall", "rows": [{"name": "A", "racks": [
            {"name": "R1", "server_group": {"count": 2, "gpus": 8}}]}]}],
        "snmp": {"credentials": {
            "default": {"version": "3", "user": "dcimtest", "auth_key": {"env": "TEST_SNMP_AUTH"},
                        "priv_key": {"env": "TEST_SNMP_PRIV"}},
            "meters": {"version": "2c", "community": {"env": "TEST_SNMP_COMMUNITY"}}}},
        "collectors": {"timeout_s": 1.0, "retries": 0},
    }
    for (group, name, extra, profile), port in zip(DEVICES, ports):
        snmp = {"address": "127.0.0.1", "port": port, "profile": profile}
        if group == "meters":
            snmp["credentials"] = "meters"
        data.setdefault(group, []).append({"name": name, **extra, "snmp": snmp})
    return parse_config(data)


@pytest.fixture(scope="module")
def twin():
    mp = pytest.MonkeyPatch()
    mp.setenv("TEST_SNMP_AUTH", "twin-auth-key-123")
    mp.setenv("TEST_SNMP_PRIV", "twin-priv-key-456")
    mp.setenv("TEST_SNMP_COMMUNITY", "twin-community-789")
    cfg = _config(_free_ports(len(DEVICES)))
    svc = service.TwinService(cfg, speed=0, seed=7)
    svc.start_background()
    svc.call(lambda: svc.advance(120))
    try:
        yield svc, cfg
    finally:
        svc.stop_background()
        mp.undo()


def _poll(cfg, poller=None, deadline=5.0):
    async def go():
        col = SnmpCollector.from_inventory(build_inventory(cfg), poller=poller or SnmpPoller())
        try:
            t0 = time.monotonic()
            results = await col.poll(deadline)
            return {r.target: r for r in results}, time.monotonic() - t0, col
        finally:
            await col.close()
    return asyncio.run(go())


def _fields(result, measurement, **tags):
    found = [p.fields for p in result.points if p.measurement == measurement
             and all(p.tags.get(k) == v for k, v in tags.items())]
    assert len(found) == 1, (measurement, tags, [p for p in result.points if p.measurement == measurement])
    return found[0]


def test_every_twin_profile_decodes_to_the_twins_ground_truth(twin):
    svc, cfg = twin
    snap = svc.call(lambda: svc.snapshot)
    results, _, col = _poll(cfg)
    for name, r in results.items():
        assert r.ok, (name, r.error)
    assert {d.name: d.plan.profile.name for d in col.devices} == {name: p for _, name, _, p in DEVICES}

    # APC rPDU2 (v3): device power in hundredths of kW -> within 5 W; energy tenths of kWh.
    truth = snap.pdus["pdu-apc"]
    pdu = _fields(results["pdu-apc"], "pdu")
    assert pdu["power_w"] == pytest.approx(truth.power_w, abs=5.01)
    assert pdu["energy_kwh"] == pytest.approx(truth.energy_kwh, abs=0.051)
    for i, ph in enumerate(truth.phases, 1):
        got = _fields(results["pdu-apc"], "pdu_phase", phase=str(i))
        assert got["current_a"] == pytest.approx(ph.current_a, abs=0.051)
        assert got["voltage_v"] == pytest.approx(ph.voltage_v, abs=0.51)
    for i, o in enumerate(truth.outlets, 1):
        got = _fields(results["pdu-apc"], "pdu_outlet", outlet=str(i))
        assert got["power_w"] == pytest.approx(o.power_w, abs=0.51)
    if truth.inlet_temp_c is not None:
        env = _fields(results["pdu-apc"], "env", position="inlet")
        assert env["temp_c"] == pytest.approx(truth.inlet_temp_c, abs=0.051)
        assert results["pdu-apc"].points[0].tags["rack"] == "R1"
    if truth.outlet_temp_c is not None:   # the probe named "R1 rear": an outlet by its name
        assert _fields(results["pdu-apc"], "env", position="outlet") == {
            "temp_c": pytest.approx(truth.outlet_temp_c, abs=0.051)}

    # Raritan PDU2: current served with 3 decimal digits (read at discovery), energy in Wh.
    truth = snap.pdus["pdu-raritan"]
    pdu = _fields(results["pdu-raritan"], "pdu")
    assert pdu["current_a"] == pytest.approx(truth.current_a, abs=0.0006)
    assert pdu["power_w"] == pytest.approx(truth.power_w, abs=0.51)
    assert pdu["energy_kwh"] == pytest.approx(truth.energy_kwh, abs=0.00051)
    for i, ph in enumerate(truth.phases, 1):
        assert _fields(results["pdu-raritan"], "pdu_phase", phase=str(i))["current_a"] == \
            pytest.approx(ph.current_a, abs=0.0006)
    assert len([p for p in results["pdu-raritan"].points if p.measurement == "pdu_outlet"]) == len(truth.outlets)

    # APC InRow: tenths.
    truth = snap.cooling["irc-1"]
    c = _fields(results["irc-1"], "cooling")
    assert c["cooling_kw"] == pytest.approx(truth.cooling_kw, abs=0.051)
    assert c["supply_temp_c"] == pytest.approx(truth.supply_temp_c, abs=0.051)
    assert c["return_temp_c"] == pytest.approx(truth.return_temp_c, abs=0.051)
    assert "power_w" not in c  # an InRow RC does not report its electrical input

    # Liebert: tenths columns preferred; chiller reads fluid temperatures.
    for unit in ("crah-1", "chiller-1"):
        truth = snap.cooling[unit]
        c = _fields(results[unit], "cooling")
        assert c["supply_temp_c"] == pytest.approx(truth.supply_temp_c, abs=0.051)
        assert c["return_temp_c"] == pytest.approx(truth.return_temp_c, abs=0.051)
        assert c["setpoint_c"] == pytest.approx(truth.setpoint_c, abs=0.051)

    # UPS: Eaton's upsInputTruePower is 0 -> vendor xupsInputTotalWatts; generic UPS-MIB fills it.
    for name in ("ups-eaton", "ups-generic"):
        truth = snap.ups[name]
        u = _fields(results[name], "ups")
        assert u["output_power_w"] == pytest.approx(truth.output_power_w, abs=2)
        assert u["input_power_w"] == pytest.approx(truth.input_power_w, abs=2)
        assert u["on_battery"] is truth.on_battery

    # Meters (v2c): ENTITY-SENSOR kW with precision 2 -> 10 W; EMAN energy in Wh.
    for name in ("main", "mech"):
        truth = snap.meters[name]
        m = _fields(results[name], "meter")
        assert m["power_w"] == pytest.approx(truth.power_w, abs=5.01)
        assert m["energy_kwh"] == pytest.approx(truth.energy_kwh, abs=0.00051)

    # The facility point of the same cycle: total from the main meter, IT = UPS output (category 1).
    fac = results["facility"].points[0].fields
    main = _fields(results["main"], "meter")["power_w"]
    it = sum(_fields(results[n], "ups")["output_power_w"] for n in ("ups-eaton", "ups-generic"))
    assert fac["total_power_w"] == main and fac["it_power_w"] == it
    assert fac["pue"] == pytest.approx(main / it)


def test_dead_agent_is_bounded_and_the_others_are_written(twin):
    svc, cfg = twin

    async def go():
        col = SnmpCollector.from_inventory(build_inventory(cfg), poller=SnmpPoller())
        try:
            await col.poll(5)  # discovery done; now the device dies
            svc.agents.set_fault("pdu-raritan", dead=True)
            t0 = time.monotonic()
            results = {r.target: r for r in await col.poll(5)}
            return results, time.monotonic() - t0
        finally:
            svc.agents.clear_faults("pdu-raritan")
            await col.close()

    results, took = asyncio.run(go())
    dead = results["pdu-raritan"]
    assert not dead.ok and "timeout" in dead.error
    # timeout 1 s x (retries 0 + 1): the cycle ends within the dead device's own bound
    # (plus scheduling slack on a shared 2-core machine), not after the others' time too.
    assert took < 1.0 + 1.0, took
    assert all(r.ok for n, r in results.items() if n != "pdu-raritan")
    assert _fields(results["pdu-apc"], "pdu")["power_w"] > 0
    # The facility point still comes from the devices that answered.
    assert results["facility"].points[0].fields["pue"] > 1


def test_garbage_types_and_sentinels_become_absent_and_counted(twin):
    svc, cfg = twin
    svc.agents.set_fault("pdu-apc", garbage=True)
    svc.agents.set_fault("ups-generic", sentinel=True)
    try:
        results, _, col = _poll(cfg)
    finally:
        svc.agents.clear_faults()
    stats = {d.name: d.stats for d in col.devices}
    assert stats["pdu-apc"].garbage > 0
    for p in results["pdu-apc"].points:
        assert all(not isinstance(v, str) for v in p.fields.values())
        assert "power_w" not in p.fields
    assert stats["ups-generic"].sentinel > 0
    ups_points = [p for p in results["ups-generic"].points if p.measurement == "ups"]
    for p in ups_points:
        assert "output_power_w" not in p.fields and "load_pct" not in p.fields
        assert all(v != -1 for v in p.fields.values())
    # The facility point is not made up when an input is missing.
    assert "facility" not in results or "pue" not in results["facility"].points[0].fields


def test_swapped_model_is_redetected(twin):
    svc, cfg = twin
    # The config says auto for this test: build the collector once, swap the device, poll again.
    data = cfg.model_dump(mode="json")
    for pdu in data["pdus"]:
        pdu["snmp"]["profile"] = "auto"
    auto_cfg = parse_config(data)

    async def go():
        col = SnmpCollector.from_inventory(build_inventory(auto_cfg), poller=SnmpPoller())
        try:
            before = {r.target: r for r in await col.poll(5)}
            svc.agents.set_fault("pdu-apc", profile="raritan_pdu2")
            after = {r.target: r for r in await col.poll(5)}
            dev = next(d for d in col.devices if d.name == "pdu-apc")
            return before, after, dev
        finally:
            svc.agents.clear_faults()
            await col.close()

    before, after, dev = asyncio.run(go())
    assert before["pdu-apc"].ok and after["pdu-apc"].ok, after["pdu-apc"].error
    assert dev.plan.profile.name == "raritan_pdu2" and dev.redetections == 1
    truth = svc.call(lambda: svc.snapshot).pdus["pdu-apc"]
    # Raritan current has 3 decimals where APC had 1: decoded with the new model's digits.
    assert _fields(after["pdu-apc"], "pdu")["current_a"] == pytest.approx(truth.current_a, abs=0.0006)


def test_counter_reset_is_stored_raw(twin):
    svc, cfg = twin
    results, _, _ = _poll(cfg)
    before = _fields(results["ups-eaton"], "ups").get("energy_kwh")
    pdu_before = _fields(results["pdu-apc"], "pdu")["energy_kwh"]
    assert pdu_before > 1
    svc.call(lambda: (svc.twin.reset_energy_counter("pdu-apc"), svc.advance(10)))
    results, _, _ = _poll(cfg)
    pdu_after = _fields(results["pdu-apc"], "pdu")["energy_kwh"]
    truth = svc.call(lambda: svc.snapshot).pdus["pdu-apc"].energy_kwh
    assert pdu_after < pdu_before  # the reset is visible: not "fixed" at ingest
    assert pdu_after == pytest.approx(truth, abs=0.051)
    assert before is None or before >= 0
