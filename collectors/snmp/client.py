"""The SNMP client of the poller: one UDP socket per address family and process, hand-rolled BER,
SNMPv2c and SNMPv3 (USM, ``usm.py``) on one code path.

Why not pysnmp: ~80 % of its client CPU was pyasn1 (~210 us per OID, and SNMPv3 ran at 0.69x
forked Net-SNMP per core). A GET / GETBULK is a small, fixed subset of BER: requests are built
from per-OID byte strings cached once, responses decoded by ``dcim/snmp_ber.py``'s strict,
bounds-checked parser; SNMPv3 adds HMAC (hashlib) and AES (``cryptography``) per message.

Robustness: replies are untrusted input, and the socket takes datagrams from anyone. Only a
fixed header is read first: a datagram that is not from the address we polled, with the request
id (v2c: and community) or msgID (v3) we sent there, is dropped and counted (``unsolicited``)
before anything else is read. A v3 reply must then prove itself (engine ID, user, HMAC, time
window: ``usm.verify``): one that does not is dropped and counted by reason (``rejected``), and the
request keeps waiting for the genuine answer. A datagram that does not parse is ``garbled``; a
genuine reply whose varbinds are malformed (bad length, truncation, an OID arc beyond 32 bits,
more varbinds than asked) fails its request with :class:`BerError` (``bad_replies``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import socket
import time

from collectors.snmp import usm
from collectors.snmp.snmp_types import V3, SnmpValue, V2c, value
from dcim import snmp_ber as ber

BerError = ber.BerError
RCVBUF_BYTES = 4 << 20
RESOLVE_TTL_S = 300.0
VERSION_V2C = ber.VERSION_V2C


class AgentRefused(Exception):
    """The agent answered with an SNMPv3 Report: ``reason`` says why (safe to log)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def encode_get(community: bytes, request_id: int, varbinds: list[bytes]) -> bytes:
    """A v2c GET; *varbinds* are pre-encoded ``SEQUENCE { OID, NULL }`` items."""
    return ber.encode_v2c(community, ber.GET_REQUEST, request_id, 0, 0, varbinds)


def decode_values(buf: bytes, start: int, end: int, max_count: int | None = None) -> list[tuple[bytes, SnmpValue]]:
    """[(encoded OID TLV, value)] of the varbind list ``buf[start:end]``."""
    return [(oid, value(tag, buf[s:e])) for oid, tag, s, e in ber.decode_varbinds(buf, start, end, False, max_count)]


def decode_response(buf: bytes) -> tuple[bytes, int, int, int, list[tuple[bytes, SnmpValue]]]:
    """(community, request id, error status, error index, [(encoded OID TLV, value)]) of a v2c
    Response-PDU."""
    version, community, pdu_tag, rid, status, index, start, end = ber.decode_header(bytes(buf), strict=False)
    if version != VERSION_V2C:
        raise BerError("not SNMPv2c")
    if pdu_tag != ber.GET_RESPONSE:
        raise BerError(f"not a Response-PDU (tag {pdu_tag:#x})")
    return community, rid, status, index, decode_values(buf, start, end)


def _named(vbs: list[tuple[bytes, SnmpValue]]) -> list[tuple[str, SnmpValue]]:
    """[(dotted OID, value)] from [(encoded OID TLV, value)] (a GETBULK's rows)."""
    out: list[tuple[str, SnmpValue]] = []
    for oid_tlv, val in vbs:
        _, s, e = ber.read_tlv(oid_tlv, 0, len(oid_tlv))
        out.append((ber.decode_oid(oid_tlv[s:e]), val))
    return out


def _version(buf: bytes) -> int:
    tag, pos, end = ber.read_tlv(buf, 0, len(buf))
    if tag != ber.SEQUENCE:
        raise BerError("not a SEQUENCE message")
    tag, s, e = ber.read_tlv(buf, pos, end)
    if tag != ber.INTEGER or e - s != 1:
        raise BerError("bad version")
    return buf[s]


def _report_oid(buf: bytes, start: int, end: int) -> str:
    """The first varbind's OID of a Report (which counter the agent bumped), '' if none."""
    vbs = ber.decode_varbinds(buf, start, end, strict=False, max_count=4)
    if not vbs:
        return ""
    oid_tlv = vbs[0][0]
    _, s, e = ber.read_tlv(oid_tlv, 0, len(oid_tlv))
    return ber.decode_oid(oid_tlv[s:e])


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: SnmpClient):
        self.client = client

    def datagram_received(self, data, addr):
        self.client._received(data, addr)

    def error_received(self, exc):  # ICMP port unreachable and the like: the timeout reports it
        pass


class _Pending:
    """A request waiting for its answer: who must send it, and how to check and decode it."""

    __slots__ = ("future", "address", "community", "max_varbinds", "named", "keys", "clock", "rid")

    def __init__(self, future, address, rid, max_varbinds, named, community=None, keys=None, clock=None):
        self.future = future
        self.address = address
        self.rid = rid
        self.community = community    # v2c; None for v3
        self.max_varbinds = max_varbinds
        self.named = named            # a GETBULK: rows as (dotted OID, value)
        self.keys = keys              # v3: None while discovering the engine
        self.clock = clock


class SnmpClient:
    """Every target of the process shares one socket per address family (bound on first use).

    *source_address*: the local IPv4 address the IPv4 socket binds to (None: every address, the
    OS picks the source per route). Binding to the management interface keeps datagrams sent to
    the host's other addresses away from the poller."""

    def __init__(self, source_address: str | None = None):
        self.source_address = source_address
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self._oids: dict[str, tuple[bytes, bytes]] = {}  # OID -> (OID TLV, varbind TLV)
        self._addresses: dict[tuple[str, int], tuple[int, tuple, float]] = {}
        self._clocks: dict[tuple, usm.EngineClock] = {}     # agent address -> its engine
        self._discovering: dict[tuple, asyncio.Future] = {}
        self._keys: dict[tuple, usm.UserKeys] = {}
        self._salt = usm.Salt()
        self.garbled = 0       # datagrams that do not parse as an SNMP reply
        self.unsolicited = 0   # not from the polled address / request id / community / msgID
        self.bad_replies = 0   # genuine replies to a pending request whose varbinds did not decode
        self.rejected: dict[str, int] = {}  # v3 replies that failed USM's checks, by reason

    @property
    def local_address(self) -> tuple[str, int] | None:
        """(address, port) the IPv4 socket is bound to, once it is."""
        transport = self._transports.get(socket.AF_INET)
        return transport.get_extra_info("sockname")[:2] if transport is not None else None

    # --- sockets and addresses -------------------------------------------------------------------

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.close()
            self._loop = loop
        transport = self._transports.get(family)
        if transport is None:
            local = (self.source_address or "0.0.0.0", 0) if family == socket.AF_INET else ("::", 0)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=local)
            self._transports[family] = transport
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Every target answers into this one socket: a roomy receive buffer (the kernel caps
                # it at net.core.rmem_max) so a burst of answers is not dropped while the loop is busy.
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
                except OSError:
                    pass
        return transport

    async def resolve(self, host: str, port: int) -> tuple[int, tuple]:
        """(family, address as recvfrom reports it). IP literals cost nothing; names are looked
        up and kept RESOLVE_TTL_S. OSError (socket.gaierror) when a name does not resolve."""
        key = (host, port)
        hit = self._addresses.get(key)
        now = time.monotonic()
        if hit is not None and hit[2] > now:
            return hit[0], hit[1]
        address: tuple  # (host, port) as recvfrom reports it
        try:
            ip = ipaddress.ip_address(host)
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            address, expires = (str(ip), port), float("inf")
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, sockaddr = infos[0]
            address, expires = tuple(sockaddr[:2]), now + RESOLVE_TTL_S
        if len(self._addresses) > 100_000:
            self._addresses.clear()
        self._addresses[key] = (family, address, expires)
        return family, address

    def _encoded(self, oid: str) -> tuple[bytes, bytes]:
        enc = self._oids.get(oid)
        if enc is None:
            if len(self._oids) > 200_000:
                self._oids.clear()
            tlv = ber.encode_oid(oid)
            enc = self._oids[oid] = (tlv, ber.tlv(ber.SEQUENCE, tlv + ber.NULL_TLV))
        return enc

    # --- receiving -------------------------------------------------------------------------------

    def _received(self, data: bytes, addr) -> None:
        # Header first: source, id (and community) are checked before anything an attacker chose
        # is decoded, so a stranger's datagram costs a few microseconds whatever it holds.
        try:
            if _version(data) == usm.VERSION_V3:
                return self._received_v3(data, addr)
            _, community, pdu_tag, rid, status, index, start, end = ber.decode_header(data, strict=False)
        except BerError:
            self.garbled += 1
            return
        entry = self._pending.get(rid)
        if entry is None or addr[:2] != entry.address or community != entry.community:
            self.unsolicited += 1  # a late answer to a request we gave up on, or not from its agent
            return
        if pdu_tag != ber.GET_RESPONSE:
            self.garbled += 1  # from the agent's address, but not a response (an echo, a trap)
            return
        self._answer(entry, data, status, index, start, end)

    def _answer(self, entry: _Pending, buf: bytes, status: int, index: int, start: int, end: int) -> None:
        if entry.future.done():
            return  # a duplicate (our retry was answered twice)
        try:
            vbs = decode_values(buf, start, end, entry.max_varbinds)
            entry.future.set_result((status, index, _named(vbs) if entry.named else vbs))
        except BerError as exc:
            self.bad_replies += 1
            entry.future.set_exception(exc)

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def _received_v3(self, data: bytes, addr) -> None:
        msg_id = usm.message_id(data)
        entry = self._pending.get(msg_id)
        if entry is None or entry.community is not None or addr[:2] != entry.address:
            self.unsolicited += 1
            return
        if entry.future.done():
            return
        reply = usm.parse(data)  # BerError: garbled
        if entry.keys is None:   # engine discovery: the answer is an unauthenticated Report
            if reply.data_tag != ber.SEQUENCE or not 5 <= len(reply.engine_id) <= 32:
                return self._reject("bad discovery report")
            pdu_tag, *_ = usm.open_scoped_pdu(data, reply.data_start, reply.data_end)
            if pdu_tag != usm.REPORT:
                return self._reject("bad discovery report")
            entry.future.set_result(reply)
            return
        if not reply.flags & usm.FLAG_AUTH and reply.data_tag == ber.SEQUENCE:
            # An agent reports what it cannot authenticate (unknown user or engine ID, wrong
            # digest) in the clear, from its current engine (a replaced device has a new one).
            # It can only fail the request or start a rediscovery, and it had to echo our msgID.
            pdu_tag, rid, _, _, start, end = usm.open_scoped_pdu(data, reply.data_start, reply.data_end)
            if pdu_tag == usm.REPORT:
                entry.future.set_result(("report", _report_oid(data, start, end), False))
                return
        try:
            buf, s, e = usm.verify(data, reply, entry.keys, entry.clock, time.monotonic())
        except usm.Rejected as exc:
            return self._reject(exc.reason)
        pdu_tag, rid, status, index, start, end = usm.open_scoped_pdu(buf, s, e)
        if pdu_tag == usm.REPORT:
            entry.future.set_result(("report", _report_oid(buf, start, end), True))
            return
        if reply.flags & 0x03 != entry.keys.flags:
            return self._reject("security level lower than asked")
        if pdu_tag != ber.GET_RESPONSE or rid != entry.rid:
            return self._reject("wrong request id")
        self._answer(entry, buf, status, index, start, end)

    # --- exchanges -------------------------------------------------------------------------------

    async def _exchange(self, family: int, entry: _Pending, msg_id: int, packet: bytes, timeout_s: float,
                        retries: int):
        """Send *packet* up to retries + 1 times; the answer, or TimeoutError, or BerError."""
        transport = await self._transport(family)
        self._pending[msg_id] = entry
        try:
            for _ in range(retries + 1):
                transport.sendto(packet, entry.address)
                try:
                    return await asyncio.wait_for(asyncio.shield(entry.future), timeout_s)
                except TimeoutError:
                    continue
            raise TimeoutError
        finally:
            self._pending.pop(msg_id, None)

    async def request(self, host: str, port: int, auth: V2c | V3, pdu_tag: int, field1: int, field2: int,
                      varbinds: list[bytes], timeout_s: float, retries: int, max_varbinds: int,
                      named: bool = False) -> tuple[int, int, list]:
        """One request PDU, v2c or v3 by *auth*: (error status, error index, varbinds).
        Raises TimeoutError, BerError, AgentRefused (v3 Report), OSError."""
        family, address = await self.resolve(host, port)
        if isinstance(auth, V2c):
            rid = next(self._ids) & 0x7FFFFFFF
            community = auth.community.encode()
            packet = ber.encode_v2c(community, pdu_tag, rid, field1, field2, varbinds)
            entry = _Pending(self._new_future(), address, rid, max_varbinds, named, community=community)
            return await self._exchange(family, entry, rid, packet, timeout_s, retries)
        return await self._request_v3(family, address, auth, pdu_tag, field1, field2, varbinds, timeout_s,
                                      retries, max_varbinds, named)

    def _new_future(self) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    async def _request_v3(self, family, address, auth: V3, pdu_tag, field1, field2, varbinds, timeout_s,
                          retries, max_varbinds, named):
        resynced = False
        for _ in range(3):
            clock = await self._clock(family, address, timeout_s, retries)
            keys = self._user_keys(auth, clock.engine_id)
            rid = next(self._ids) & 0x7FFFFFFF
            pdu = ber.encode_pdu(pdu_tag, rid, field1, field2, varbinds)
            scoped = usm.scoped_pdu(clock.engine_id, auth.context.encode(), pdu)
            packet = usm.encode_message(rid, keys.flags | usm.FLAG_REPORTABLE, clock.engine_id, clock.boots,
                                        clock.now(time.monotonic()), scoped, keys, self._salt.next())
            entry = _Pending(self._new_future(), address, rid, max_varbinds, named, keys=keys, clock=clock)
            answer = await self._exchange(family, entry, rid, packet, timeout_s, retries)
            if answer[0] != "report":
                return answer
            _, oid, authenticated = answer
            if oid == usm.NOT_IN_TIME_WINDOW and authenticated and not resynced:
                resynced = True   # verify() took the agent's boots/time from the Report: resend
                continue
            if oid == usm.UNKNOWN_ENGINE_ID and not resynced:
                resynced = True   # the agent's engine changed (a replaced device): discover again
                self._clocks.pop(address, None)
                continue
            raise AgentRefused(usm.REPORT_REASONS.get(oid, f"v3: agent reported {oid or 'an error'}"))
        raise AgentRefused(usm.REPORT_REASONS[usm.NOT_IN_TIME_WINDOW])

    async def _clock(self, family: int, address: tuple, timeout_s: float, retries: int) -> usm.EngineClock:
        """The agent's engine (ID, boots, time), discovered once (RFC 3414 §4) and shared by every
        request to it; concurrent first requests wait for one discovery."""
        clock = self._clocks.get(address)
        if clock is not None:
            return clock
        waiting = self._discovering.get(address)
        if waiting is not None:
            return await asyncio.shield(waiting)
        done = self._discovering[address] = self._new_future()
        try:
            rid = next(self._ids) & 0x7FFFFFFF
            scoped = usm.scoped_pdu(b"", b"", ber.encode_pdu(ber.GET_REQUEST, rid, 0, 0, []))
            packet = usm.encode_message(rid, usm.FLAG_REPORTABLE, b"", 0, 0, scoped)
            entry = _Pending(self._new_future(), address, rid, 0, False)
            reply = await self._exchange(family, entry, rid, packet, timeout_s, retries)
            clock = usm.EngineClock(reply.engine_id, reply.boots, reply.engine_time, time.monotonic())
            self._clocks[address] = clock
            done.set_result(clock)
            return clock
        except asyncio.CancelledError:
            done.cancel()
            raise
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._discovering.pop(address, None)

    def _user_keys(self, auth: V3, engine_id: bytes) -> usm.UserKeys:
        key = (auth, engine_id)
        keys = self._keys.get(key)
        if keys is None:
            if len(self._keys) > 50_000:
                self._keys.clear()
            keys = self._keys[key] = usm.user_keys(auth.user, auth.auth_protocol, auth.auth_key,
                                                   auth.priv_protocol, auth.priv_key, engine_id)
        return keys

    # --- GET and GETBULK -------------------------------------------------------------------------

    async def get(self, host: str, port: int, auth: V2c | V3, oids: list[str], timeout_s: float,
                  retries: int) -> tuple[int, int, list[SnmpValue]]:
        """One GET: (error status, error index, values in request order). BerError if the reply's
        OIDs are not the ones asked."""
        encoded = [self._encoded(o) for o in oids]
        status, index, vbs = await self.request(host, port, auth, ber.GET_REQUEST, 0, 0, [vb for _, vb in encoded],
                                                timeout_s, retries, len(encoded))
        if status:
            return status, index, []
        if len(vbs) != len(encoded) or any(got != want for (got, _), (want, _) in zip(vbs, encoded)):
            raise BerError("response varbinds do not match the request")
        return 0, 0, [v for _, v in vbs]

    async def bulk(self, host: str, port: int, auth: V2c | V3, oid: str, max_repetitions: int,
                   timeout_s: float, retries: int) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        """One GETBULK of a single repeater (non-repeaters 0): (error status, error index,
        [(dotted OID, value)])."""
        _, vb = self._encoded(oid)
        repetitions = max(1, max_repetitions)
        status, index, rows = await self.request(host, port, auth, ber.GET_BULK_REQUEST, 0, repetitions, [vb],
                                                 timeout_s, retries, repetitions, named=True)
        return (status, index, []) if status else (0, 0, rows)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        for entry in self._pending.values():
            if not entry.future.done():
                entry.future.cancel()
        self._pending.clear()
