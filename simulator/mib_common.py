"""The vocabulary the per-vendor ``mib_*`` modules use to describe a device MIB as data.

A profile is a list of scalars and tables. Each object names its OID, its SMI syntax, how to get
the SI value from the twin's reading, and the vendor's scale (raw = round(value * scale)). The
agent (``simulator.snmp_agents``) turns a profile plus a reading into a sorted OID → value table;
nothing here knows about SNMP transport.

Value functions return ``None`` when the device does not have that reading: the OID is then
absent from the walk (as on a real device without that sensor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pysnmp.proto import rfc1902

INT = rfc1902.Integer32
GAUGE = rfc1902.Gauge32  # also Unsigned32 on the wire
COUNTER = rfc1902.Counter32
COUNTER64 = rfc1902.Counter64
STR = rfc1902.OctetString
OID = rfc1902.ObjectIdentifier
TICKS = rfc1902.TimeTicks

Index = tuple[int, ...]


def oid(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.strip(".").split("."))


@dataclass(frozen=True)
class Scalar:
    """One scalar object; ``oid`` is the object OID without the trailing ``.0``."""

    oid: str
    syntax: type
    value: Callable[[Any, Any], Any]  # (device config, reading) -> SI value / str / OID string
    scale: float | None = None  # None: the value is already what goes on the wire
    measure: bool = False  # a measurement: replaced by the sentinel / garbage faults


@dataclass(frozen=True)
class Column:
    sub: int  # column number under the table entry
    syntax: type
    value: Callable[[Any, Any, Any, Index], Any]  # (device config, reading, row item, row index)
    scale: float | None = None
    measure: bool = False


@dataclass(frozen=True)
class Table:
    """A conceptual table: ``entry`` OID, row indexes from ``rows``, one value per column."""

    entry: str
    rows: Callable[[Any, Any], Iterable[tuple[Index, Any]]]  # (device config, reading) -> [(index, item)]
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Profile:
    name: str  # what `snmp.profile` in the config names (see snmp_agents.agent_profile_for)
    kind: str  # pdu, cooling, ups, meter
    vendor: str
    model: str
    sys_object_id: str
    sys_descr: str
    objects: tuple[Scalar | Table, ...] = field(default_factory=tuple)


def raw(value: Any, scale: float | None) -> Any:
    """Apply the vendor scale. Rounded, because real agents report integers."""
    if scale is None or value is None or isinstance(value, str):
        return value
    return int(round(float(value) * scale))


def ROW_NUMBER(dev: Any, reading: Any, item: Any, index: Index) -> int:  # noqa: N802 - used like a constant
    """The usual ``xxxIndex`` column: the last component of the row index."""
    return index[-1]


def enumerate_rows(items: Iterable[Any], start: int = 1) -> list[tuple[Index, Any]]:
    """Rows indexed 1..N, the usual SNMP table layout."""
    return [((i,), item) for i, item in enumerate(items, start)]
