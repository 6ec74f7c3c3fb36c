"""What the SNMP poller's API speaks: credentials, endpoints and decoded values (no I/O).

Values come back as plain Python: ``int`` for every integer type, ``str`` for strings,
:class:`Oid` for object identifiers, :class:`Missing` for noSuchObject / noSuchInstance /
endOfMibView and for types we cannot use (Opaque, IpAddress, ...). Secrets live only in the
credential objects, whose ``repr`` hides them, and never appear in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dcim import snmp_ber as ber

# --- credentials (secrets hidden from repr, logs and errors) -------------------------------------


@dataclass(frozen=True)
class V2c:
    community: str = field(repr=False)

    def describe(self) -> str:
        return "v2c"


@dataclass(frozen=True)
class V3:
    user: str
    auth_key: str = field(repr=False)
    priv_key: str | None = field(default=None, repr=False)
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"
    context: str = ""

    def describe(self) -> str:
        level = "authPriv" if self.priv_key else "authNoPriv"
        return f"v3 user {self.user} {level} {self.auth_protocol}/{self.priv_protocol if self.priv_key else '-'}"


@dataclass(frozen=True)
class Endpoint:
    """One agent and how to talk to it."""

    host: str
    port: int = 161
    auth: V2c | V3 = V2c("public")
    timeout_s: float = 1.0
    retries: int = 1
    max_oids: int = 50            # varbinds per GET PDU
    max_repetitions: int = 25     # rows per GETBULK (Sentry3 firmware needs 4: reference §1.3)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def worst_case_s(self) -> float:
        """How long one unanswered request holds this target."""
        return self.timeout_s * (self.retries + 1)


# --- values --------------------------------------------------------------------------------------


class Oid(str):
    """An OBJECT IDENTIFIER value (dotted, no leading dot)."""


@dataclass(frozen=True)
class Missing:
    """No usable value: why (noSuchObject, noSuchInstance, endOfMibView, or a bad type)."""

    why: str

    def __bool__(self) -> bool:
        return False


NO_SUCH_OBJECT = Missing("noSuchObject")
NO_SUCH_INSTANCE = Missing("noSuchInstance")
END_OF_MIB = Missing("endOfMibView")

SnmpValue = int | str | Oid | Missing  # one varbind's value, decoded

_UNSIGNED = ber.UNSIGNED_TAGS  # Counter32, Gauge32/Unsigned32, TimeTicks, Counter64
_TYPE_NAMES = {0x05: "Null", 0x40: "IpAddress", 0x44: "Opaque"}


def value(tag: int, b: bytes) -> SnmpValue:
    """A varbind value from its BER tag and content octets."""
    if tag == 0x02:
        return int.from_bytes(b, "big", signed=True) if b else Missing("empty INTEGER")
    if tag in _UNSIGNED:
        return int.from_bytes(b, "big", signed=False) if b else Missing("empty integer")
    if tag == 0x04:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b.decode("latin-1")
    if tag == 0x06:
        return Oid(ber.decode_oid(b))
    if tag == 0x80:
        return NO_SUCH_OBJECT
    if tag == 0x81:
        return NO_SUCH_INSTANCE
    if tag == 0x82:
        return END_OF_MIB
    return Missing(f"unexpected type {_TYPE_NAMES.get(tag, hex(tag))}")
