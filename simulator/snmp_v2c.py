"""The SNMPv2c fast path: a plain asyncio datagram protocol per device, requests decoded and
responses encoded with ``dcim.snmp_ber`` (pysnmp's pyasn1 handling cost ~175 µs per OID)."""

from __future__ import annotations

import asyncio
import bisect
import logging
from typing import TYPE_CHECKING

from dcim import snmp_ber as ber
from simulator.snmp_device import UPTIME, DeviceAgent, encoded_oid, uptime_ticks

if TYPE_CHECKING:
    from simulator.snmp_agents import AgentSet

# Logged under the agents' name, whichever part of them logs (operators filter on it).
log = logging.getLogger("simulator.snmp_agents")


# Largest response: the most a UDP datagram over IPv4 carries. GETBULK answers are cut to fit (fewer
# varbinds, as RFC 3416 and Net-SNMP do); a GET / GETNEXT answer that does not fit is tooBig.
MAX_V2C_MESSAGE = 65507
_REQUEST_OIDS: dict[bytes, tuple[int, ...]] = {}  # request OID TLV -> tuple (collectors repeat theirs)


def _request_oid(tlv: bytes) -> tuple[int, ...]:
    oid = _REQUEST_OIDS.get(tlv)
    if oid is None:
        oid = ber.decode_oid_parts(tlv[2:] if tlv[1] < 0x80 else tlv[2 + (tlv[1] & 0x7F):])
        if len(_REQUEST_OIDS) > 100_000:
            _REQUEST_OIDS.clear()
        _REQUEST_OIDS[tlv] = oid
    return oid


class V2cAgent(asyncio.DatagramProtocol):
    """One v2c device's UDP endpoint: decodes requests with ``dcim.snmp_ber`` and answers GET,
    GETNEXT and GETBULK from the device's sorted table, without pysnmp.

    As the pysnmp path: a wrong community, another SNMP version or PDU type (SET, traps...) gets no
    answer; ``dead`` drops, ``delay_s`` answers late (with the values current then); the other
    faults are in the table. Malformed datagrams are dropped; nothing a datagram holds can raise
    out of ``datagram_received``.
    """

    def __init__(self, agents: AgentSet, agent: DeviceAgent, community: bytes):
        self.agents = agents
        self.agent = agent
        self.community = community
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0  # malformed or refused datagrams

    def connection_made(self, transport) -> None:
        self.transport = transport

    def error_received(self, exc) -> None:  # e.g. ICMP unreachable for an answer: nothing to do
        pass

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            version, community, pdu_tag, rid, f1, f2, varbinds = ber.decode_message(data)
            if (version != ber.VERSION_V2C or community != self.community or not self.agents.running
                    or pdu_tag not in (ber.GET_REQUEST, ber.GET_NEXT_REQUEST, ber.GET_BULK_REQUEST)):
                self.dropped += 1
                return
            request = (community, pdu_tag, rid, f1, f2, [(t, _request_oid(t)) for t, _, _, _ in varbinds])
        except (ber.BerError, ValueError, IndexError, TypeError):
            self.dropped += 1
            return
        agent = self.agent
        fault = agent.fault
        if fault.dead:
            return
        agent.requests += 1
        if fault.delay_s > 0:
            asyncio.get_running_loop().call_later(fault.delay_s, self._reply, request, addr)
            return
        self._reply(request, addr)

    def _reply(self, request, addr) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or not self.agents.running:
            return  # stopped meanwhile
        try:
            answer = self.answer(*request)
        except Exception:  # a bug must cost one answer, never the agent
            log.exception("v2c agent %s: cannot answer a request", self.agent.name)
            return
        transport.sendto(answer, addr)

    def answer(self, community: bytes, pdu_tag: int, rid: int, f1: int, f2: int,
               varbinds: list[tuple[bytes, tuple[int, ...]]]) -> bytes:
        """The response to a decoded request; *varbinds* are (OID TLV as received, OID)."""
        agents, agent = self.agents, self.agent
        oids, values = agent.table(agents.snapshot_provider())
        t0 = agents._start_time
        limit = agents.v2c_max_message
        budget = limit - (ber.message_overhead(community, rid, 0, 0, limit) - limit)
        out: list[bytes] = []
        size = 0
        n_oids = len(oids)
        bisect_right = bisect.bisect_right

        def value_tlv(oid):
            value = values[oid]
            if value is UPTIME:
                return ber.tlv(ber.TIMETICKS, ber.integer_body(uptime_ticks(t0)))
            return value

        if pdu_tag == ber.GET_REQUEST:
            for oid_tlv, oid in varbinds:
                if oid in values:
                    vb = ber.varbind(oid_tlv, value_tlv(oid))
                else:
                    vb = ber.varbind(oid_tlv, ber.NO_SUCH_INSTANCE_TLV if agent.defines(oid)
                                     else ber.NO_SUCH_OBJECT_TLV)
                out.append(vb)
                size += len(vb)
        elif pdu_tag == ber.GET_NEXT_REQUEST:
            for oid_tlv, oid in varbinds:
                i = bisect_right(oids, oid)
                if i == n_oids:
                    vb = ber.varbind(oid_tlv, ber.END_OF_MIB_VIEW_TLV)
                else:
                    found = oids[i]
                    vb = ber.varbind(encoded_oid(found), value_tlv(found))
                out.append(vb)
                size += len(vb)
        else:  # GETBULK (RFC 3416 4.2.3): cut to fit, never tooBig
            non_repeaters = min(max(f1, 0), len(varbinds))
            max_repetitions = max(f2, 0)
            for oid_tlv, oid in varbinds[:non_repeaters]:
                i = bisect_right(oids, oid)
                vb = (ber.varbind(oid_tlv, ber.END_OF_MIB_VIEW_TLV) if i == n_oids
                      else ber.varbind(encoded_oid(oids[i]), value_tlv(oids[i])))
                if size + len(vb) > budget:
                    return self._response(community, rid, 0, 0, out)
                out.append(vb)
                size += len(vb)
            repeaters = varbinds[non_repeaters:]
            # per repeater: (position in the table of its last OID, its OID TLV while at the end)
            cursors = [(bisect_right(oids, oid), oid_tlv) for oid_tlv, oid in repeaters]
            for _ in range(max_repetitions if repeaters else 0):
                ended = 0
                for k, (i, last_tlv) in enumerate(cursors):
                    if i >= n_oids:
                        ended += 1
                        vb = ber.varbind(last_tlv, ber.END_OF_MIB_VIEW_TLV)
                    else:
                        found = oids[i]
                        last_tlv = encoded_oid(found)
                        vb = ber.varbind(last_tlv, value_tlv(found))
                        cursors[k] = (i + 1, last_tlv)
                    if size + len(vb) > budget:
                        return self._response(community, rid, 0, 0, out)
                    out.append(vb)
                    size += len(vb)
                if ended == len(cursors):
                    break  # every repeater is at endOfMibView: more repetitions add nothing
            return self._response(community, rid, 0, 0, out)
        if size > budget:
            return self._response(community, rid, ber.TOO_BIG, 0, [])
        return self._response(community, rid, 0, 0, out)

    @staticmethod
    def _response(community: bytes, rid: int, status: int, index: int, varbinds: list[bytes]) -> bytes:
        return ber.encode_v2c(community, ber.GET_RESPONSE, rid, status, index, varbinds)

