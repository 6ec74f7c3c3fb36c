"""The twin's SNMPv2c fast path (simulator/snmp_agents._V2cAgent, BER from dcim/snmp_ber.py).

Answers are checked through independent decoders only: Net-SNMP's command-line tools (snmpwalk's
view of a device is the reference for GETNEXT / GETBULK order and values) and pyasn1/pysnmp's
message codec for hand-made datagrams. Expected values come from the profiles' definitions and
the snapshot (``expected_table`` below mirrors the MIB data, not the agent's encoder).
"""

from __future__ import annotations

import copy
import socket
import time

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

from dcim.config import SnmpV2c, load_config
from simulator.mib_common import COUNTER, GAUGE, OID, STR, Scalar, raw
from simulator.service import SyntheticTwin
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

COMMUNITY = TEST_SECRETS["DCIM_SNMP_COMMUNITY"]
APC_PDU, RARITAN_PDU, METER, V3_UPS = "pdu-A01-a", "pdu-C03-a", "main-incomer", "ups-1"
SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME = (f"1.3.6.1.2.1.1.{n}.0" for n in (1, 2, 3, 5))
APC_POWER = "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1"
TYPE_NAMES = {"Integer32": "INTEGER", "Gauge32": "Gauge32", "Counter32": "Counter32", "OctetString": "STRING",
              "ObjectIdentifier": "OID"}


@pytest.fixture(scope="module")
def config():
    mp = pytest.MonkeyPatch()
    for name, value in TEST_SECRETS.items():
        mp.setenv(name, value)
    # v2c for the devices under test whatever the demo config says; ups-1 stays v3 (pysnmp path)
    yield with_v2c(relocated(load_config(REPO / "deploy" / "demo.toml"), prefix="127.76"),
                   {APC_PDU, RARITAN_PDU, METER})
    mp.undo()


def with_v2c(cfg, names: set[str]):
    creds = dict(cfg.snmp.credentials)
    creds["fast-v2c"] = SnmpV2c(version="2c", community={"env": "DCIM_SNMP_COMMUNITY"})

    def v2c_for(devices):
        return [d.model_copy(update={"snmp": d.snmp.model_copy(update={"credentials": "fast-v2c"})})
                if d.name in names else d for d in devices]

    return cfg.model_copy(update={"snmp": cfg.snmp.model_copy(update={"credentials": creds}),
                                  "pdus": v2c_for(cfg.pdus), "meters": v2c_for(cfg.meters)})


@pytest.fixture(scope="module")
def twin(config):
    synthetic = SyntheticTwin(config, seed=5)
    synthetic.step(3600)
    return StubTwin(copy.deepcopy(synthetic.snapshot))


@pytest.fixture(scope="module")
def svc(config, twin):
    with running_service(config, twin, devices=[APC_PDU, RARITAN_PDU, METER, V3_UPS]) as service:
        yield service


@pytest.fixture(scope="module")
def snmp():
    return NetSnmp()


def addr(config, name) -> tuple[str, int]:
    host, port = target(config, name).rsplit(":", 1)
    return host, int(port)


def typed(snmp: NetSnmp, tool: str, where: str, oids: list[str], extra: list[str] | None = None) -> list[tuple]:
    """(OID without leading dot, "TYPE: value" or the exception text) per output line, in order."""
    proc = snmp.run(tool, where, oids, "2c", extra=extra, typed=True)
    if proc.returncode != 0:
        raise SnmpFailed(f"{tool} {where}: {proc.stderr.strip()}")
    return [(o.lstrip("."), v) for o, _, v in (line.partition(" = ") for line in proc.stdout.splitlines()) if v]


def names(lines: list[tuple]) -> list[str]:
    """The OIDs of the lines that carry a value (not the endOfMibView line a walk may end with)."""
    return [o for o, v in lines if not v.startswith("No more variables")]


def expected_table(agent, reading) -> dict[str, str]:
    """The device's MIB as Net-SNMP should print it (typed), from the profile data and the reading."""
    profile, dev = agent.served_profile, agent.device
    out = {SYS_DESCR: f'STRING: "{profile.sys_descr}"', SYS_OBJECT_ID: f"OID: .{profile.sys_object_id}",
           "1.3.6.1.2.1.1.4.0": 'STRING: "dcim facility twin"', SYS_NAME: f'STRING: "{agent.name}"',
           "1.3.6.1.2.1.1.6.0": f'STRING: "{getattr(dev, "rack", None) or getattr(dev, "room", None) or "plant"}"',
           "1.3.6.1.2.1.1.7.0": "INTEGER: 72"}

    def text(syntax, value, scale):
        name = TYPE_NAMES[syntax.__name__]
        if syntax is STR:
            return f'{name}: "{value}"'
        if syntax is OID:
            return f"{name}: .{value}"
        number = int(raw(value, scale))
        lo, hi = (0, 2 ** 32 - 1) if syntax in (GAUGE, COUNTER) else (-2 ** 31, 2 ** 31 - 1)
        return f"{name}: {min(hi, max(lo, number))}"

    for obj in profile.objects:
        if isinstance(obj, Scalar):
            value = obj.value(dev, reading)
            if value is not None:
                out[f"{obj.oid}.0"] = text(obj.syntax, value, obj.scale)
            continue
        rows = list(obj.rows(dev, reading))
        for col in obj.columns:
            for index, item in rows:
                value = col.value(dev, reading, item, index)
                if value is not None:
                    out[".".join([obj.entry, str(col.sub), *map(str, index)])] = text(col.syntax, value, col.scale)
    return out


def oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


# --- raw datagrams, built and read with pyasn1 ---------------------------------------------------


def message(pdu, community: str = COMMUNITY) -> bytes:
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def get_packet(oids: list[str], request_id: int = 1, community: str = COMMUNITY) -> bytes:
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, [(o, v2c.Null()) for o in oids])
    return message(pdu, community)


def bulk_packet(oids: list[str], non_repeaters: int, max_repetitions: int, request_id: int = 1) -> bytes:
    pdu = v2c.GetBulkRequestPDU()
    v2c.apiBulkPDU.set_defaults(pdu)
    v2c.apiBulkPDU.set_request_id(pdu, request_id)
    v2c.apiBulkPDU.set_non_repeaters(pdu, non_repeaters)
    v2c.apiBulkPDU.set_max_repetitions(pdu, max_repetitions)
    v2c.apiBulkPDU.set_varbinds(pdu, [(o, v2c.Null()) for o in oids])
    return message(pdu)


def exchange(where: tuple[str, int], packets: list[bytes], wait_s: float = 2.0) -> list[bytes]:
    """Send *packets*; every datagram that comes back until *wait_s* passes with nothing new."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for p in packets:
            s.sendto(p, where)
        s.settimeout(wait_s)
        got = []
        try:
            while True:
                got.append(s.recvfrom(70000)[0])
        except TimeoutError:
            return got


def decode(data: bytes):
    msg, rest = decoder.decode(data, asn1Spec=v2c.Message())
    assert not rest
    pdu = v2c.apiMessage.get_pdu(msg)
    return (str(v2c.apiMessage.get_community(msg)), int(v2c.apiPDU.get_request_id(pdu)),
            int(v2c.apiPDU.get_error_status(pdu)), [(str(o), val) for o, val in v2c.apiPDU.get_varbinds(pdu)])


# --- the table as Net-SNMP sees it ---------------------------------------------------------------


@pytest.mark.parametrize("name", [APC_PDU, RARITAN_PDU, METER])
def test_walk_is_the_mib_of_the_snapshot(svc, config, snmp, twin, name):
    agent = svc.agents.agents[name]
    assert agent.version == "2c" and name in svc.agents._v2c  # served by the fast path
    reading = agent._reading(twin.snapshot)
    walk = typed(snmp, "snmpwalk", target(config, name), ["1.3.6.1"])
    assert walk[-1][1].startswith("No more variables")  # the walk ends at endOfMibView
    walk = walk[:-1]
    got = dict(walk)
    assert [o for o, _ in walk] == sorted(got, key=oid_key)  # strictly increasing, no repeats
    assert len(got) == len(walk)
    assert got.pop(SYS_UPTIME).split(": ")[-1].isdigit()  # -Ot: raw ticks
    assert got == expected_table(agent, reading)
    # GETBULK, at several repetition counts, and GET of every OID see the same table
    for reps in ("-Cr1", "-Cr7", "-Cr60"):
        bulk = typed(snmp, "snmpbulkwalk", target(config, name), ["1.3.6.1"], extra=[reps])
        assert names(bulk) == [o for o, _ in walk], reps
    oids = [o for o, _ in walk if o != SYS_UPTIME]
    for i in range(0, len(oids), 40):
        chunk = typed(snmp, "snmpget", target(config, name), oids[i:i + 40])
        assert dict(chunk) == {o: got[o] for o in oids[i:i + 40]}


def test_getbulk_non_repeaters_and_max_repetitions(svc, config, snmp):
    where = target(config, RARITAN_PDU)
    walk = [o for o, _ in typed(snmp, "snmpwalk", where, ["1.3.6.1"])][:-1]

    def after(oid: str, n: int = 1) -> list[str]:  # the next n OIDs after oid in Net-SNMP's walk
        i = next(k for k, o in enumerate(walk) if oid_key(o) > oid_key(oid))
        return walk[i:i + n]

    nr = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.4"]  # the next of each, once
    rep = ["1.3.6.1.2.1.1.5", walk[200], walk[400]]  # interleaved, 6 times
    got = [o for o, _ in typed(snmp, "snmpbulkget", where, nr + rep, extra=["-Cn2", "-Cr6"])]
    expected = [after(nr[0])[0], after(nr[1])[0]]
    columns = [after(o, 6) for o in rep]
    expected += [columns[c][r] for r in range(6) for c in range(3)]
    assert got == expected
    # max-repetitions 0: only the non-repeaters
    assert [o for o, _ in typed(snmp, "snmpbulkget", where, nr + rep, extra=["-Cn2", "-Cr0"])] == expected[:2]
    # non-repeaters beyond the varbinds (Net-SNMP's client refuses to send it): all are non-repeaters
    (reply,) = exchange(addr(config, RARITAN_PDU), [bulk_packet(nr, 5, 4, request_id=3)])
    assert [o for o, _ in decode(reply)[3]] == expected[:2]
    negative = bulk_packet(nr, 0, 2, request_id=4).replace(b"\x02\x01\x00\x02\x01\x02", b"\x02\x01\xfd\x02\x01\x02")
    (reply,) = exchange(addr(config, RARITAN_PDU), [negative])  # non-repeaters -3: taken as 0
    first, second = after(nr[0], 2), after(nr[1], 2)
    assert [o for o, _ in decode(reply)[3]] == [first[0], second[0], first[1], second[1]]


def test_end_of_mib_view(svc, config, snmp):
    where = target(config, APC_PDU)
    walk = [o for o, _ in typed(snmp, "snmpwalk", where, ["1.3.6.1"])][:-1]
    got = typed(snmp, "snmpbulkget", where, [walk[-3]], extra=["-Cr10"])
    assert [o for o, _ in got[:2]] == walk[-2:]
    assert got[2][1].startswith("No more variables") and len(got) <= 10  # stops at endOfMibView
    # two repeaters, one ending first: it keeps answering endOfMibView while the other goes on
    got = typed(snmp, "snmpbulkget", where, [walk[-2], walk[-6]], extra=["-Cr3"])
    assert [o for o, _ in got[0::2]][:1] == walk[-1:] and got[2][1].startswith("No more variables")
    assert [o for o, _ in got[1::2]] == walk[-5:-2]
    got = typed(snmp, "snmpgetnext", where, [walk[-1], "1.3.6.1.2.1.1.1"])
    assert got[0][1].startswith("No more variables") and got[1][0] == SYS_DESCR


def test_get_misses(svc, config, snmp):
    got = dict(typed(snmp, "snmpget", target(config, APC_PDU),
                     [SYS_NAME, "1.3.6.1.2.1.1.5.1", "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.99", "1.3.6.1.2.1.1.9.0",
                      "1.3.6.1.4.1.99999.1.0", "1.3.6.1.2.1.1"]))
    assert got[SYS_NAME] == f'STRING: "{APC_PDU}"'
    assert got["1.3.6.1.2.1.1.5.1"].startswith("No Such Instance")  # sysName exists, not .1
    assert got["1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.99"].startswith("No Such Instance")  # no outlet 99
    for missing in ("1.3.6.1.2.1.1.9.0", "1.3.6.1.4.1.99999.1.0", "1.3.6.1.2.1.1"):
        assert got[missing].startswith("No Such Object"), missing


def test_wrong_community_is_silent(svc, config, snmp):
    for community in ("not-the-community", COMMUNITY[:-1], COMMUNITY + "x", ""):
        proc = snmp.run("snmpget", target(config, METER), [SYS_NAME], "2c", extra=["-t", "0.3"],
                        community=community)
        assert proc.returncode != 0 and "Timeout" in proc.stderr, community
    assert snmp.get(target(config, METER), SYS_NAME, version="2c")[SYS_NAME] == METER


def test_malformed_datagrams_are_dropped_and_the_agent_goes_on(svc, config, caplog):
    where = addr(config, APC_PDU)
    good = get_packet([SYS_NAME, APC_POWER], request_id=777)
    bad = [good[:n] for n in range(len(good))]  # every truncation
    bad += [good + b"\x00", b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"\x30\x80\x00\x00", bytes(range(256)),
            b"\x30\x03\x02\x01\x01",
            good.replace(b"\xa0", b"\xa3", 1),  # SetRequest: read-only agent, no answer
            good.replace(b"\x02\x01\x01", b"\x02\x01\x00", 1),  # SNMPv1
            good.replace(b"\x02\x01\x01", b"\x02\x01\x03", 1),  # SNMPv3 header on a v2c device
            good.replace(b"\x01\x01\x05\x00\x05\x00", b"\x01\x01\x05\x80\x05\x00", 1)]  # OID cut mid-number
    assert bad[-1] != good
    flipped = bytearray(good)
    for i in range(len(good)):  # every length / tag octet made huge
        b = bytearray(flipped)
        b[i] = 0xFF
        bad.append(bytes(b))
    replies = exchange(where, bad + [get_packet([SYS_NAME, APC_POWER], request_id=4242)])
    decoded = [decode(reply) for reply in replies]  # whatever did come back is a well-formed response
    assert [d[1] for d in decoded].count(4242) == 1
    community, rid, status, vbs = next(d for d in decoded if d[1] == 4242)
    assert (community, status, [o for o, _ in vbs]) == (COMMUNITY, 0, [SYS_NAME, APC_POWER])
    assert str(vbs[0][1]) == APC_PDU
    # a flipped byte may still make a valid request with another id or OID; nothing else answered
    assert all(d[0] == COMMUNITY for d in decoded)
    assert svc.agents._v2c[APC_PDU].dropped >= len(good)
    assert not [r for r in caplog.records if r.name == "simulator.snmp_agents" and r.levelname == "ERROR"]


def test_oversized_getbulk_is_cut_to_a_datagram(svc, config, snmp):
    where = addr(config, RARITAN_PDU)
    walk = [o for o, _ in typed(snmp, "snmpwalk", target(config, RARITAN_PDU), ["1.3.6.1"])][:-1]
    starts = walk[:300:5]  # 60 repeaters x 1000 repetitions: megabytes if not cut
    (reply,) = exchange(where, [bulk_packet(starts, 0, 1000, request_id=9)])
    assert len(reply) <= 65507
    _, rid, status, vbs = decode(reply)
    assert (rid, status) == (9, 0) and len(vbs) > 500
    # what did fit is the start of the full answer, in RFC 3416 order
    for k, (oid, _) in enumerate(vbs):
        col, rep = k % len(starts), k // len(starts)
        i = walk.index(starts[col]) + 1 + rep
        if i < len(walk):
            assert oid == walk[i], k
    # a smaller limit (as a 1500-byte MTU agent): each answer is cut, and a bulk walk still completes
    svc.agents.v2c_max_message = 1472
    try:
        (reply,) = exchange(where, [bulk_packet(walk[:1], 0, 500, request_id=10)])
        assert len(reply) <= 1472 and 10 < len(decode(reply)[3]) < 500
        bulk = typed(snmp, "snmpbulkwalk", target(config, RARITAN_PDU), ["1.3.6.1"], extra=["-Cr200"])
        assert names(bulk) == walk
    finally:
        svc.agents.v2c_max_message = 65507


def test_get_too_big_for_a_datagram(svc, config):
    (reply,) = exchange(addr(config, RARITAN_PDU), [get_packet([SYS_DESCR] * 2500, request_id=11)])
    _, rid, status, vbs = decode(reply)
    assert (rid, status, vbs) == (11, 1, [])  # tooBig (RFC 3416 4.2.1)


def test_faults_over_v2c(svc, config, snmp):
    agents, name = svc.agents, APC_PDU
    where = target(config, name)
    try:
        agents.set_fault(name, dead=True)
        proc = snmp.run("snmpget", where, [APC_POWER], "2c", extra=["-t", "0.3"])
        assert proc.returncode != 0 and "Timeout" in proc.stderr
        agents.clear_faults(name)

        agents.set_fault(name, delay_s=0.5)
        t0 = time.monotonic()
        assert APC_POWER in snmp.get(where, APC_POWER, version="2c", extra=["-t", "2"])
        assert time.monotonic() - t0 >= 0.5
        agents.clear_faults(name)

        agents.set_fault(name, sentinel=True)
        assert snmp.get(where, APC_POWER, version="2c")[APC_POWER] == "-1"
        agents.set_fault(name, sentinel=False, garbage=True)
        got = dict(typed(snmp, "snmpget", where, [APC_POWER, SYS_OBJECT_ID]))
        assert "STRING" in got[APC_POWER] and got[SYS_OBJECT_ID].startswith("OID")
        agents.clear_faults(name)

        agents.set_fault(name, profile="raritan_pdu2")
        assert snmp.get(where, SYS_OBJECT_ID, version="2c")[SYS_OBJECT_ID] == ".1.3.6.1.4.1.13742.6"
        assert snmp.bulkwalk(where, "1.3.6.1.4.1.13742.6.5.2.3.1.4", version="2c")
        agents.set_fault(name, profile=None, sys_object_id="1.3.6.1.4.1.318.1.3.4.5")
        assert snmp.get(where, SYS_OBJECT_ID, version="2c")[SYS_OBJECT_ID] == ".1.3.6.1.4.1.318.1.3.4.5"
    finally:
        agents.clear_faults()
    assert snmp.get(where, SYS_OBJECT_ID, version="2c")[SYS_OBJECT_ID] == ".1.3.6.1.4.1.318.1.3.4.6"


def test_table_rebuilt_only_for_a_new_snapshot(svc, config, snmp, twin):
    agent = svc.agents.agents[METER]
    builds = []
    original = agent._build
    agent._build = lambda snap: builds.append(snap) or original(snap)
    try:
        for _ in range(3):
            snmp.get(target(config, METER), SYS_NAME, version="2c")
        assert len(builds) <= 1
        nxt = copy.deepcopy(twin.snapshot)
        nxt.time_ns += 10 ** 9
        twin.queue.append(nxt)
        svc.call(lambda: svc.advance(1))
        for _ in range(3):
            snmp.get(target(config, METER), SYS_NAME, version="2c")
        assert builds[-1] is nxt and len(builds) <= 2
    finally:
        del agent._build


def test_v3_device_still_on_pysnmp(svc, config, snmp):
    assert svc.agents.agents[V3_UPS].version == "3" and V3_UPS not in svc.agents._v2c
    assert snmp.get(target(config, V3_UPS), SYS_NAME)[SYS_NAME] == V3_UPS
    proc = snmp.run("snmpget", target(config, V3_UPS), [SYS_NAME], "2c", extra=["-t", "0.3"])
    assert proc.returncode != 0  # no v2c on a v3 device


class _Sink:
    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append(data)

    def is_closing(self):
        return False


def test_fuzzed_requests_never_raise_and_answers_decode(config, twin):
    """Mutated GET / GETNEXT / GETBULK datagrams straight into the protocol (no sockets): each is
    dropped or answered with a response pyasn1 decodes, with the request's id."""
    import random

    from simulator.snmp_agents import AgentSet, _V2cAgent

    agents = AgentSet(config, lambda: twin.snapshot, devices=[RARITAN_PDU])
    agents._engine = object()  # "running", without sockets
    proto = _V2cAgent(agents, agents.agents[RARITAN_PDU], COMMUNITY.encode())
    sink = _Sink()
    proto.connection_made(sink)
    seeds = [get_packet([SYS_NAME, "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5", "1.3.6.1.2.1.1.9.0"], request_id=5),
             bulk_packet(["1.3.6.1.2.1.1", "1.3.6.1.4.1.13742.6.5.4"], 1, 20, request_id=6)]
    nxt = v2c.GetNextRequestPDU()
    v2c.apiPDU.set_defaults(nxt)
    v2c.apiPDU.set_request_id(nxt, 7)
    v2c.apiPDU.set_varbinds(nxt, [("1.3.6.1.4.1.13742.6.5.4.3.1.6.1.24.8", v2c.Null()), ("1.3", v2c.Null())])
    seeds.append(message(nxt))
    rnd = random.Random(11)
    answered = 0
    for _ in range(3000):
        data = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 3)):
            if not data:
                break
            op = rnd.randrange(3)
            if op == 0:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            elif op == 1:
                del data[rnd.randrange(len(data)):]
            else:
                at = rnd.randrange(len(data))
                data[at:at + rnd.randrange(3)] = bytes(rnd.randrange(256) for _ in range(3))
        if not data:
            continue
        sink.sent.clear()
        proto.datagram_received(bytes(data), ("127.0.0.1", 9))
        for reply in sink.sent:
            answered += 1
            assert len(reply) <= 65507
            decode(reply)  # pyasn1 accepts it
    assert answered > 50 and proto.dropped > 1000
    for seed in seeds:  # and the unmutated requests are answered
        sink.sent.clear()
        proto.datagram_received(seed, ("127.0.0.1", 9))
        (reply,) = sink.sent
        assert decode(reply)[1] in (5, 6, 7) and decode(reply)[2] == 0


def test_v2c_only_agent_set_starts_and_stops(config, twin, snmp):
    """No v3 device: no pysnmp transport at all; start, serve, stop (twice), start again."""
    import asyncio

    from simulator.snmp_agents import AgentSet

    cfg = with_v2c(relocated(config, prefix="127.74"), {"pdu-B01-a"})

    async def run():
        agents = AgentSet(cfg, lambda: twin.snapshot, devices=["pdu-B01-a"])
        for _ in range(2):
            await agents.start()
            proc = await asyncio.create_subprocess_exec(
                "snmpget", "-v2c", "-c", COMMUNITY, "-On", "-Oq", "-t", "1", "-r", "0", target(cfg, "pdu-B01-a"),
                SYS_NAME, stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            assert out.decode().split() == [f".{SYS_NAME}", '"pdu-B01-a"']
            await agents.stop()
            await agents.stop()
            assert not agents.running and not agents._v2c

    asyncio.run(run())
