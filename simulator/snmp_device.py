"""One simulated SNMP device (:class:`DeviceAgent`): its faults, and its MIB as a sorted OID table
built from the twin's snapshot, values held BER-encoded. What both the pysnmp (v3) path and the
v2c fast path answer from."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c

from dcim import snmp_ber as ber
from simulator.mib_common import COUNTER, COUNTER64, GAUGE, INT, OID, STR, TICKS, Profile, Scalar, raw
from simulator.readings import FacilitySnapshot
from simulator.snmp_profiles import PROFILES

SYS = (1, 3, 6, 1, 2, 1, 1)
SYS_UPTIME = SYS + (3, 0)
SEC_V2C, SEC_USM = 2, 3  # securityModel numbers (v1 = 1 is refused: the devices speak v2c/v3)
AUTH_PRIV = 3  # securityLevel authPriv


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


def object_name(oid: tuple[int, ...]) -> rfc1902.ObjectName:
    name = _NAMES.get(oid)
    if name is None:
        name = _NAMES[oid] = rfc1902.ObjectName(oid)
    return name


class _Uptime:
    """Marker for sysUpTime, computed per request (it must move even when the snapshot does not)."""


UPTIME = _Uptime()


# Table values are kept as their BER encoding (value TLV): the v2c fast path concatenates them
# into responses as they are, and building a table costs no pyasn1 objects (those were ~85 % of
# a rebuild). The pysnmp (v3) path turns the few it serves back into pyasn1 objects (to_pyasn1).
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


def to_pyasn1(tlv: bytes):
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


def encoded_oid(oid: tuple[int, ...]) -> bytes:
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
        found: set[tuple[int, ...]] = {SYS + (n,) for n in range(1, 8)}
        for obj in profile.objects:
            if isinstance(obj, Scalar):
                found.add(parse_oid(obj.oid))
            else:
                found.update(parse_oid(obj.entry) + (col.sub,) for col in obj.columns)
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
    _values: dict = field(default_factory=dict)  # OID tuple -> value TLV (or UPTIME)
    _py: dict = field(default_factory=dict)  # pyasn1 values handed to pysnmp, per table

    @property
    def served_profile(self) -> Profile:
        return PROFILES[self.fault.profile] if self.fault.profile else self.profile

    def accepts(self, security_model: int, security_name: Any, security_level: int) -> bool:
        if str(security_name) != self.security_name:
            return False
        if self.version == "3":
            return security_model == SEC_USM and security_level == AUTH_PRIV
        return security_model == SEC_V2C

    def table(self, snapshot: FacilitySnapshot) -> tuple[list, dict]:
        key = self._key
        # Holding the snapshot itself (not its id) in the key: a new snapshot can never look cached.
        if key is None or key[0] is not snapshot or key[1] != snapshot.time_ns or key[2] is not self.fault:
            self._oids, self._values = self._build(snapshot)
            self._py = {}
            self._key = (snapshot, snapshot.time_ns, self.fault)
        return self._oids, self._values

    def _reading(self, snapshot: FacilitySnapshot):
        group: dict[str, dict[str, Any]] = {"pdu": snapshot.pdus, "cooling": snapshot.cooling, "ups": snapshot.ups,
                                            "meter": snapshot.meters}
        return group[self.kind].get(self.name)

    def _build(self, snapshot: FacilitySnapshot) -> tuple[list, dict]:
        profile, fault, dev = self.served_profile, self.fault, self.device
        values: dict[tuple[int, ...], Any] = {
            SYS + (1, 0): _octets(profile.sys_descr),
            SYS + (2, 0): _encode(OID, fault.sys_object_id or profile.sys_object_id, None, False, fault),
            SYS_UPTIME: UPTIME,
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
                        values[parse_oid(obj.oid) + (0,)] = _encode(obj.syntax, value, obj.scale, obj.measure, fault)
                    continue
                entry = parse_oid(obj.entry)
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
        if value is UPTIME:
            return rfc1902.TimeTicks(uptime_ticks(start_time))
        py = self._py.get(oid)
        if py is None:
            py = self._py[oid] = to_pyasn1(value)
        return py


def uptime_ticks(start_time: float) -> int:
    return int((time.monotonic() - start_time) * 100) % 2 ** 32


_OIDS: dict[str, tuple[int, ...]] = {}


def parse_oid(text: str) -> tuple[int, ...]:
    cached = _OIDS.get(text)
    if cached is None:
        cached = _OIDS[text] = tuple(int(p) for p in text.strip(".").split("."))
    return cached
