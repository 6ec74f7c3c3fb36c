"""The door in front of pysnmp's UDP socket: a datagram is dropped, counted, before pysnmp decodes it
unless it answers a request this poller sent.

Why: pysnmp 7 decodes a whole message with pyasn1 before it matches it to a request. Its socket
takes datagrams from anyone, and one 65 KB SNMPv2c reply of 1,968 small varbinds cost ~0.2 s CPU
there; five a second took the event loop and healthy SNMPv3 polls were lost. The lean v2c client
(fastv2c.py) reads only a fixed header before matching; this module does the same for the
datagrams that reach pysnmp (SNMPv3 and v2c polls that go through pysnmp).

How: the poller's transport reports every datagram it sends (:meth:`ReplyFilter.sent`): the
destination, the SNMP version, the message id (v3 msgID in msgGlobalData; v1/v2c request-id, which
pysnmp sets to its msgID) and, for v1/v2c, the community. A datagram received is passed on only if
it comes from an address that request went to, is an SNMP message of the same version carrying an
id sent there within the request's wait (timeout x (retries + 1), plus a grace), and, for v1/v2c,
is a Response-PDU with the same community. Reading that costs a few TLV headers whatever the
datagram holds. We keep our own record of what was sent rather than reading pysnmp's private
message cache (``Cache.__msgIdIndex``), which no public API exposes.

Not checked: the datagram's size (any UDP datagram, up to 65,507 bytes, is an acceptable size for
a reply), and anything past the header: a reply from the right address with the right id still
goes to pysnmp, which authenticates (v3) and decodes it.
"""

from __future__ import annotations

import time

from pysnmp.carrier.asyncio.dgram.udp import UdpAsyncioTransport
from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

from dcim import snmp_ber as ber

VERSION_V1, VERSION_V2C, VERSION_V3 = 0, 1, 3
# A reply may land a little after pysnmp's own timeout fires (its timer ticks every ~0.5 s).
GRACE_S = 2.0
# Requests remembered per target, whatever the clock does (a target is asked a few at a time).
MAX_OUTSTANDING_PER_TARGET = 4096
DEFAULT_WAIT_S = 10.0  # a target nobody registered (cannot happen through SnmpPoller)


def message_id(datagram: bytes) -> tuple[int, int, bytes | None, int | None]:
    """(version, message id, community, PDU tag) from an SNMP message's fixed header, reading
    nothing past it. v3: the msgID of msgGlobalData, community and PDU tag None (the PDU may be
    encrypted). v1/v2c: the PDU's request-id. Raises BerError for anything else."""
    buf = bytes(datagram)
    tag, pos, end = ber.read_tlv(buf, 0, len(buf))
    if tag != ber.SEQUENCE:
        raise ber.BerError("not a SEQUENCE message")
    tag, s, e = ber.read_tlv(buf, pos, end)
    if tag != ber.INTEGER or e - s != 1:
        raise ber.BerError("bad version")
    version = buf[s]
    if version in (VERSION_V1, VERSION_V2C):
        version, community, pdu_tag, request_id, _, _, _, _ = ber.decode_header(buf, strict=False)
        return version, request_id, community, pdu_tag
    if version != VERSION_V3:
        raise ber.BerError(f"not SNMP v1, v2c or v3 (version {version})")
    tag, gpos, gend = ber.read_tlv(buf, e, end)  # msgGlobalData
    if tag != ber.SEQUENCE:
        raise ber.BerError("no msgGlobalData")
    tag, s, e = ber.read_tlv(buf, gpos, gend)
    if tag != ber.INTEGER or not 1 <= e - s <= 5:  # msgID is INTEGER (0..2147483647)
        raise ber.BerError("bad msgID")
    return VERSION_V3, int.from_bytes(buf[s:e], "big", signed=True), None, None


def _key(address) -> tuple[str, int]:
    return str(address[0]), int(address[1])


class ReplyFilter:
    """What one poller's pysnmp transport sent, and whether a datagram received answers it.

    ``unsolicited``: datagrams dropped unread because no request went to their source address, or
    their id (or community) is not one sent there; ``garbled``: datagrams from a polled address
    that are not an SNMP reply of the version it was asked in. Same meaning as fastv2c's counters,
    which SnmpPoller.stats() adds these to."""

    def __init__(self) -> None:
        self.unsolicited = 0
        self.garbled = 0
        self._wait_s: dict[tuple[str, int], float] = {}
        # target -> {(version, id): (expires at, monotonic s; community or None)}
        self._sent: dict[tuple[str, int], dict[tuple[int, int], tuple[float, bytes | None]]] = {}

    def expect(self, address, wait_s: float) -> None:
        """The poller polls *address* (ip, port) and waits up to *wait_s* for each request."""
        key = _key(address)
        self._wait_s[key] = max(wait_s, self._wait_s.get(key, 0.0))

    def sent(self, datagram: bytes, address) -> None:
        """A request is going to *address*: its id becomes one that address may answer."""
        try:
            version, msg_id, community, _ = message_id(datagram)
        except ber.BerError:
            return  # pysnmp encoded it; cannot happen, and then no answer to it is accepted
        key = _key(address)
        now = time.monotonic()
        outstanding = self._sent.setdefault(key, {})
        for old in [k for k, (expires, _) in outstanding.items() if expires < now]:
            del outstanding[old]
        if len(outstanding) >= MAX_OUTSTANDING_PER_TARGET:
            del outstanding[next(iter(outstanding))]  # the oldest
        outstanding[(version, msg_id)] = (now + self._wait_s.get(key, DEFAULT_WAIT_S) + GRACE_S, community)

    def accept(self, datagram: bytes, address) -> bool:
        """True if *datagram* may answer a request sent to *address*; else counted and False."""
        outstanding = self._sent.get(_key(address))
        if not outstanding:
            self.unsolicited += 1  # nobody here polled that address
            return False
        try:
            version, msg_id, community, pdu_tag = message_id(datagram)
        except ber.BerError:
            self.garbled += 1
            return False
        if version != VERSION_V3 and pdu_tag != ber.GET_RESPONSE:
            self.garbled += 1  # a v1/v2c request or trap is not an answer
            return False
        entry = outstanding.get((version, msg_id))
        if entry is None:
            # not an id sent there, or sent in another version: a v2c reply to a v3 poll is
            # garbage from the agent's address, counted as unsolicited like an unknown id
            self.unsolicited += 1
            return False
        expires, sent_community = entry
        if expires < time.monotonic() or community != sent_community:
            self.unsolicited += 1
            return False
        return True


class FilteredUdpTransport(UdpAsyncioTransport):
    """pysnmp's asyncio UDP transport, with :class:`ReplyFilter` between the socket and pysnmp."""

    def __init__(self, reply_filter: ReplyFilter, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reply_filter = reply_filter

    def send_message(self, outgoingMessage, transportAddress) -> None:  # noqa: N803 (pysnmp's names)
        self.reply_filter.sent(outgoingMessage, transportAddress)
        super().send_message(outgoingMessage, transportAddress)

    def datagram_received(self, datagram, transportAddress) -> None:  # noqa: N803
        if self.reply_filter.accept(datagram, transportAddress):
            super().datagram_received(datagram, transportAddress)

    @property
    def local_address(self) -> tuple[str, int] | None:
        """(address, port) of the socket, once asyncio has opened it and sent from it. Asked of the
        socket: unbound at creation, it takes its port on the first send, after asyncio noted
        its sockname."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        return sock.getsockname()[:2] if sock is not None else None


class FilteredUdpTransportTarget(UdpTransportTarget):
    """A UdpTransportTarget whose transport (pysnmp opens one per engine, through the first
    target it configures) is a :class:`FilteredUdpTransport` sharing *reply_filter*."""

    PROTO_TRANSPORT = FilteredUdpTransport

    def __init__(self, *args, reply_filter: ReplyFilter, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reply_filter = reply_filter

    def open_client_mode(self):
        self.transport = FilteredUdpTransport(self.reply_filter).open_client_mode(self.iface)
        return self.transport
