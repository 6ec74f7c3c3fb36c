"""SNMPv3 User-based Security Model (RFC 3414, RFC 7860 SHA-2, RFC 3826 AES) for the client: keys,
message encoding, and the checks a reply must pass before a byte of its PDU is read.

Pure logic, no sockets: ``client.py`` owns the I/O and the per-agent state (engine ID, boots,
time). Crypto is ``hashlib``/``hmac`` (C) and ``cryptography`` (OpenSSL), a few microseconds
per message; BER is ``dcim/snmp_ber.py``, bounded as for v2c.

Keys: a password becomes Ku by hashing 1 MiB of its repetition (RFC 3414 A.2.1, also for SHA-2
per RFC 7860), then Kul = H(Ku | engineID | Ku), per agent. The privacy key is localised with the
auth protocol's hash; AES-192/256 need more octets than SHA-1 gives, and get them as Net-SNMP's
default ("Blumenthal", draft-blumenthal-aes-usm-04 §3.1.2.1) does: Kul | H(Kul) | ... truncated.

A reply is an answer only if (in this order, all before its PDU is decoded): its msgID is one
we are waiting for from that address (``client.py``), its USM header parses, the authoritative
engine ID is the agent's, the user is ours, its security level is the one we asked for (a Report
may be unauthenticated: RFC 3414 §3.1.1), its HMAC matches, and its boots/time are inside the
150-s window (RFC 3414 §3.2 step 7b). Anything else raises :class:`Rejected` with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

# CFB moved to "decrepit" in cryptography 47 (its old name goes away); pyproject asks for >= 47
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dcim import snmp_ber as ber

VERSION_V3 = 3
SECURITY_MODEL_USM = 3
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
REPORT = 0xA8
MAX_MESSAGE_SIZE = 65507
TIME_WINDOW_S = 150          # RFC 3414 §2.2.3
MAX_BOOTS = 2**31 - 1        # a latched engine: nothing it says is timely
KU_EXPANSION_OCTETS = 1 << 20

# auth protocol -> (hashlib name, MAC octets on the wire)
AUTH_PROTOCOLS = {"MD5": ("md5", 12), "SHA": ("sha1", 12), "SHA224": ("sha224", 16),
                  "SHA256": ("sha256", 24), "SHA384": ("sha384", 32), "SHA512": ("sha512", 48)}
# priv protocol -> key octets (DES: 8 key + 8 pre-IV)
PRIV_PROTOCOLS = {"DES": 16, "AES": 16, "AES128": 16, "AES192": 24, "AES256": 32}

# Report OIDs (RFC 3414 usmStats, RFC 3412 snmpMPDStats, RFC 3413 target MIB) -> what it means
_USM = "1.3.6.1.6.3.15.1.1."
REPORT_REASONS = {
    _USM + "1.0": "v3 auth failure: security level not supported for this user",
    _USM + "2.0": "v3 auth failure: not in time window",
    _USM + "3.0": "v3 auth failure: unknown user",
    _USM + "4.0": "v3: unknown engine ID",
    _USM + "5.0": "v3 auth failure: wrong digest (bad auth key or protocol)",
    _USM + "6.0": "v3 privacy failure: cannot decrypt (bad priv key or protocol)",
    "1.3.6.1.6.3.11.2.1.1.0": "v3: agent does not support the USM security model",
    "1.3.6.1.6.3.11.2.1.2.0": "v3: agent found the message invalid",
    "1.3.6.1.6.3.11.2.1.3.0": "v3: agent has no handler for the request",
    "1.3.6.1.6.3.12.1.4.0": "v3: context unavailable",
    "1.3.6.1.6.3.12.1.5.0": "v3: unknown context",
}
NOT_IN_TIME_WINDOW = _USM + "2.0"
UNKNOWN_ENGINE_ID = _USM + "4.0"


class Rejected(Exception):
    """A datagram that is not a genuine, timely answer: dropped, counted under ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def protocol_name(name: str) -> str:
    """'SHA-256' / 'sha256' / 'AES-128' -> the table key ('SHA256', 'AES128')."""
    return name.upper().replace("-", "").replace("_", "")


# --- keys ----------------------------------------------------------------------------------------


_KU_CACHE: dict[tuple[bytes, str], bytes] = {}


def password_to_key(password: bytes, hash_name: str) -> bytes:
    """Ku (RFC 3414 A.2): the hash of 1 MiB of the password repeated. Cached: ~2 ms each."""
    key = (hashlib.sha256(password).digest(), hash_name)
    ku = _KU_CACHE.get(key)
    if ku is None:
        if not password:
            raise ValueError("empty SNMPv3 password")
        stream = password * (KU_EXPANSION_OCTETS // len(password) + 1)
        ku = hashlib.new(hash_name, stream[:KU_EXPANSION_OCTETS]).digest()
        if len(_KU_CACHE) > 4096:
            _KU_CACHE.clear()
        _KU_CACHE[key] = ku
    return ku


def localize(ku: bytes, engine_id: bytes, hash_name: str) -> bytes:
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


def extend_key(kul: bytes, octets: int, hash_name: str) -> bytes:
    """Blumenthal key extension (what Net-SNMP's ``AES-192``/``AES-256`` use)."""
    while len(kul) < octets:
        kul += hashlib.new(hash_name, kul).digest()
    return kul[:octets]


@dataclass(frozen=True)
class UserKeys:
    """One user's keys localised to one agent's engine ID. Never logged (repr hides them)."""

    user: bytes
    hash_name: str
    mac_octets: int
    auth_key: bytes = field(repr=False)
    priv: str | None = None          # 'AES' / 'DES' / None (authNoPriv)
    priv_key: bytes = field(default=b"", repr=False)

    @property
    def flags(self) -> int:
        return FLAG_AUTH | (FLAG_PRIV if self.priv else 0)


def user_keys(user: str, auth_protocol: str, auth_password: str, priv_protocol: str | None,
              priv_password: str | None, engine_id: bytes) -> UserKeys:
    """Localised keys; ValueError naming the protocol if it is not supported."""
    auth = protocol_name(auth_protocol)
    if auth not in AUTH_PROTOCOLS:
        raise ValueError(f"unsupported v3 auth protocol {auth_protocol}")
    hash_name, mac_octets = AUTH_PROTOCOLS[auth]
    auth_key = localize(password_to_key(auth_password.encode(), hash_name), engine_id, hash_name)
    if not priv_password:
        return UserKeys(user.encode(), hash_name, mac_octets, auth_key)
    priv = protocol_name(priv_protocol or "AES")
    if priv not in PRIV_PROTOCOLS:
        raise ValueError(f"unsupported v3 priv protocol {priv_protocol}")
    kul = localize(password_to_key(priv_password.encode(), hash_name), engine_id, hash_name)
    priv_key = extend_key(kul, PRIV_PROTOCOLS[priv], hash_name)
    return UserKeys(user.encode(), hash_name, mac_octets, auth_key, "DES" if priv == "DES" else "AES", priv_key)


# --- privacy -------------------------------------------------------------------------------------


class Salt:
    """A 64-bit counter from a random start (RFC 3826 §3.1.2.1: unique per key); 32 bits for DES."""

    def __init__(self) -> None:
        self._n = int.from_bytes(os.urandom(8), "big")

    def next(self) -> int:
        self._n = (self._n + 1) & 0xFFFFFFFFFFFFFFFF
        return self._n


def _des():
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES  # DES = 3DES with K1=K2=K3

    return TripleDES


def encrypt(keys: UserKeys, boots: int, engine_time: int, salt: int, plain: bytes) -> tuple[bytes, bytes]:
    """(msgPrivacyParameters, ciphertext) of a scopedPDU."""
    if keys.priv == "DES":
        params = boots.to_bytes(4, "big") + (salt & 0xFFFFFFFF).to_bytes(4, "big")
        iv = bytes(a ^ b for a, b in zip(keys.priv_key[8:16], params))
        plain += b"\x00" * (-len(plain) % 8)  # padding after the scopedPDU is ignored by its reader
        enc = Cipher(_des()(keys.priv_key[:8]), modes.CBC(iv)).encryptor()
        return params, enc.update(plain) + enc.finalize()
    params = salt.to_bytes(8, "big")
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + params
    enc = Cipher(algorithms.AES(keys.priv_key), CFB(iv)).encryptor()
    return params, enc.update(plain) + enc.finalize()


def decrypt(keys: UserKeys, boots: int, engine_time: int, params: bytes, data: bytes) -> bytes:
    if len(params) != 8:
        raise Rejected("bad privacy parameters")
    if keys.priv == "DES":
        if len(data) % 8:
            raise Rejected("bad privacy parameters")
        iv = bytes(a ^ b for a, b in zip(keys.priv_key[8:16], params))
        dec = Cipher(_des()(keys.priv_key[:8]), modes.CBC(iv)).decryptor()
    else:
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + params
        dec = Cipher(algorithms.AES(keys.priv_key), CFB(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def _mac(keys: UserKeys, message: bytes) -> bytes:
    return hmac.digest(keys.auth_key, message, keys.hash_name)[:keys.mac_octets]


# --- requests ------------------------------------------------------------------------------------


def encode_message(msg_id: int, flags: int, engine_id: bytes, boots: int, engine_time: int,
                   scoped_pdu: bytes, keys: UserKeys | None = None, salt: int = 0) -> bytes:
    """A v3 message. *keys* None: noAuthNoPriv (engine discovery); else signed with *keys*, and
    encrypted when they carry a privacy key."""
    priv_params, msg_data = b"", scoped_pdu
    if keys is not None and keys.priv:
        priv_params, cipher = encrypt(keys, boots, engine_time, salt, scoped_pdu)
        msg_data = ber.tlv(ber.OCTET_STRING, cipher)
    mac_octets = keys.mac_octets if keys is not None else 0
    user = keys.user if keys is not None else b""
    tail = ber.tlv(ber.OCTET_STRING, priv_params)
    params = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, engine_id) + ber.encode_integer(boots)
                     + ber.encode_integer(engine_time) + ber.tlv(ber.OCTET_STRING, user)
                     + ber.tlv(ber.OCTET_STRING, b"\x00" * mac_octets) + tail)
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(MAX_MESSAGE_SIZE)
                     + ber.tlv(ber.OCTET_STRING, bytes((flags,))) + ber.encode_integer(SECURITY_MODEL_USM))
    message = ber.tlv(ber.SEQUENCE, b"\x02\x01\x03" + header + ber.tlv(ber.OCTET_STRING, params) + msg_data)
    if keys is None or not mac_octets:
        return message
    at = len(message) - len(msg_data) - len(tail) - mac_octets
    return message[:at] + _mac(keys, message) + message[at + mac_octets:]


def scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, context_engine_id)
                   + ber.tlv(ber.OCTET_STRING, context_name) + pdu)


# --- replies -------------------------------------------------------------------------------------


def message_id(buf: bytes) -> int:
    """The msgID of a v3 message, reading only its first TLV headers (BerError otherwise)."""
    tag, pos, end = ber.read_tlv(buf, 0, len(buf))
    if tag != ber.SEQUENCE:
        raise ber.BerError("not a SEQUENCE message")
    tag, s, e = ber.read_tlv(buf, pos, end)
    if tag != ber.INTEGER or e - s != 1 or buf[s] != VERSION_V3:
        raise ber.BerError("not SNMPv3")
    tag, gpos, gend = ber.read_tlv(buf, e, end)
    if tag != ber.SEQUENCE:
        raise ber.BerError("no msgGlobalData")
    tag, s, e = ber.read_tlv(buf, gpos, gend)
    if tag != ber.INTEGER or not 1 <= e - s <= 5:
        raise ber.BerError("bad msgID")
    return int.from_bytes(buf[s:e], "big", signed=True)


@dataclass
class Reply:
    """A v3 message's header fields, and where its authentication parameters and data lie."""

    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    engine_time: int
    user: bytes
    auth_at: int      # offset of msgAuthenticationParameters' content in the message
    auth_len: int
    priv_params: bytes
    data_tag: int     # SEQUENCE (plaintext scopedPDU) or OCTET STRING (encrypted)
    data_start: int
    data_end: int


def _int(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    tag, s, e = ber.read_tlv(buf, pos, end)
    if tag != ber.INTEGER or not 1 <= e - s <= 5:
        raise ber.BerError(f"bad {what}")
    return int.from_bytes(buf[s:e], "big", signed=True), e


def _octets(buf: bytes, pos: int, end: int, what: str, max_len: int) -> tuple[int, int]:
    tag, s, e = ber.read_tlv(buf, pos, end)
    if tag != ber.OCTET_STRING or e - s > max_len:
        raise ber.BerError(f"bad {what}")
    return s, e


def parse(buf: bytes) -> Reply:
    """The header of a v3 USM message: bounded (every field's size is checked before use)."""
    tag, pos, end = ber.read_tlv(buf, 0, len(buf))
    if tag != ber.SEQUENCE:
        raise ber.BerError("not a SEQUENCE message")
    version, pos = _int(buf, pos, end, "version")
    if version != VERSION_V3:
        raise ber.BerError("not SNMPv3")
    tag, gpos, pos = ber.read_tlv(buf, pos, end)
    if tag != ber.SEQUENCE:
        raise ber.BerError("no msgGlobalData")
    msg_id, gpos = _int(buf, gpos, pos, "msgID")
    _, gpos = _int(buf, gpos, pos, "msgMaxSize")
    s, gpos = _octets(buf, gpos, pos, "msgFlags", 1)
    if gpos - s != 1:
        raise ber.BerError("bad msgFlags")
    flags = buf[s]
    model, _ = _int(buf, gpos, pos, "msgSecurityModel")
    if model != SECURITY_MODEL_USM:
        raise ber.BerError("not USM")
    ps, pe = _octets(buf, pos, end, "msgSecurityParameters", 400)
    tag, q, qe = ber.read_tlv(buf, ps, pe)
    if tag != ber.SEQUENCE:
        raise ber.BerError("bad USM parameters")
    es, ee = _octets(buf, q, qe, "engine ID", 32)
    boots, q = _int(buf, ee, qe, "engine boots")
    engine_time, q = _int(buf, q, qe, "engine time")
    us, ue = _octets(buf, q, qe, "user name", 32)
    auth_at, auth_end = _octets(buf, ue, qe, "auth parameters", 64)
    pvs, pve = _octets(buf, auth_end, qe, "privacy parameters", 32)
    data_tag, ds, de = ber.read_tlv(buf, pe, end)
    if data_tag not in (ber.SEQUENCE, ber.OCTET_STRING):
        raise ber.BerError("bad msgData")
    return Reply(msg_id, flags, buf[es:ee], boots, engine_time, buf[us:ue], auth_at, auth_end - auth_at,
                 buf[pvs:pve], data_tag, ds, de)


@dataclass
class EngineClock:
    """What this client knows of one agent's engine: its ID, boots and time (RFC 3414 §2.3)."""

    engine_id: bytes
    boots: int
    latest_time: int      # latestReceivedEngineTime
    synced_at: float      # local monotonic seconds when latest_time was received

    def now(self, mono: float) -> int:
        """The local notion of the agent's snmpEngineTime."""
        return min(self.latest_time + max(0, int(mono - self.synced_at)), MAX_BOOTS)

    def timely(self, boots: int, engine_time: int, mono: float) -> bool:
        if boots >= MAX_BOOTS or boots < self.boots:
            return False
        return not (boots == self.boots and engine_time < self.now(mono) - TIME_WINDOW_S)

    def update(self, boots: int, engine_time: int, mono: float) -> None:
        """After an authenticated, timely message (or a time-window Report that proved itself)."""
        if boots > self.boots or (boots == self.boots and engine_time > self.latest_time):
            self.boots, self.latest_time, self.synced_at = boots, engine_time, mono


def verify(buf: bytes, reply: Reply, keys: UserKeys, clock: EngineClock, mono: float) -> tuple[bytes, int, int]:
    """The scopedPDU (buffer, content start, content end) of *reply* once it is proven to come
    from the agent's engine, for our user, signed with our key and timely; Rejected otherwise.
    Updates *clock* from an authenticated message."""
    if reply.engine_id != clock.engine_id:
        raise Rejected("wrong engine ID")
    if reply.user != keys.user:
        raise Rejected("wrong user")
    if reply.flags & FLAG_AUTH:
        mac = keys.mac_octets
        if reply.auth_len != mac:
            raise Rejected("bad digest")
        at = reply.auth_at
        zeroed = b"".join((buf[:at], bytes(mac), buf[at + mac:]))
        if not hmac.compare_digest(_mac(keys, zeroed), buf[at:at + mac]):
            raise Rejected("bad digest")
        if not clock.timely(reply.boots, reply.engine_time, mono):
            raise Rejected("not in time window")
        clock.update(reply.boots, reply.engine_time, mono)
    if reply.flags & FLAG_PRIV:
        if not reply.flags & FLAG_AUTH or not keys.priv or reply.data_tag != ber.OCTET_STRING:
            raise Rejected("bad security level")
        plain = decrypt(keys, reply.boots, reply.engine_time, reply.priv_params, buf[reply.data_start:reply.data_end])
        try:
            tag, s, e = ber.read_tlv(plain, 0, len(plain))  # DES may leave padding after it
        except ber.BerError:
            raise Rejected("cannot decrypt") from None
        if tag != ber.SEQUENCE:
            raise Rejected("cannot decrypt")
        return plain, s, e
    if reply.data_tag != ber.SEQUENCE:
        raise Rejected("bad security level")
    return buf, reply.data_start, reply.data_end


def open_scoped_pdu(buf: bytes, start: int, end: int) -> tuple[int, int, int, int, int, int]:
    """(PDU tag, request id, error status, error index, varbind list start, end) of a scopedPDU."""
    _, pos = _octets(buf, start, end, "contextEngineID", 32)
    _, pos = _octets(buf, pos, end, "contextName", 255)
    return ber.decode_pdu(buf, pos, end, strict=False)
