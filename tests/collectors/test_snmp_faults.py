"""Faults and vendor profiles without a real recording, over snmpsim (real UDP).

Synthetic .snmprec files hold raw vendor integers; the expected SI values are computed here from
the reference's scales (snmp-device-oids.md), not from the profiles.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.device import SnmpDevice
from collectors.snmp.engine import V3, Endpoint, SnmpError, SnmpPoller, V2c
from tests.fixtures.snmpsim import SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, SNMPSIM_V3_USER

SYSOID = "1.3.6.1.2.1.1.2.0|6|"
R = "1.3.6.1.4.1.318.1.1.26"


def run(coro):
    return asyncio.run(coro)


async def _get(agent, auth, oids, timeout=0.5):
    poller = SnmpPoller()
    try:
        return await poller.get(Endpoint(agent.host, agent.port, auth, timeout_s=timeout, retries=0), oids)
    finally:
        poller.close()


def _device(agent, community, kind="pdu", port=None, timeout=1.0, profile="auto", name=None):
    return SnmpDevice(name or community.replace("/", "-"), kind,
                      Endpoint(agent.host, port or agent.port, V2c(community), timeout_s=timeout, retries=0),
                      {"site": "s"}, profile)


def _poll(agent, community, kind="pdu", profile="auto", name=None):
    async def go():
        poller = SnmpPoller()
        dev = _device(agent, community, kind, profile=profile, name=name)
        try:
            return dev, await dev.poll(poller)
        finally:
            poller.close()
    return run(go())


def _by(points, measurement, tag=None):
    if tag is None:
        [p] = [p for p in points if p.measurement == measurement]
        return p.fields
    return {p.tags[tag]: p.fields for p in points if p.measurement == measurement}


# --- credentials -----------------------------------------------------------------------------------


def test_wrong_community_is_a_clear_timeout(snmpsim_agent):
    with pytest.raises(SnmpError) as err:
        run(_get(snmpsim_agent, V2c("no-such-community"), ["1.3.6.1.2.1.1.2.0"]))
    assert "timeout" in err.value.reason and "community" in err.value.reason
    assert "no-such-community" not in str(err.value)


@pytest.mark.parametrize("auth,why", [
    (V3(SNMPSIM_V3_USER, "wrong-auth-key-1", SNMPSIM_V3_PRIV, "SHA", "AES", "UPS/apc-8641"), "wrong digest"),
    (V3("nobody-here", SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, "SHA", "AES", "UPS/apc-8641"), "unknown user"),
])
def test_v3_auth_failures_are_named_and_secret_free(snmpsim_agent, auth, why):
    with pytest.raises(SnmpError) as err:
        run(_get(snmpsim_agent, auth, ["1.3.6.1.2.1.1.2.0"]))
    assert "v3 auth failure" in err.value.reason and why in err.value.reason
    for secret in (auth.auth_key, auth.priv_key):
        assert secret not in str(err.value) and secret not in repr(auth)


def test_v3_wrong_priv_key_does_not_read(snmpsim_agent):
    auth = V3(SNMPSIM_V3_USER, SNMPSIM_V3_AUTH, "wrong-priv-key-9", "SHA", "AES", "UPS/apc-8641")
    with pytest.raises(SnmpError) as err:
        run(_get(snmpsim_agent, auth, ["1.3.6.1.2.1.1.2.0"]))
    assert "wrong-priv-key-9" not in str(err.value)


# --- garbage, sentinels, counters, model change -------------------------------------------------


def test_garbage_types_and_negative_sentinels_are_absent_and_counted(snmpsim_agent):
    community = snmpsim_agent.synthetic([
        SYSOID + "1.3.6.1.4.1.318.1.3.4.6",
        f"{R}.4.3.1.5.1|4|not-a-number",     # device power: a string
        f"{R}.4.3.1.9.1|68|0102",            # device energy: Opaque
        f"{R}.4.3.1.16.1|2|-1",              # apparent power: APC "unsupported"
        f"{R}.4.3.1.17.1|2|95",
        f"{R}.6.3.1.5.1|2|-7",               # phase current: impossible negative
        f"{R}.6.3.1.5.2|2|123",
        f"{R}.6.3.1.6.1|2|230",
        f"{R}.6.3.1.6.2|6|1.3.6.1",          # voltage: an OID
        f"{R}.9.4.3.1.7.1|2|250",
        f"{R}.9.4.3.1.7.2|2|-1",
        f"{R}.10.2.2.1.8.1|2|-55",           # -5.5 °C is a valid temperature
    ])
    dev, points = _poll(snmpsim_agent, community, name="synth-apc-faulty")
    pdu = _by(points, "pdu")
    # The total current would be one phase short: absent rather than low.
    assert pdu == {"power_factor": pytest.approx(0.95)}
    phases = _by(points, "pdu_phase", "phase")
    assert phases["1"] == {"voltage_v": 230}
    assert phases["2"] == {"current_a": pytest.approx(12.3)}
    outlets = _by(points, "pdu_outlet", "outlet")
    assert outlets == {"1": {"power_w": 250}}
    assert _by(points, "env")["temp_c"] == pytest.approx(-5.5)
    # -1 apparent power, -1 outlet power, -7 phase current (read for the phase and for the PDU total).
    assert dev.stats.garbage == 3 and dev.stats.sentinel == 4


def test_counter_reset_is_stored_raw_and_model_change_is_redetected(snmpsim_agent):
    lines = [SYSOID + "1.3.6.1.4.1.318.1.3.4.6", f"{R}.4.3.1.5.1|2|150", f"{R}.4.3.1.9.1|2|987654"]
    community = snmpsim_agent.synthetic(lines)

    async def go():
        poller = SnmpPoller()
        dev = _device(snmpsim_agent, community)
        try:
            first = await dev.poll(poller)
            time.sleep(0.05)
            snmpsim_agent.write(community, [lines[0], lines[1], f"{R}.4.3.1.9.1|2|3"])   # energy reset
            second = await dev.poll(poller)
            # The unit is swapped for a Raritan (same address, new sysObjectID and MIB).
            x = "1.3.6.1.4.1.13742.6"
            snmpsim_agent.write(community, [
                SYSOID + x,
                f"{x}.3.3.4.1.7.1.1.1|66|2", f"{x}.3.3.4.1.7.1.1.5|66|0", f"{x}.3.3.4.1.7.1.1.8|66|0",
                f"{x}.5.2.3.1.2.1.1.1|2|1", f"{x}.5.2.3.1.2.1.1.5|2|1", f"{x}.5.2.3.1.2.1.1.8|2|1",
                f"{x}.5.2.3.1.4.1.1.1|66|1234", f"{x}.5.2.3.1.4.1.1.5|66|2750", f"{x}.5.2.3.1.4.1.1.8|66|4200000",
            ])
            third = await dev.poll(poller)
            return dev, first, second, third
        finally:
            poller.close()

    dev, first, second, third = run(go())
    assert _by(first, "pdu")["energy_kwh"] == pytest.approx(98765.4)
    assert _by(second, "pdu")["energy_kwh"] == pytest.approx(0.3)   # raw, not "fixed"
    assert dev.plan.profile.name == "raritan_pdu2" and dev.redetections == 1
    # Raritan: raw / 10^digits; energy in Wh.
    assert _by(third, "pdu") == {"current_a": pytest.approx(12.34), "power_w": 2750, "energy_kwh": pytest.approx(4200)}


# --- vendor profiles from the reference's tables -----------------------------------------------


def test_sentry4_scales(snmpsim_agent):
    s = "1.3.6.1.4.1.1718.4.1"
    community = snmpsim_agent.synthetic([
        SYSOID + "1.3.6.1.4.1.1718.4",
        f"{s}.3.3.1.3.1.1|2|1701", f"{s}.3.3.1.10.1.1|2|8937", f"{s}.3.3.1.8.1.1|2|97",
        f"{s}.5.3.1.3.1.1.1|2|2079", f"{s}.5.3.1.6.1.1.1|2|812", f"{s}.5.3.1.8.1.1.1|2|415",
        f"{s}.7.3.1.3.1.1.1|2|395", f"{s}.8.3.1.3.1.1.7|2|123", f"{s}.8.3.1.7.1.1.7|2|140",
        f"{s}.8.3.1.14.1.1.7|2|98765",
        f"{s}.9.3.1.1.1.1|2|-410", f"{s}.9.3.1.1.1.2|2|251", f"{s}.10.3.1.1.1.1|2|-1",
    ])
    dev, points = _poll(snmpsim_agent, community, name="synth-sentry4")
    assert dev.plan.profile.name == "sentry4"
    assert _by(points, "pdu") == {"power_w": 1701, "energy_kwh": pytest.approx(893.7),
                                  "power_factor": pytest.approx(0.97)}
    assert _by(points, "pdu_phase", "phase")["1"] == {"voltage_v": pytest.approx(207.9), "current_a":
                                                      pytest.approx(8.12), "power_w": 415}
    assert _by(points, "pdu_breaker", "breaker")["1"] == {"current_a": pytest.approx(3.95)}
    assert _by(points, "pdu_outlet", "outlet")["7"] == {"current_a": pytest.approx(1.23), "power_w": 140,
                                                        "energy_kwh": pytest.approx(98.765)}  # outlet Wh
    env = _by(points, "env", "sensor")
    assert env == {"synth-sentry4-2": {"temp_c": pytest.approx(25.1)}}  # -410 and -1: absent probes


def test_eaton_epdu_scales(snmpsim_agent):
    e = "1.3.6.1.4.1.534.6.6.7"
    community = snmpsim_agent.synthetic([
        SYSOID + "1.3.6.1.4.1.534.6.6.7",
        f"{e}.3.2.1.3.0.1.1|66|229500", f"{e}.3.3.1.4.0.1.1|66|7450",
        f"{e}.3.4.1.4.0.1.1|2|1650", f"{e}.3.4.1.4.0.1.2|2|1350", f"{e}.3.4.1.4.0.1.4|2|3000",  # k=4 total
        f"{e}.3.4.1.5.0.1.1|66|1234567",
        f"{e}.5.4.1.3.0.1|66|2500", f"{e}.6.5.1.3.0.3|2|220", f"{e}.6.4.1.3.0.3|66|980",
    ])
    dev, points = _poll(snmpsim_agent, community, name="synth-eaton-epdu")
    assert dev.plan.profile.name == "eaton_epdu"
    phases = _by(points, "pdu_phase", "phase")
    assert set(phases) == {"1", "2"}  # k = 4 is the 3-phase total, not a phase
    assert phases["1"] == {"voltage_v": pytest.approx(229.5), "current_a": pytest.approx(7.45), "power_w": 1650,
                           "energy_kwh": pytest.approx(1234.567)}
    assert _by(points, "pdu")["power_w"] == 3000
    assert _by(points, "pdu_breaker", "breaker")["1"] == {"current_a": pytest.approx(2.5)}
    assert _by(points, "pdu_outlet", "outlet")["3"] == {"power_w": 220, "current_a": pytest.approx(0.98)}


def test_geist_scales(snmpsim_agent):
    g = "1.3.6.1.4.1.21239.5.2.3"
    community = snmpsim_agent.synthetic([
        SYSOID + "1.3.6.1.4.1.21239.5.2",
        f"{g}.1.1.9.1|66|4321", f"{g}.1.1.12.1|66|9999000",
        f"{g}.2.1.4.1|66|2301", f"{g}.2.1.8.1|66|1875", f"{g}.2.1.12.1|66|4321",
        f"{g}.6.1.12.5|66|180", f"{g}.6.1.8.5|66|82",
    ])
    dev, points = _poll(snmpsim_agent, community, name="synth-geist")
    assert dev.plan.profile.name == "geist"
    assert _by(points, "pdu") == {"power_w": 4321, "energy_kwh": pytest.approx(9999.0)}
    assert _by(points, "pdu_phase", "phase")["1"] == {"voltage_v": pytest.approx(230.1),
                                                      "current_a": pytest.approx(18.75), "power_w": 4321}
    assert _by(points, "pdu_outlet", "outlet")["5"] == {"power_w": 180, "current_a": pytest.approx(0.82)}


def test_entity_sensor_fallback_for_an_unknown_pdu(snmpsim_agent):
    es = "1.3.6.1.2.1.99.1.1.1"
    community = snmpsim_agent.synthetic([
        SYSOID + "1.3.6.1.4.1.99999.1",    # a vendor we have no profile for
        # index 1: watts, kilo, precision 2 -> 1.23 kW; 2: amperes, milli, 0 -> 5.6 A; 3: celsius ok; 4 unavailable
        f"{es}.1.1|2|6", f"{es}.2.1|2|10", f"{es}.3.1|2|2", f"{es}.4.1|2|123", f"{es}.5.1|2|1",
        f"{es}.1.2|2|5", f"{es}.2.2|2|8", f"{es}.3.2|2|0", f"{es}.4.2|2|5600", f"{es}.5.2|2|1",
        f"{es}.1.3|2|8", f"{es}.2.3|2|9", f"{es}.3.3|2|1", f"{es}.4.3|2|245", f"{es}.5.3|2|1",
        f"{es}.1.4|2|8", f"{es}.2.4|2|9", f"{es}.3.4|2|1", f"{es}.4.4|2|999", f"{es}.5.4|2|2",
    ])
    dev, points = _poll(snmpsim_agent, community, name="synth-entity-pdu")
    assert dev.plan.profile.name == "entity_sensor"
    assert _by(points, "pdu") == {"power_w": pytest.approx(1230), "current_a": pytest.approx(5.6)}
    assert _by(points, "env", "sensor") == {"synth-entity-pdu-3": {"temp_c": pytest.approx(24.5)}}


def test_unknown_device_gives_a_clear_error(snmpsim_agent):
    community = snmpsim_agent.synthetic([SYSOID + "1.3.6.1.4.1.99999.7", "1.3.6.1.2.1.1.5.0|4|mystery"])

    async def go():
        col = SnmpCollector([_device(snmpsim_agent, community, name="synth-unknown")])
        try:
            return await col.poll(3)
        finally:
            await col.close()

    [result] = run(go())
    assert not result.ok and "no profile matches sysObjectID 1.3.6.1.4.1.99999.7" in result.error


def test_dead_agent_among_live_ones_bounds_the_cycle(snmpsim_agent):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]   # bound but never answers: a device that is down

    async def go():
        devices = [_device(snmpsim_agent, "UPS/apc-8641", port=snmpsim_agent.ports[1]),
                   _device(snmpsim_agent, "UPS/apc-8932", port=snmpsim_agent.ports[2]),
                   _device(snmpsim_agent, "UPS/apc-7902b", port=dead_port, timeout=0.5)]
        devices[2].name = "dead"
        col = SnmpCollector(devices)
        try:
            await col.poll(5)
            t0 = time.monotonic()
            results = await col.poll(5)
            return results, time.monotonic() - t0
        finally:
            await col.close()

    try:
        results, took = run(go())
    finally:
        s.close()
    by = {r.target: r for r in results}
    assert not by["dead"].ok and "timeout" in by["dead"].error
    assert by["UPS-apc-8641"].ok and by["UPS-apc-8932"].ok
    assert took < 0.5 + 1.0


def test_slower_device_intervals_skip_ticks(snmpsim_agent):
    async def go():
        fast = _device(snmpsim_agent, "UPS/apc-8641", port=snmpsim_agent.ports[4])
        slow = _device(snmpsim_agent, "UPS/apc-8932", port=snmpsim_agent.ports[5])
        fast.interval_s, slow.interval_s = 1.0, 60.0
        col = SnmpCollector([fast, slow], interval_s=1.0)
        try:
            return [sorted(r.target for r in await col.poll(3)) for _ in range(3)]
        finally:
            await col.close()

    ticks = run(go())
    assert ticks[0] == ["UPS-apc-8641", "UPS-apc-8932"]
    assert ticks[1] == ticks[2] == ["UPS-apc-8641"]   # the 60 s device waits for its own interval
