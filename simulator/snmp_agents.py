"""Real SNMP agents for the facility twin: every PDU, cooling unit, UPS and meter of a config,
each on its own loopback address, all served by one pysnmp command-responder engine.

How it works
* Each device gets its own UDP endpoint (own address:port), so it looks like a separate box.
* SNMPv3 devices: one ``SnmpEngine`` per process (asyncio), one transport (own transport domain)
  per device; the responders look at the transport domain a request arrived on to know which
  device is asked.
* SNMPv2c devices: a fast path without pysnmp (``_V2cAgent``, a plain asyncio datagram protocol
  per device): requests are decoded and responses encoded with ``dcim.snmp_ber``, GET / GETNEXT /
  GETBULK answered from the device's sorted table. pysnmp's pyasn1 message handling cost ~175 µs
  per OID and was most of ``dcim up``'s CPU.
* Access is by the device's configured credentials only: a v3 device answers its USM user at
  authPriv, a v2c device its community. Anything else is dropped silently (no answer), as a real
  agent does for a bad community.
* Values are live: each request reads ``snapshot_provider()``. A device's MIB is a sorted OID
  table rebuilt lazily when the snapshot (or the device's faults) changed since its last request,
  so a walk costs a bisect per varbind, not a MIB-object tree traversal. Table values are held
  BER-encoded (what the v2c path sends as is); the pysnmp path converts the ones it serves.
* The MIBs themselves are data (``simulator/mib_*.py``): OID, syntax, scale, how to compute the
  value from the reading.

Profiles (``agent_profile_for``; a device's ``snmp.profile`` wins when it names one we serve;
names match ``collectors/snmp/profiles``):

* pdu: ``apc_rpdu2`` / ``raritan_pdu2``, by default alternating by the order of the rack's room
  in the config (1st, 3rd... room APC; 2nd, 4th... Raritan), so the demo has hall-1 APC, hall-2 Raritan.
* cooling: in-row → ``apc_inrow``; CRAH and chiller → ``liebert_env``.
* ups: ``eaton_xups`` (UPS-MIB + XUPS input watts; default) or ``ups_mib``.
* meter: ``entity_sensor_meter`` (ENTITY-SENSOR-MIB + ENERGY-OBJECT-MIB energy).

Faults for tests (``AgentSet.set_fault(name, ...)``): ``dead`` (no answer), ``delay_s`` (answer
late), ``garbage`` (measurements come back as OCTET STRINGs), ``sentinel`` (measurements are -1),
``profile`` (the device was swapped for another model: other MIB and sysObjectID),
``sys_object_id`` (only the sysObjectID changes).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c
from pysnmp.smi.instrum import AbstractMibInstrumController

from dcim import snmp_ber as ber
from dcim.config import Config, SnmpV2c, SnmpV3, read_secret
from dcim.inventory import Inventory, build_inventory
from simulator import mib_apc_inrow, mib_apc_pdu, mib_liebert_env, mib_meter, mib_raritan_pdu, mib_ups
from simulator.mib_common import COUNTER, COUNTER64, GAUGE, INT, OID, STR, TICKS, Profile, Scalar, raw
from simulator.readings import FacilitySnapshot

log = logging.getLogger(__name__)


PROFILES: dict[str, Profile] = {p.name: p for p in (
    mib_apc_pdu.PROFILE, mib_raritan_pdu.PROFILE, mib_apc_inrow.PROFILE, mib_liebert_env.PROFILE,
    *mib_ups.PROFILES, mib_meter.PROFILE,
)}
# Other spellings a config may use for the same MIBs.
ALIASES = {  # keys after normalisation (lower case, "-" -> "_"); names match collectors/snmp/profiles
    "apc": "apc_rpdu2", "apc_pdu": "apc_rpdu2", "rpdu2": "apc_rpdu2",
    "raritan": "raritan_pdu2", "raritan_px": "raritan_pdu2", "pdu2": "raritan_pdu2",
    "inrow": "apc_inrow", "apc_airirrc": "apc_inrow",
    "liebert": "liebert_env", "liebert_gp_env": "liebert_env", "liebert_gp_environmental": "liebert_env",
    "eaton": "eaton_xups", "eaton_ups": "eaton_xups", "ups": "ups_mib", "rfc1628": "ups_mib",
    "entity": "entity_sensor_meter", "entity_sensor": "entity_sensor_meter", "meter": "entity_sensor_meter",
}
_DEFAULT_PDU_PROFILES = ("apc_rpdu2", "raritan_pdu2")  # alternate by room order

SYS = (1, 3, 6, 1, 2, 1, 1)
SYS_UPTIME = SYS + (3, 0)

_AUTH = {"MD5": snmp_config.USM_AUTH_HMAC96_MD5, "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
         "SHA224": snmp_config.USM_AUTH_HMAC128_SHA224, "SHA256": snmp_config.USM_AUTH_HMAC192_SHA256,
         "SHA384": snmp_config.USM_AUTH_HMAC256_SHA384, "SHA512": snmp_config.USM_AUTH_HMAC384_SHA512}
# AES192/256 as pysnmp's own client speaks them (Reeder key extension).
_PRIV = {"DES": snmp_config.USM_PRIV_CBC56_DES, "AES": snmp_config.USM_PRIV_CFB128_AES,
         "AES192": snmp_config.USM_PRIV_CFB192_AES, "AES256": snmp_config.USM_PRIV_CFB256_AES}
_SEC_V2C, _SEC_USM = 2, 3  # securityModel numbers (v1 = 1 is refused: the devices speak v2c/v3)
_AUTH_PRIV = 3


def normalise_profile(name: str) -> str | None:
    """Profile name from a config spelling, or None if it is not one this simulator serves."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    return key if key in PROFILES else None


def agent_profile_for(kind: str, device: Any, inventory: Inventory) -> Profile:
    """Which vendor MIB the twin serves for a device.

    The device's ``snmp.profile`` wins when it is not "auto" and names a profile we serve.
    Otherwise: PDUs alternate APC / Raritan by the order of their rack's room in the config
    (demo: hall-1 APC, hall-2 Raritan); in-row coolers are APC InRow, CRAHs and chillers
    Liebert; UPSes Eaton; meters ENTITY-SENSOR-MIB.
    """
    wanted = getattr(device.snmp, "profile", "auto") if device.snmp is not None else "auto"
    if wanted and wanted != "auto":
        name = normalise_profile(wanted)
        if name is not None and PROFILES[name].kind == kind:
            return PROFILES[name]
        log.warning("device %s: profile %r is not served by the simulator, using the default", device.name, wanted)
    if kind == "pdu":
        room = inventory.rack_by_name[device.rack].room
        room_index = [r.name for r in inventory.config.rooms].index(room)
        return PROFILES[_DEFAULT_PDU_PROFILES[room_index % 2]]
    if kind == "cooling":
        return PROFILES["apc_inrow" if device.kind == "inrow" else "liebert_env"]
    if kind == "ups":
        return PROFILES["eaton_xups"]
    if kind == "meter":
        return PROFILES["entity_sensor_meter"]
    raise ValueError(f"unknown device kind {kind!r}")


@dataclass
class AgentFault:
    dead: bool = False  # no answer at all
    delay_s: float = 0.0  # answer this late
    garbage: bool = False  # measurements come back with the wrong type (OCTET STRING)
    sentinel: bool = False  # measurements read -1 (vendors' "not supported")
    profile: str | None = None  # serve another model's MIB (device replaced)
    sys_object_id: str | None = None  # only the sysObjectID changes


# ObjectName objects for OIDs we have served: the same OIDs come back at every rebuild, and
# building pyasn1 OIDs is a large part of the cost of a table.
_NAMES: dict[tuple[int, ...], rfc1902.ObjectName] = {}


def _name(oid: tuple[int, ...]) -> rfc1902.ObjectName:
    name = _NAMES.get(oid)
    if name is None:
        name = _NAMES[oid] = rfc1902.ObjectName(oid)
    return name


class _Uptime:
    """Marker for sysUpTime, computed per request (it must move even when the snapshot does not)."""


_UPTIME = _Uptime()


# Table values are kept as their BER encoding (value TLV): the v2c fast path concatenates them
# into responses as they are, and building a table costs no pyasn1 objects (those were ~85 % of
# a rebuild). The pysnmp (v3) path turns the few it serves back into pyasn1 objects (_pyasn1).
_TAG = {INT: ber.INTEGER, GAUGE: ber.GAUGE32, COUNTER: ber.COUNTER32, COUNTER64: ber.COUNTER64,
        TICKS: ber.TIMETICKS}
_SENTINEL_TLV = ber.encode_integer(-1)
_GARBAGE_TLV = ber.encode_octets(b"\xffgarbage")
_OID_VALUES: dict[str, bytes] = {}  # OID-valued objects: OID string -> TLV


def _octets(value: Any) -> bytes:
    text = str(value)
    try:
        return ber.encode_octets(text.encode("latin-1"))  # as pyasn1's OctetString(str) encodes it
    except UnicodeEncodeError:
        return ber.encode_octets(text.encode("utf-8"))


def _encode(syntax: type, value: Any, scale: float | None, measure: bool, fault: AgentFault) -> bytes:
    """The value TLV for one object (faults applied)."""
    if measure and fault.sentinel:
        return _SENTINEL_TLV
    if measure and fault.garbage:
        return _GARBAGE_TLV
    if syntax is OID:
        tlv = _OID_VALUES.get(value)
        if tlv is None:
            tlv = _OID_VALUES[value] = ber.encode_oid(value)
        return tlv
    if syntax is STR:
        return _octets(value)
    number = int(raw(value, scale))
    if syntax is GAUGE or syntax is COUNTER:
        number = 0 if number < 0 else 4294967295 if number > 4294967295 else number
    else:
        number = -2147483648 if number < -2147483648 else 2147483647 if number > 2147483647 else number
    key = (syntax, number)  # indexes, enums, thresholds, slow readings: most values repeat
    tlv = _NUMBERS.get(key)
    if tlv is None:
        if len(_NUMBERS) > 200_000:
            _NUMBERS.clear()
        tlv = _NUMBERS[key] = ber.tlv(_TAG[syntax], ber.integer_body(number))
    return tlv


_NUMBERS: dict[tuple[type, int], bytes] = {}


_PYASN1 = {ber.INTEGER: INT, ber.OCTET_STRING: STR, ber.OBJECT_IDENTIFIER: OID, ber.GAUGE32: GAUGE,
           ber.COUNTER32: COUNTER, ber.COUNTER64: COUNTER64, ber.TIMETICKS: TICKS}


def _pyasn1(tlv: bytes):
    """A table value TLV as the pyasn1 object the pysnmp responders want."""
    tag, start, end = ber.read_tlv(tlv, 0, len(tlv))
    body = tlv[start:end]
    if tag == ber.OCTET_STRING:
        return STR(body)
    if tag == ber.OBJECT_IDENTIFIER:
        return OID(ber.decode_oid_parts(body))
    return _PYASN1[tag](int.from_bytes(body, "big", signed=tag == ber.INTEGER))


# OID TLVs of the OIDs tables hold (the same OIDs come back at every rebuild).
_OID_TLVS: dict[tuple[int, ...], bytes] = {}


def _oid_tlv(oid: tuple[int, ...]) -> bytes:
    tlv = _OID_TLVS.get(oid)
    if tlv is None:
        if len(_OID_TLVS) > 500_000:
            _OID_TLVS.clear()
        tlv = _OID_TLVS[oid] = ber.encode_oid(oid)
    return tlv


# Objects (scalar OIDs, table columns) each profile defines: a GET of an absent instance of a
# defined object answers noSuchInstance, of anything else noSuchObject.
_OBJECTS: dict[str, frozenset] = {}


def _objects(profile: Profile) -> frozenset:
    objs = _OBJECTS.get(profile.name)
    if objs is None:
        found = {SYS + (n,) for n in range(1, 8)}
        for obj in profile.objects:
            if isinstance(obj, Scalar):
                found.add(_oid(obj.oid))
            else:
                found.update(_oid(obj.entry) + (col.sub,) for col in obj.columns)
        objs = _OBJECTS[profile.name] = frozenset(found)
    return objs


@dataclass
class DeviceAgent:
    """One simulated device: where it answers, what it serves, its faults and its cached MIB table."""

    name: str
    kind: str
    device: Any  # the config object (Pdu, CoolingUnit, Ups, Meter)
    profile: Profile
    address: str
    port: int
    credentials: str  # name of the [snmp.credentials.X] section
    version: str  # "2c" or "3"
    security_name: str  # community index (v2c) or USM user (v3)
    fault: AgentFault = field(default_factory=AgentFault)
    requests: int = 0
    _key: Any = None
    _oids: list = field(default_factory=list)
    _values: dict = field(default_factory=dict)  # OID tuple -> value TLV (or _UPTIME)
    _py: dict = field(default_factory=dict)  # pyasn1 values handed to pysnmp, per table

    @property
    def served_profile(self) -> Profile:
        return PROFILES[self.fault.profile] if self.fault.profile else self.profile

    def accepts(self, security_model: int, security_name: Any, security_level: int) -> bool:
        if str(security_name) != self.security_name:
            return False
        if self.version == "3":
            return security_model == _SEC_USM and security_level == _AUTH_PRIV
        return security_model == _SEC_V2C

    def table(self, snapshot: FacilitySnapshot) -> tuple[list, dict]:
        key = self._key
        # Holding the snapshot itself (not its id) in the key: a new snapshot can never look cached.
        if key is None or key[0] is not snapshot or key[1] != snapshot.time_ns or key[2] is not self.fault:
            self._oids, self._values = self._build(snapshot)
            self._py = {}
            self._key = (snapshot, snapshot.time_ns, self.fault)
        return self._oids, self._values

    def _reading(self, snapshot: FacilitySnapshot):
        group = {"pdu": snapshot.pdus, "cooling": snapshot.cooling, "ups": snapshot.ups, "meter": snapshot.meters}
        return group[self.kind].get(self.name)

    def _build(self, snapshot: FacilitySnapshot) -> tuple[list, dict]:
        profile, fault, dev = self.served_profile, self.fault, self.device
        values: dict[tuple[int, ...], Any] = {
            SYS + (1, 0): _octets(profile.sys_descr),
            SYS + (2, 0): _encode(OID, fault.sys_object_id or profile.sys_object_id, None, False, fault),
            SYS_UPTIME: _UPTIME,
            SYS + (4, 0): _octets("dcim facility twin"),
            SYS + (5, 0): _octets(self.name),
            SYS + (6, 0): _octets(getattr(dev, "rack", None) or getattr(dev, "room", None) or "plant"),
            SYS + (7, 0): ber.encode_integer(72),  # sysServices: application + end-to-end
        }
        reading = self._reading(snapshot)
        if reading is not None:  # a device the twin does not model yet answers only its system group
            for obj in profile.objects:
                if isinstance(obj, Scalar):
                    value = obj.value(dev, reading)
                    if value is not None:
                        values[_oid(obj.oid) + (0,)] = _encode(obj.syntax, value, obj.scale, obj.measure, fault)
                    continue
                entry = _oid(obj.entry)
                rows = list(obj.rows(dev, reading))
                for col in obj.columns:
                    prefix = entry + (col.sub,)
                    fn, syntax, scale, measure = col.value, col.syntax, col.scale, col.measure
                    for index, item in rows:
                        value = fn(dev, reading, item, index)
                        if value is not None:
                            values[prefix + index] = _encode(syntax, value, scale, measure, fault)
        return sorted(values), values

    # --- the two lookups the responders need -------------------------------------------------

    def get(self, snapshot: FacilitySnapshot, oid: tuple[int, ...], start_time: float):
        _, values = self.table(snapshot)
        value = values.get(oid)
        if value is None:
            return v2c.NoSuchInstance() if self.defines(oid) else v2c.NoSuchObject()
        return self._live(oid, value, start_time)

    def get_next(self, snapshot: FacilitySnapshot, oid: tuple[int, ...], start_time: float):
        oids, values = self.table(snapshot)
        i = bisect.bisect_right(oids, oid)
        if i == len(oids):
            return None, v2c.EndOfMibView()
        found = oids[i]
        return found, self._live(found, values[found], start_time)

    def defines(self, oid: tuple[int, ...]) -> bool:
        """Whether *oid* is an instance of an object the served MIB defines (for a GET that
        misses: noSuchInstance if so, noSuchObject if not)."""
        objects = _objects(self.served_profile)
        return any(oid[:k] in objects for k in range(len(oid) - 1, 6, -1))

    def _live(self, oid, value, start_time: float):
        if value is _UPTIME:
            return rfc1902.TimeTicks(_uptime_ticks(start_time))
        py = self._py.get(oid)
        if py is None:
            py = self._py[oid] = _pyasn1(value)
        return py


def _uptime_ticks(start_time: float) -> int:
    return int((time.monotonic() - start_time) * 100) % 2 ** 32


_OIDS: dict[str, tuple[int, ...]] = {}


def _oid(text: str) -> tuple[int, ...]:
    cached = _OIDS.get(text)
    if cached is None:
        cached = _OIDS[text] = tuple(int(p) for p in text.strip(".").split("."))
    return cached


def _as_tuple(name) -> tuple[int, ...]:
    # pyasn1's asTuple() hands back the stored tuple; tuple(name) iterates it item by item (3x slower)
    return name.asTuple() if hasattr(name, "asTuple") else tuple(name)


class _Router(AbstractMibInstrumController):
    """The MIB instrumentation of every device: serves the device the current request came to."""

    def __init__(self, agents: "AgentSet"):
        self.agents = agents

    def read_variables(self, *var_binds, **context):
        agent, snapshot, t0 = self.agents._serving()
        return [(name, agent.get(snapshot, _as_tuple(name), t0)) for name, _ in var_binds]

    def read_next_variables(self, *var_binds, **context):
        agent, snapshot, t0 = self.agents._serving()
        out = []
        for name, _ in var_binds:
            found, value = agent.get_next(snapshot, _as_tuple(name), t0)
            out.append((name if found is None else _name(found), value))
        return out

    def write_variables(self, *var_binds, **context):
        raise NotImplementedError  # no SET responder is registered: the agents are read-only


class _Gate:
    """Picks the device by the transport a request arrived on, checks its credentials and
    applies the dead/delay faults before the standard responder logic runs."""

    agents: "AgentSet"

    def process_pdu(self, snmp_engine, mp_model, security_model, security_name, security_level,
                    context_engine_id, context_name, pdu_version, pdu, max_size, state_reference):
        args = (snmp_engine, mp_model, security_model, security_name, security_level, context_engine_id,
                context_name, pdu_version, pdu, max_size, state_reference)
        if not self.agents.running:
            return  # stopping
        request = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        agent = self.agents._by_domain.get(tuple(request["transportDomain"]))
        if agent is None or not agent.accepts(security_model, security_name, security_level):
            return  # wrong credentials for this device: no answer
        fault = agent.fault
        if fault.dead:
            return
        agent.requests += 1
        if fault.delay_s > 0:
            asyncio.get_running_loop().call_later(fault.delay_s, self._answer, agent, args)
            return
        self._answer(agent, args)

    def _answer(self, agent: DeviceAgent, args) -> None:
        if not self.agents.running:  # a delayed answer that outlived stop()
            return
        self.agents._current = agent
        try:
            super().process_pdu(*args)  # type: ignore[misc]
        finally:
            self.agents._current = None


class _Get(_Gate, cmdrsp.GetCommandResponder):
    pass


class _Next(_Gate, cmdrsp.NextCommandResponder):
    pass


class _Bulk(_Gate, cmdrsp.BulkCommandResponder):
    pass


# --- the v2c fast path ---------------------------------------------------------------------------

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


class _V2cAgent(asyncio.DatagramProtocol):
    """One v2c device's UDP endpoint: decodes requests with ``dcim.snmp_ber`` and answers GET,
    GETNEXT and GETBULK from the device's sorted table, without pysnmp.

    As the pysnmp path: a wrong community, another SNMP version or PDU type (SET, traps...) gets no
    answer; ``dead`` drops, ``delay_s`` answers late (with the values current then); the other
    faults are in the table. Malformed datagrams are dropped; nothing a datagram holds can raise
    out of ``datagram_received``.
    """

    def __init__(self, agents: "AgentSet", agent: DeviceAgent, community: bytes):
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
            if value is _UPTIME:
                return ber.tlv(ber.TIMETICKS, ber.integer_body(_uptime_ticks(t0)))
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
                    vb = ber.varbind(_oid_tlv(found), value_tlv(found))
                out.append(vb)
                size += len(vb)
        else:  # GETBULK (RFC 3416 4.2.3): cut to fit, never tooBig
            non_repeaters = min(max(f1, 0), len(varbinds))
            max_repetitions = max(f2, 0)
            for oid_tlv, oid in varbinds[:non_repeaters]:
                i = bisect_right(oids, oid)
                vb = (ber.varbind(oid_tlv, ber.END_OF_MIB_VIEW_TLV) if i == n_oids
                      else ber.varbind(_oid_tlv(oids[i]), value_tlv(oids[i])))
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
                        last_tlv = _oid_tlv(found)
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


class AgentSet:
    """All the twin's SNMP agents in this process. Start and stop it inside a running asyncio loop.

    ``devices``: restrict to these device names (default: every device with an ``snmp`` target).
    IPv4 only: on Linux the whole 127.0.0.0/8 is on loopback, so every device gets its own address.
    """

    def __init__(self, config: Config, snapshot_provider: Callable[[], FacilitySnapshot], *,
                 inventory: Inventory | None = None, devices: list[str] | None = None):
        self.config = config
        self.inventory = inventory or build_inventory(config)
        self.snapshot_provider = snapshot_provider
        self.agents: dict[str, DeviceAgent] = {}
        self._by_domain: dict[tuple, DeviceAgent] = {}
        self._current: DeviceAgent | None = None
        self._engine: snmp_engine.SnmpEngine | None = None
        self._v2c: dict[str, _V2cAgent] = {}  # v2c devices: served by the fast path, not pysnmp
        self.v2c_max_message = MAX_V2C_MESSAGE
        self._start_time = time.monotonic()
        wanted = set(devices) if devices is not None else None
        for kind, name, dev in self.inventory.snmp_devices():
            if wanted is not None and name not in wanted:
                continue
            creds = config.snmp.credentials[dev.snmp.credentials]
            self.agents[name] = DeviceAgent(
                name=name, kind=kind, device=dev, profile=agent_profile_for(kind, dev, self.inventory),
                address=dev.snmp.address, port=dev.snmp.port, credentials=dev.snmp.credentials,
                version=creds.version,
                security_name=creds.user if isinstance(creds, SnmpV3) else f"community-{dev.snmp.credentials}",
            )

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._engine is not None

    async def start(self) -> None:
        if self._engine is not None:
            return
        eng = snmp_engine.SnmpEngine()
        loop = asyncio.get_running_loop()
        try:
            communities = self._configure_credentials(eng)
            for i, agent in enumerate(self.agents.values(), 1):
                sock = _bind(agent.address, agent.port)  # bind here, so "address in use" is raised now
                if agent.version == "2c":
                    protocol = _V2cAgent(self, agent, communities[agent.credentials])
                    try:
                        await loop.create_datagram_endpoint(lambda p=protocol: p, sock=sock)
                    except BaseException:
                        sock.close()
                        raise
                    self._v2c[agent.name] = protocol
                    continue
                domain = udp.DOMAIN_NAME + (i,)
                snmp_config.add_transport(eng, domain, udp.UdpTransport().open_server_mode(sock=sock))
                self._by_domain[domain] = agent
            ctx = context.SnmpContext(eng)
            ctx.unregister_context_name(b"")
            ctx.register_context_name(b"", _Router(self))
            for cls in (_Get, _Next, _Bulk):
                responder = cls(eng, ctx)
                responder.agents = self
            if eng.transport_dispatcher is not None:  # None when there is no v3 device
                eng.transport_dispatcher.job_started(1)
            await asyncio.sleep(0)  # let the datagram endpoints come up
        except BaseException:
            eng.close_dispatcher()
            self._by_domain.clear()
            self._close_v2c()
            raise
        self._engine = eng
        self._start_time = time.monotonic()
        log.info("SNMP agents serving %d devices", len(self.agents))

    async def stop(self) -> None:
        eng, self._engine = self._engine, None
        if eng is None:
            return
        self._close_v2c()
        # Close the sockets first and let datagrams already queued on the loop reach the gate
        # (which drops them now): after close_dispatcher they would hit unregistered transports.
        dispatcher = eng.transport_dispatcher
        for domain in self._by_domain:
            transport = dispatcher.get_transport(domain)
            if transport is not None and transport.transport is not None:
                transport.transport.close()
        for _ in range(3):
            await asyncio.sleep(0)
        if dispatcher is not None:
            dispatcher.job_finished(1)
        eng.close_dispatcher()
        self._by_domain.clear()

    def _close_v2c(self) -> None:
        for protocol in self._v2c.values():
            if protocol.transport is not None:
                protocol.transport.close()
        self._v2c.clear()

    def _configure_credentials(self, eng) -> dict[str, bytes]:
        """USM users of the v3 devices into *eng*; returns the v2c communities by credential name."""
        used = {a.credentials for a in self.agents.values()}
        users: dict[str, str] = {}
        communities: dict[str, bytes] = {}
        for cred_name in sorted(used):
            creds = self.config.snmp.credentials[cred_name]
            where = f"snmp.credentials.{cred_name}"
            if isinstance(creds, SnmpV2c):
                community = read_secret(creds.community, f"{where}.community")
                if not community:
                    raise ValueError(f"{where}.community: no community set")
                communities[cred_name] = community.encode()  # served by _V2cAgent, not by pysnmp
            else:
                if creds.user in users:
                    # USM has one entry per user name and engine: two credential sets cannot share one
                    raise ValueError(f"{where}: SNMPv3 user {creds.user!r} is also defined in "
                                     f"snmp.credentials.{users[creds.user]}; the simulator needs distinct users")
                users[creds.user] = cred_name
                snmp_config.add_v3_user(
                    eng, creds.user,
                    _AUTH[creds.auth_protocol], read_secret(creds.auth_key, f"{where}.auth_key"),
                    _PRIV[creds.priv_protocol], read_secret(creds.priv_key, f"{where}.priv_key"),
                )
        return communities

    # --- serving --------------------------------------------------------------------------------

    def _serving(self) -> tuple[DeviceAgent, FacilitySnapshot, float]:
        agent = self._current
        if agent is None:  # only reachable if pysnmp calls the controller outside _Gate
            raise RuntimeError("no device selected for this request")
        return agent, self.snapshot_provider(), self._start_time

    # --- faults ---------------------------------------------------------------------------------

    def set_fault(self, name: str, **changes) -> AgentFault:
        """Change one device's faults, e.g. ``set_fault("pdu-A01-a", dead=True)``; returns the new fault.

        Unknown device names raise KeyError; unknown fault names raise TypeError; an unknown
        ``profile`` raises ValueError.
        """
        agent = self.agents[name]
        if changes.get("profile") is not None:
            profile = normalise_profile(changes["profile"])
            if profile is None:
                raise ValueError(f"unknown profile {changes['profile']!r}; known: {', '.join(sorted(PROFILES))}")
            changes["profile"] = profile
        agent.fault = replace(agent.fault, **changes)  # a new object: the table cache key changes
        return agent.fault

    def clear_faults(self, name: str | None = None) -> None:
        for agent in ([self.agents[name]] if name else self.agents.values()):
            agent.fault = AgentFault()

    # --- what is served where -------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """One row per device: name, kind, profile, vendor, address, port, SNMP version, credentials."""
        return [
            {"name": a.name, "kind": a.kind, "profile": a.served_profile.name, "vendor": a.served_profile.vendor,
             "address": a.address, "port": a.port, "version": a.version, "credentials": a.credentials,
             "sys_object_id": a.fault.sys_object_id or a.served_profile.sys_object_id}
            for a in self.agents.values()
        ]


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot serve SNMP on {address}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
