"""BER codec for SNMP messages: the small, fixed subset of ASN.1 that v2c GET / GETNEXT /
GETBULK requests and their responses use (and the PDUs inside SNMPv3's scopedPDU). Shared by the
collectors' SNMP client (``collectors/snmp/client.py``, ``usm.py``) and the facility twin's v2c
agents (``simulator/snmp_agents.py``), both of which found pyasn1 to be most of their CPU.

Values on the wire are handled as ``(tag, content bytes)`` or as ready-made TLV byte strings;
this module knows nothing about MIBs, sockets or pysnmp.

Robustness: decoding treats its input as untrusted. Any malformed length, unexpected tag or
truncation raises :class:`BerError` (a ``ValueError``), never ``IndexError`` or anything else.
Lengths are definite only (BER's indefinite form is not used by SNMP) and at most 4 octets.
Decoding is linear in the input: an OID's arcs are 32-bit unsigned (RFC 2578 §7.1.3), so a
sub-identifier is at most 5 octets, and an OID has at most 128 arcs (RFC 2578 §3.5); anything
longer is refused before any arithmetic on it (one 65 KB sub-identifier used to cost 0.3-0.5 s of
CPU, quadratic in its length, and a 4,300-digit arc could not even be turned into text).

A client checks a reply's request id and source before it decodes the varbinds:
:func:`decode_header` reads only the fixed header, :func:`decode_varbinds` the rest.
"""

from __future__ import annotations


class BerError(ValueError):
    """A malformed, truncated or unexpected BER encoding."""


# --- tags ----------------------------------------------------------------------------------------

INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42  # also Unsigned32
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

GET_REQUEST = 0xA0
GET_NEXT_REQUEST = 0xA1
GET_RESPONSE = 0xA2
SET_REQUEST = 0xA3
GET_BULK_REQUEST = 0xA5

UNSIGNED_TAGS = frozenset((COUNTER32, GAUGE32, TIMETICKS, COUNTER64))
EXCEPTION_TAGS = frozenset((NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW))

VERSION_V2C = 1  # msgVersion on the wire for SNMPv2c

# OBJECT IDENTIFIER bounds (RFC 2578 §3.5, §7.1.3): arcs are 32-bit unsigned, at most 128 of them.
MAX_OID_ARC = 2**32 - 1
MAX_OID_ARCS = 128
MAX_SUBID_OCTETS = 5  # 7 bits per octet: 5 octets hold 35 bits, enough for any 32-bit arc
# The first sub-identifier encodes two arcs, so a valid OID body never exceeds this.
MAX_OID_OCTETS = (MAX_OID_ARCS - 1) * MAX_SUBID_OCTETS

# error-status values (RFC 3416)
NO_ERROR, TOO_BIG, NO_SUCH_NAME, BAD_VALUE, READ_ONLY, GEN_ERR = 0, 1, 2, 3, 4, 5

# Ready-made value TLVs.
NULL_TLV = b"\x05\x00"
NO_SUCH_OBJECT_TLV = b"\x80\x00"
NO_SUCH_INSTANCE_TLV = b"\x81\x00"
END_OF_MIB_VIEW_TLV = b"\x82\x00"


# --- encoding ------------------------------------------------------------------------------------


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    return bytes((tag,)) + encode_length(n) + body


def integer_body(value: int) -> bytes:
    """Two's-complement content octets, minimal length (also right for unsigned types: a value with
    the top bit set gets a leading zero octet)."""
    return value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)


def encode_integer(value: int) -> bytes:
    return tlv(INTEGER, integer_body(value))



def encode_octets(value: bytes | str) -> bytes:
    return tlv(OCTET_STRING, value.encode() if isinstance(value, str) else value)



def oid_parts(oid: str | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(oid, str):
        return tuple(int(p) for p in oid.strip(".").split("."))
    return tuple(oid)


def oid_body(oid: str | tuple[int, ...]) -> bytes:
    """Content octets of an OBJECT IDENTIFIER."""
    parts = oid_parts(oid)
    if len(parts) < 2 or parts[0] > 2 or (parts[0] < 2 and parts[1] > 39) or min(parts) < 0:
        raise ValueError(f"bad OID {oid!r}")
    if len(parts) > MAX_OID_ARCS or max(parts) > MAX_OID_ARC or parts[0] * 40 + parts[1] > MAX_OID_ARC:
        raise ValueError(f"bad OID: more than {MAX_OID_ARCS} arcs or an arc above 2^32-1")
    out = bytearray()
    for n in (parts[0] * 40 + parts[1], *parts[2:]):
        if n < 0x80:
            out.append(n)
            continue
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def encode_oid(oid: str | tuple[int, ...]) -> bytes:
    return tlv(OBJECT_IDENTIFIER, oid_body(oid))


def varbind(oid_tlv: bytes, value_tlv: bytes) -> bytes:
    return tlv(SEQUENCE, oid_tlv + value_tlv)


def encode_pdu(pdu_tag: int, request_id: int, field1: int, field2: int, varbinds: list[bytes] | bytes) -> bytes:
    """A PDU. *field1*/*field2* are error-status/error-index, or non-repeaters/max-repetitions
    for GETBULK. *varbinds* are encoded ``SEQUENCE { OID, value }`` items (or their concatenation)."""
    body = varbinds if isinstance(varbinds, bytes) else b"".join(varbinds)
    return tlv(pdu_tag, encode_integer(request_id) + encode_integer(field1) + encode_integer(field2)
               + tlv(SEQUENCE, body))


def encode_message(community: bytes, pdu: bytes, version: int = VERSION_V2C) -> bytes:
    return tlv(SEQUENCE, encode_integer(version) + tlv(OCTET_STRING, community) + pdu)


def encode_v2c(community: bytes, pdu_tag: int, request_id: int, field1: int, field2: int,
               varbinds: list[bytes] | bytes) -> bytes:
    return encode_message(community, encode_pdu(pdu_tag, request_id, field1, field2, varbinds))


def message_overhead(community: bytes, request_id: int, field1: int, field2: int, varbinds_len: int) -> int:
    """Bytes of a v2c message whose varbind list content is *varbinds_len* bytes long (to size
    responses against a datagram limit without encoding them)."""
    pdu_body = (len(encode_integer(request_id)) + len(encode_integer(field1)) + len(encode_integer(field2))
                + 1 + len(encode_length(varbinds_len)) + varbinds_len)
    pdu = 1 + len(encode_length(pdu_body)) + pdu_body
    msg_body = 3 + 1 + len(encode_length(len(community))) + len(community) + pdu
    return 1 + len(encode_length(msg_body)) + msg_body


# --- decoding ------------------------------------------------------------------------------------


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at *pos*, which must end by *end*.
    Only single-octet tags (all SNMP uses)."""
    if pos + 2 > end:
        raise BerError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-octet tag")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise BerError("bad length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > end:
        raise BerError("truncated value")
    return tag, pos, pos + n



def decode_oid_parts(b: bytes) -> tuple[int, ...]:
    """The arcs of an OID's content octets. Linear in ``len(b)``, and ``len(b)`` is bounded first:
    a sub-identifier of more than 5 octets, an arc above 2^32-1 or more than 128 arcs is a BerError."""
    if not b:
        raise BerError("empty OID")
    if len(b) > MAX_OID_OCTETS:
        raise BerError(f"OID of {len(b)} octets: longer than {MAX_OID_ARCS} arcs can be")
    if b[-1] & 0x80:
        raise BerError("OID ends inside a sub-identifier")
    parts, n, octets = [], 0, 0
    for byte in b:
        n = (n << 7) | (byte & 0x7F)
        octets += 1
        if byte & 0x80:
            if octets == MAX_SUBID_OCTETS:
                raise BerError(f"OID sub-identifier longer than {MAX_SUBID_OCTETS} octets (arcs are 32-bit)")
            continue
        if n > MAX_OID_ARC:
            raise BerError("OID arc above 2^32-1 (arcs are 32-bit)")
        parts.append(n)
        n, octets = 0, 0
    if len(parts) >= MAX_OID_ARCS:  # the first sub-identifier is two arcs
        raise BerError(f"OID of more than {MAX_OID_ARCS} arcs")
    first = parts[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return head + tuple(parts[1:])


def decode_oid(b: bytes) -> str:
    return ".".join(map(str, decode_oid_parts(b)))


def decode_header(buf: bytes, strict: bool = True) -> tuple[int, bytes, int, int, int, int, int, int]:
    """The fixed part of a v1/v2c message, without touching the varbinds: (version, community,
    PDU tag, request id, field1, field2, start, end of the varbind list's content). Cheap and
    bounded whatever *buf* holds, so a client can drop a reply it did not ask for before decoding
    anything an attacker chose. *strict* as :func:`decode_message`.
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise BerError("not bytes")
    buf = bytes(buf)
    tag, pos, end = read_tlv(buf, 0, len(buf))
    if tag != SEQUENCE or (strict and end != len(buf)):
        raise BerError("not a SEQUENCE message")
    tag, s, e = read_tlv(buf, pos, end)
    if tag != INTEGER or e - s != 1:
        raise BerError("bad version")
    version = buf[s]
    tag, s, e = read_tlv(buf, e, end)
    if tag != OCTET_STRING:
        raise BerError("no community")
    community = buf[s:e]
    pdu_tag, rid, field1, field2, pos, vend = decode_pdu(buf, e, end, strict)
    return version, community, pdu_tag, rid, field1, field2, pos, vend


def decode_pdu(buf: bytes, pos: int, end: int, strict: bool = True) -> tuple[int, int, int, int, int, int]:
    """The PDU at *pos* (inside a v1/v2c message or an SNMPv3 scopedPDU), which must end by
    *end*: (PDU tag, request id, field1, field2, start, end of the varbind list's content)."""
    pdu_tag, pos, pend = read_tlv(buf, pos, end)
    if pdu_tag & 0xE0 != 0xA0 or (strict and pend != end):
        raise BerError(f"not a PDU (tag {pdu_tag:#x})")
    fields = []
    for _ in range(3):
        tag, s, e = read_tlv(buf, pos, pend)
        # 1-5 octets hold any 32-bit request id or error field. Not strict still refuses more
        # than 9: int.from_bytes of a 60 KB "integer" is wasted work on a hostile datagram.
        if tag != INTEGER or (strict and (s == e or e - s > 5)) or e - s > 9:
            raise BerError("bad PDU header")
        fields.append(int.from_bytes(buf[s:e], "big", signed=True))
        pos = e
    tag, pos, vend = read_tlv(buf, pos, pend)
    if tag != SEQUENCE or (strict and vend != pend):
        raise BerError("no varbind list")
    return pdu_tag, fields[0], fields[1], fields[2], pos, vend


def decode_varbinds(buf: bytes, pos: int, vend: int, strict: bool = True, max_count: int | None = None
                    ) -> list[tuple[bytes, int, int, int]]:
    """The varbind list content ``buf[pos:vend]`` (offsets from :func:`decode_header`) as
    ``(encoded OID TLV, value tag, value start, value end)``. *max_count*: more varbinds than that
    (more than were asked for) is a BerError, so a reply costs what the request asked, not what
    the datagram holds."""
    out: list[tuple[bytes, int, int, int]] = []
    while pos < vend:
        if max_count is not None and len(out) >= max_count:
            raise BerError(f"more than the {max_count} varbinds asked for")
        tag, s, e = read_tlv(buf, pos, vend)
        if tag != SEQUENCE:
            raise BerError("bad varbind")
        otag, os_, oe = read_tlv(buf, s, e)
        if otag != OBJECT_IDENTIFIER or (strict and os_ == oe):
            raise BerError("varbind without OID")
        vtag, vs, ve = read_tlv(buf, oe, e)
        if strict and ve != e:
            raise BerError("trailing bytes in varbind")
        out.append((buf[s:oe], vtag, vs, ve))
        pos = e
    return out


def decode_message(buf: bytes, strict: bool = True
                   ) -> tuple[int, bytes, int, int, int, int, list[tuple[bytes, int, int, int]]]:
    """Any v1/v2c message: (version, community, PDU tag, request id, field1, field2, varbinds)
    with varbinds as ``(encoded OID TLV, value tag, value start, value end)`` (offsets into *buf*).

    *strict* (what an agent wants of requests): the message fills *buf* exactly, the PDU fills the
    message, header integers are 1-5 octets, every varbind is exactly ``SEQUENCE { OID, one TLV }``
    with a non-empty OID. Not strict (what a client has always accepted of responses): trailing
    bytes after those structures are ignored.
    """
    buf = bytes(buf) if isinstance(buf, (bytearray, memoryview)) else buf
    version, community, pdu_tag, rid, field1, field2, pos, vend = decode_header(buf, strict)
    return version, community, pdu_tag, rid, field1, field2, decode_varbinds(buf, pos, vend, strict)
