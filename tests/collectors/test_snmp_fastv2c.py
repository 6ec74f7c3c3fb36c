"""The SNMP client's v2c side: its BER cross-checked against pyasn1/pysnmp, malformed input
rejected, and the same values as pysnmp's own client reads from a real recording."""

from __future__ import annotations

import asyncio
import random

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

from collectors.snmp import client as fastv2c
from collectors.snmp.engine import Endpoint, Missing, SnmpPoller, V2c
from dcim import snmp_ber as ber


def _response(varbinds, request_id=4242, community="pub"):
    pdu = v2c.GetResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, varbinds)
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


@pytest.mark.parametrize("oid", ["1.3.6.1.2.1.1.2.0", "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.24", "2.999.3",
                                 "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.8", "1.3.6.1.4.1.4294967295.128.16384"])
def test_oid_encoding_matches_pyasn1(oid):
    assert ber.encode_oid(oid) == encoder.encode(v2c.ObjectIdentifier(oid))


def test_request_is_a_valid_v2c_get_for_pyasn1():
    vbs = [ber.tlv(0x30, ber.encode_oid(f"1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.{i}") + b"\x05\x00")
           for i in range(1, 61)]   # > 127 bytes: long-form lengths
    msg, rest = decoder.decode(fastv2c.encode_get(b"community-x", 123456789, vbs), asn1Spec=v2c.Message())
    assert not rest
    pdu = v2c.apiMessage.get_pdu(msg)
    assert str(v2c.apiMessage.get_community(msg)) == "community-x"
    assert int(v2c.apiPDU.get_request_id(pdu)) == 123456789
    got = v2c.apiPDU.get_varbinds(pdu)
    assert [str(o) for o, _ in got] == [f"1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.{i}" for i in range(1, 61)]


def test_response_values_of_every_type():
    raw = _response([
        ("1.3.6.1.2.1.1.2.0", v2c.ObjectIdentifier("1.3.6.1.4.1.318.1.3.4.6")),
        ("1.3.6.1.2.1.1.3.0", v2c.TimeTicks(5)),
        ("1.3.6.1.9.1", v2c.Integer(-410)), ("1.3.6.1.9.2", v2c.Integer(2 ** 31 - 1)),
        ("1.3.6.1.9.3", v2c.Counter64(2 ** 64 - 1)), ("1.3.6.1.9.4", v2c.Gauge32(2 ** 32 - 1)),
        ("1.3.6.1.9.5", v2c.Counter32(0)), ("1.3.6.1.9.6", v2c.OctetString("abc")),
        ("1.3.6.1.9.7", v2c.NoSuchInstance()), ("1.3.6.1.9.8", v2c.NoSuchObject()),
        ("1.3.6.1.9.9", v2c.Opaque(b"x")), ("1.3.6.1.9.10", v2c.IpAddress("10.0.0.1")),
    ])
    community, rid, status, index, vbs = fastv2c.decode_response(raw)
    assert (community, rid, status, index) == (b"pub", 4242, 0, 0)
    values = [v for _, v in vbs]
    assert values[:8] == ["1.3.6.1.4.1.318.1.3.4.6", 5, -410, 2 ** 31 - 1, 2 ** 64 - 1, 2 ** 32 - 1, 0, "abc"]
    assert values[8].why == "noSuchInstance" and values[9].why == "noSuchObject"
    assert all(isinstance(v, Missing) and v.why.startswith("unexpected type") for v in values[10:])


def test_malformed_responses_raise_ber_error_only():
    good = _response([(f"1.3.6.1.9.{i}", v2c.Integer(i * 1000)) for i in range(40)])
    rnd = random.Random(7)
    cases = [good[:n] for n in range(len(good))]                      # every truncation
    for _ in range(400):                                               # random byte flips
        b = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        cases.append(bytes(b))
    cases += [b"", b"\x30\x84\xff\xff\xff\xff", b"\x30\x80", bytes(rnd.randrange(256) for _ in range(300))]
    for case in cases:
        try:
            fastv2c.decode_response(case)
        except fastv2c.BerError:
            pass


def test_client_reads_what_pysnmp_reads_on_a_real_recording(snmpsim_agent):
    """Every OID of the recording's system and PowerNet identity subtrees, GET by our client and
    by pysnmp's (an independent BER decoder): the same values, type for type."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    from collectors.snmp.engine import Oid

    ep = Endpoint(snmpsim_agent.host, snmpsim_agent.port, V2c("UPS/apc-8641"))

    async def ours():
        poller = SnmpPoller()
        try:
            rows = await poller.walk(ep, "1.3.6.1.4.1.318.1.1.1.1")   # upsIdent
            rows += await poller.walk(ep, "1.3.6.1.2.1.1")
            oids = [o for o, _ in rows if o != "1.3.6.1.2.1.1.3.0"]     # sysUpTime moves
            return oids, await poller.get(ep, oids)
        finally:
            poller.close()

    async def theirs(oids):
        engine = SnmpEngine()
        target = await UdpTransportTarget.create((ep.host, ep.port))
        err, status, _, vbs = await get_cmd(engine, CommunityData("UPS/apc-8641"), target, ContextData(),
                                            *[ObjectType(ObjectIdentity(o)) for o in oids], lookupMib=False)
        engine.close_dispatcher()
        assert not err and not status
        out = {}
        for name, val in vbs:
            kind = type(val).__name__
            out[str(name)] = (Oid(str(val)) if kind == "ObjectIdentifier" else
                              bytes(val).decode("utf-8", "replace") if kind == "OctetString" else int(val))
        return out

    oids, got = asyncio.run(ours())
    want = asyncio.run(theirs(oids))
    assert len(oids) > 10 and got == want
    assert [type(got[o]) for o in oids] == [type(want[o]) for o in oids]
