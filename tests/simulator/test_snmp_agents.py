"""The twin's SNMP agents, read over UDP by Net-SNMP's snmpget / snmpwalk / snmpbulkwalk.

Expected values are computed here from the snapshot the agents serve and the scale factors of
the reference (shared/reference/snmp-device-oids.md), never from the agents' own encoders.
"""

from __future__ import annotations

import copy
import time

import pytest

from dcim.config import load_config
from dcim.inventory import build_inventory
from simulator.service import SyntheticTwin
from simulator.snmp_agents import agent_profile_for
from tests.conftest import REPO
from tests.simulator.snmp_helpers import (
    HAVE_NET_SNMP,
    TEST_SECRETS,
    NetSnmp,
    SnmpFailed,
    StubTwin,
    relocated,
    running_service,
    target,
)

pytestmark = pytest.mark.skipif(not HAVE_NET_SNMP, reason="Net-SNMP command-line tools not installed")

APC = "1.3.6.1.4.1.318.1.1.26"
RARITAN = "1.3.6.1.4.1.13742.6"
INROW = "1.3.6.1.4.1.318.1.1.13.3.2.2.2"
LGP = "1.3.6.1.4.1.476.1.42.3.4"
UPS = "1.3.6.1.2.1.33.1"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


@pytest.fixture(scope="module")
def secrets_env():
    mp = pytest.MonkeyPatch()
    for name, value in TEST_SECRETS.items():
        mp.setenv(name, value)
    yield TEST_SECRETS
    mp.undo()


@pytest.fixture(scope="module")
def config(secrets_env):
    return relocated(load_config(REPO / "deploy" / "demo.toml"))


@pytest.fixture(scope="module")
def twin(config):
    synthetic = SyntheticTwin(config, seed=7)
    synthetic.step(3600)  # an hour in: energy counters well above zero
    return StubTwin(copy.deepcopy(synthetic.snapshot))


@pytest.fixture(scope="module")
def svc(config, twin):
    with running_service(config, twin) as service:
        yield service


@pytest.fixture(scope="module")
def snmp():
    return NetSnmp()


def near(raw: str, expected: float, tol: float = 1.0) -> bool:
    return abs(int(raw) - expected) <= tol


# --- identity --------------------------------------------------------------------------------


def test_sys_object_id_per_vendor(svc, config, snmp):
    expected = {
        "pdu-A01-a": "1.3.6.1.4.1.318.1.3.4.6",  # APC rPDU2 (hall-1)
        "pdu-C01-a": "1.3.6.1.4.1.13742.6",  # Raritan PDU2 (hall-2)
        "irc-A1": "1.3.6.1.4.1.318.1.3.14.5",  # APC InRow RC
        "crah-C": "1.3.6.1.4.1.476.1.42",  # Liebert
        "chiller-1": "1.3.6.1.4.1.476.1.42",
        "ups-1": "1.3.6.1.4.1.534.1",  # Eaton XUPS
    }
    for name, oid in expected.items():
        got = snmp.get(target(config, name), SYS_OBJECT_ID, "1.3.6.1.2.1.1.5.0")
        assert got[SYS_OBJECT_ID] == "." + oid, name
        assert got["1.3.6.1.2.1.1.5.0"] == name
    meter = snmp.get(target(config, "main-incomer"), SYS_OBJECT_ID, version="2c")
    assert meter[SYS_OBJECT_ID] == ".1.3.6.1.2.1.99"


def test_sys_uptime_moves(svc, config, snmp):
    oid = "1.3.6.1.2.1.1.3.0"
    first = int(snmp.get(target(config, "pdu-A01-a"), oid)[oid])
    time.sleep(0.3)
    assert int(snmp.get(target(config, "pdu-A01-a"), oid)[oid]) > first


def test_profile_choice(config):
    inv = build_inventory(config)
    pdus = {p.name: p for p in config.pdus}
    assert agent_profile_for("pdu", pdus["pdu-A01-a"], inv).name == "apc_rpdu2"
    assert agent_profile_for("pdu", pdus["pdu-D04-b"], inv).name == "raritan_pdu2"
    cooling = {c.name: c for c in config.cooling}
    assert agent_profile_for("cooling", cooling["irc-B2"], inv).name == "apc_inrow"
    assert agent_profile_for("cooling", cooling["chiller-1"], inv).name == "liebert_env"
    # an explicit profile in the device's snmp target wins over the room rule
    forced = pdus["pdu-A01-a"].model_copy(update={"snmp": pdus["pdu-A01-a"].snmp.model_copy(
        update={"profile": "Raritan-PDU2"})})  # spelling is normalised
    assert agent_profile_for("pdu", forced, inv).name == "raritan_pdu2"


# --- values against the snapshot -------------------------------------------------------------


def test_apc_pdu_values_match_snapshot(svc, config, snmp, twin):
    r = twin.snapshot.pdus["pdu-A01-a"]
    got = snmp.get(target(config, "pdu-A01-a"),
                   f"{APC}.4.3.1.5.1", f"{APC}.4.3.1.9.1", f"{APC}.6.3.1.5.1", f"{APC}.6.3.1.6.2",
                   f"{APC}.6.3.1.7.3", f"{APC}.9.4.3.1.7.1", f"{APC}.9.4.3.1.6.2", f"{APC}.9.4.3.1.11.1",
                   "1.3.6.1.4.1.318.1.1.12.1.16.0")
    assert near(got[f"{APC}.4.3.1.5.1"], r.power_w / 10)  # hundredths of kW
    assert near(got[f"{APC}.4.3.1.9.1"], r.energy_kwh * 10)  # tenths of kWh
    assert near(got[f"{APC}.6.3.1.5.1"], r.phases[0].current_a * 10)  # tenths of A
    assert near(got[f"{APC}.6.3.1.6.2"], r.phases[1].voltage_v)  # V
    assert near(got[f"{APC}.6.3.1.7.3"], r.phases[2].power_w / 10)
    assert near(got[f"{APC}.9.4.3.1.7.1"], r.outlets[0].power_w)  # outlet W
    assert near(got[f"{APC}.9.4.3.1.6.2"], r.outlets[1].current_a * 10)
    assert near(got[f"{APC}.9.4.3.1.11.1"], r.outlets[0].energy_kwh * 10)
    assert near(got["1.3.6.1.4.1.318.1.1.12.1.16.0"], r.power_w)
    assert r.power_w > 1000  # the test means something only with real load


def test_raritan_pdu_values_scale_by_decimal_digits(svc, config, snmp, twin):
    r = twin.snapshot.pdus["pdu-C02-b"]
    where = target(config, "pdu-C02-b")
    digits = snmp.bulkwalk(where, f"{RARITAN}.3.3.4.1.7")  # inletSensorDecimalDigits.pdu.inlet.type
    values = snmp.bulkwalk(where, f"{RARITAN}.5.2.3.1.4")  # measurementsInletSensorValue
    expected = {1: r.current_a, 4: r.voltage_v, 5: r.power_w, 8: r.energy_kwh * 1000}  # A, V, W, Wh
    for sensor_type, si in expected.items():
        d = int(digits[f"{RARITAN}.3.3.4.1.7.1.1.{sensor_type}"])
        raw = int(values[f"{RARITAN}.5.2.3.1.4.1.1.{sensor_type}"])
        assert abs(raw / 10 ** d - si) <= 10 ** -d, sensor_type
    # current carries 3 decimals on this model: a collector assuming 1 would be 100x off
    assert digits[f"{RARITAN}.3.3.4.1.7.1.1.1"] == "3"
    outlet_digits = snmp.get(where, f"{RARITAN}.3.5.4.1.7.1.5.5")  # outlet 5 activePower digits
    raw = int(snmp.get(where, f"{RARITAN}.5.4.3.1.4.1.5.5")[f"{RARITAN}.5.4.3.1.4.1.5.5"])
    d = int(outlet_digits[f"{RARITAN}.3.5.4.1.7.1.5.5"])
    assert abs(raw / 10 ** d - r.outlets[4].power_w) <= 1


def test_ups_mib_and_vendor_input_power(svc, config, snmp, twin):
    r = twin.snapshot.ups["ups-2"]
    where = target(config, "ups-2")
    out_lines = snmp.bulkwalk(where, f"{UPS}.4.4.1.4")  # upsOutputPower per line, W
    assert len(out_lines) == 3
    assert abs(sum(int(v) for v in out_lines.values()) - r.output_power_w) <= 3
    true_power = snmp.bulkwalk(where, f"{UPS}.3.3.1.5")
    assert set(true_power.values()) == {"0"}  # like the real Eaton 93E: UPS-MIB input power is 0
    vendor = snmp.get(where, "1.3.6.1.4.1.534.1.3.8.3.0")  # xupsInputTotalWatts
    assert near(vendor["1.3.6.1.4.1.534.1.3.8.3.0"], r.input_power_w)
    assert snmp.get(where, f"{UPS}.4.1.0")[f"{UPS}.4.1.0"] == "3"  # on mains


def test_meter_entity_sensor_over_v2c(svc, config, snmp, twin):
    r = twin.snapshot.meters["main-incomer"]
    got = snmp.bulkwalk(target(config, "main-incomer"), "1.3.6.1.2.1.99.1.1.1", version="2c")
    # sensor 1: type watts (6), scale kilo (10), precision 2 -> W = value * 10^3 * 10^-2
    assert (got["1.3.6.1.2.1.99.1.1.1.1.1"], got["1.3.6.1.2.1.99.1.1.1.2.1"]) == ("6", "10")
    value, scale, precision = (int(got[f"1.3.6.1.2.1.99.1.1.1.{c}.1"]) for c in (4, 2, 3))
    assert abs(value * 10 ** (3 * (scale - 9)) * 10 ** -precision - r.power_w) <= 10
    energy = snmp.get(target(config, "main-incomer"), "1.3.6.1.2.1.229.1.5.1.2.1", version="2c")
    assert near(energy["1.3.6.1.2.1.229.1.5.1.2.1"], r.energy_kwh * 1000)


def test_cooling_values(svc, config, snmp, twin):
    inrow = twin.snapshot.cooling["irc-A2"]
    got = snmp.get(target(config, "irc-A2"), f"{INROW}.2.0", f"{INROW}.9.0", f"{INROW}.16.0")
    assert near(got[f"{INROW}.2.0"], inrow.cooling_kw * 10)  # tenths of kW
    assert near(got[f"{INROW}.9.0"], inrow.supply_temp_c * 10)  # tenths of °C
    assert near(got[f"{INROW}.16.0"], inrow.fan_pct * 10)  # tenths of %
    crah = twin.snapshot.cooling["crah-D"]
    temps = snmp.walk(target(config, "crah-D"), f"{LGP}.1.3.3.1")
    by_descr = {temps[f"{LGP}.1.3.3.1.2.{i}"]: int(temps[f"{LGP}.1.3.3.1.50.{i}"]) for i in (1, 2)}
    assert near(by_descr[f".{LGP}.1.1.3"], crah.supply_temp_c * 10)  # supply air, tenths °C
    assert near(by_descr[f".{LGP}.1.1.2"], crah.return_temp_c * 10)  # return air


# --- counters and liveness -------------------------------------------------------------------


def test_energy_counters_rise_between_snapshots(svc, config, snmp, twin):
    apc, rar = target(config, "pdu-A03-a"), target(config, "pdu-D01-a")
    energy_apc, energy_rar = f"{APC}.4.3.1.9.1", f"{RARITAN}.5.2.3.1.4.1.1.8"
    before = int(snmp.get(apc, energy_apc)[energy_apc]), int(snmp.get(rar, energy_rar)[energy_rar])
    # a hand-made next snapshot: an hour later, every counter advanced by its power
    nxt = copy.deepcopy(twin.snapshot)
    nxt.time_ns += 3600 * 10 ** 9
    for pdu in nxt.pdus.values():
        pdu.energy_kwh += pdu.power_w / 1000
    twin.queue.append(nxt)
    svc.call(lambda: svc.advance(3600))
    after = int(snmp.get(apc, energy_apc)[energy_apc]), int(snmp.get(rar, energy_rar)[energy_rar])
    assert after[0] - before[0] == pytest.approx(nxt.pdus["pdu-A03-a"].power_w / 100, abs=1)  # tenths kWh
    assert after[1] - before[1] == pytest.approx(nxt.pdus["pdu-D01-a"].power_w, abs=1)  # Wh


# --- access control --------------------------------------------------------------------------


def test_wrong_credentials_get_no_answer(svc, config, snmp):
    pdu, meter = target(config, "pdu-A01-a"), target(config, "main-incomer")
    for where, version, override in [
        (meter, "2c", {"community": "not-the-community"}),
        (pdu, "3", {"auth_key": "wrong-auth-key-000"}),
        (pdu, "3", {"priv_key": "wrong-priv-key-000"}),
        (pdu, "2c", {}),  # a v3 device does not answer the (valid) v2c community
    ]:
        proc = snmp.run("snmpget", where, [SYS_OBJECT_ID], version, extra=["-t", "0.3"], **override)
        assert proc.returncode != 0 and SYS_OBJECT_ID not in proc.stdout, (where, version, override)


# --- GETNEXT / GETBULK -----------------------------------------------------------------------


def test_getbulk_walks_complete_tables(svc, config, snmp):
    apc = target(config, "pdu-B02-b")
    outlets = snmp.bulkwalk(apc, f"{APC}.9.4.3.1")
    assert len([o for o in outlets if o.startswith(f"{APC}.9.4.3.1.7.")]) == 24  # outlet power column
    assert outlets == snmp.walk(apc, f"{APC}.9.4.3.1")  # GETBULK and GETNEXT see the same table
    rar = target(config, "pdu-C03-a")
    sensors = snmp.bulkwalk(rar, f"{RARITAN}.5.4.3.1.4", extra=["-Cr50"])
    assert len(sensors) == 24 * 3  # current, active power, energy per outlet
    everything = snmp.bulkwalk(rar, "1.3.6.1")  # whole MIB, v3, ends cleanly at endOfMibView
    assert len(everything) > 500 and SYS_OBJECT_ID in everything


# --- faults ----------------------------------------------------------------------------------


def test_faults(svc, config, snmp):
    agents, name = svc.agents, "pdu-B01-a"
    where, power = target(config, name), f"{APC}.4.3.1.5.1"
    try:
        agents.set_fault(name, dead=True)
        proc = snmp.run("snmpget", where, [power], extra=["-t", "0.3"])
        assert proc.returncode != 0 and "Timeout" in proc.stderr
        agents.clear_faults(name)

        agents.set_fault(name, delay_s=0.6)
        t0 = time.monotonic()
        assert power in snmp.get(where, power, extra=["-t", "2"])
        assert time.monotonic() - t0 >= 0.6
        agents.clear_faults(name)

        agents.set_fault(name, sentinel=True)
        assert snmp.get(where, power)[power] == "-1"
        agents.set_fault(name, sentinel=False, garbage=True)
        typed = snmp.run("snmpget", where, [power, SYS_OBJECT_ID], typed=True).stdout
        lines = dict(line.split(" = ", 1) for line in typed.splitlines() if " = " in line)
        assert "STRING" in lines[f".{power}"]  # an OCTET STRING where an INTEGER belongs
        assert lines[f".{SYS_OBJECT_ID}"].startswith("OID")  # identity stays intact
        agents.clear_faults(name)

        agents.set_fault(name, profile="raritan_pdu2")  # the PDU was swapped for another model
        got = snmp.get(where, SYS_OBJECT_ID)
        assert got[SYS_OBJECT_ID] == ".1.3.6.1.4.1.13742.6"
        assert snmp.bulkwalk(where, f"{RARITAN}.5.2.3.1.4")  # and serves that model's MIB
        agents.set_fault(name, profile=None, sys_object_id="1.3.6.1.4.1.318.1.3.4.5")
        assert snmp.get(where, SYS_OBJECT_ID)[SYS_OBJECT_ID] == ".1.3.6.1.4.1.318.1.3.4.5"
        with pytest.raises(ValueError):
            agents.set_fault(name, profile="no-such-model")
    finally:
        agents.clear_faults()
    assert snmp.get(where, SYS_OBJECT_ID)[SYS_OBJECT_ID] == ".1.3.6.1.4.1.318.1.3.4.6"


def test_other_devices_answer_while_one_is_slow(svc, config, snmp):
    svc.agents.set_fault("pdu-A04-a", delay_s=1.5)
    try:
        t0 = time.monotonic()
        with pytest.raises(SnmpFailed):
            snmp.get(target(config, "pdu-A04-a"), SYS_OBJECT_ID, extra=["-t", "0.3"])
        assert snmp.get(target(config, "pdu-A04-b"), SYS_OBJECT_ID)
        assert time.monotonic() - t0 < 1.5
    finally:
        svc.agents.clear_faults()
