"""SNMP walks in snmprec form (``OID|TAG|VALUE`` a line, as snmpsim serves them): read one and
answer a device's GETs and walks from it offline (``dcim probe --walk FILE``), or write one from
a live device (``dcim probe HOST --save-walk FILE``), so supporting a new model takes a walk and
a table, not a site visit.

A walk file with OIDs out of order (a looping walk, a hand-merged file) is sorted; an OID given
twice keeps its first value; both are counted and logged once. A line that is not
``OID|TAG|VALUE`` is an error naming the file and line.
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path

from collectors.snmp.engine import NO_SUCH_INSTANCE, Missing, Oid

log = logging.getLogger(__name__)

# snmprec type tags (snmpsim): the SMI type of each value.
INTEGER, OCTET_STRING, OBJECT_ID, IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, COUNTER64 = 2, 4, 6, 64, 65, 66, 67, 70
_INT_TAGS = {INTEGER, COUNTER32, GAUGE32, TIMETICKS, COUNTER64}
# The subtrees a saved walk holds besides the device's own enterprise branch.
STANDARD_ROOTS = ("1.3.6.1.2.1.1", "1.3.6.1.2.1.33", "1.3.6.1.2.1.47.1.1.1", "1.3.6.1.2.1.99",
                  "1.3.6.1.2.1.229", "1.3.6.1.2.1.230")


class WalkFileError(ValueError):
    pass


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip(".").split("."))


def _value(tag_text: str, value: str, where: str):
    tag = tag_text.rstrip("x")
    try:
        tag_n = int(tag)
    except ValueError:
        raise WalkFileError(f"{where}: type tag {tag_text!r} is not a number") from None
    if tag_text.endswith("x"):  # hex-encoded value
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise WalkFileError(f"{where}: {value!r} is not hex") from None
        if tag_n in _INT_TAGS:
            return int.from_bytes(raw, "big")
        return raw.decode("utf-8", errors="replace")
    if tag_n in _INT_TAGS:
        try:
            return int(value)
        except ValueError:
            raise WalkFileError(f"{where}: {value!r} is not an integer (type {tag_n})") from None
    if tag_n == OBJECT_ID:
        return Oid(value.strip("."))
    return value


def parse(text: str, name: str = "walk") -> tuple[list[tuple[int, ...]], list[str], list[object], dict[str, int]]:
    """Sorted keys, OIDs and values of a snmprec text, and what was repaired (out_of_order, duplicates)."""
    rows: dict[tuple[int, ...], tuple[str, object]] = {}
    faults = {"out_of_order": 0, "duplicates": 0}
    last: tuple[int, ...] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("|", 2)
        where = f"{name}:{n}"
        if len(parts) != 3:
            raise WalkFileError(f"{where}: expected OID|TAG|VALUE, got {line[:60]!r}")
        oid, tag, value = parts
        try:
            key = _key(oid)
        except ValueError:
            raise WalkFileError(f"{where}: {oid!r} is not a numeric OID") from None
        if key in rows:
            faults["duplicates"] += 1
            continue
        if last is not None and key < last:
            faults["out_of_order"] += 1
        last = key
        rows[key] = (".".join(map(str, key)), _value(tag, value, where))
    keys = sorted(rows)
    return keys, [rows[k][0] for k in keys], [rows[k][1] for k in keys], faults


class WalkPoller:
    """Answers :class:`~collectors.snmp.device.SnmpDevice`'s ``get`` and ``walk`` from a walk file,
    whatever endpoint it is asked about (no network)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise WalkFileError(f"cannot read walk {self.path}: {exc.strerror or exc}") from None
        self._keys, self._oids, self._values, self.faults = parse(text, str(self.path))
        self._index = dict(zip(self._oids, self._values))
        if any(self.faults.values()):
            log.warning("%s: %d OID(s) out of order (sorted), %d given twice (first kept)", self.path,
                        self.faults["out_of_order"], self.faults["duplicates"])
        self.requests = 0

    def __len__(self) -> int:
        return len(self._oids)

    async def get(self, ep, oids: list[str]) -> dict[str, object]:
        self.requests += 1
        return {oid: self._index.get(oid.strip("."), NO_SUCH_INSTANCE) for oid in oids}

    async def walk(self, ep, root: str, max_rows: int = 10000) -> list[tuple[str, object]]:
        self.requests += 1
        prefix = _key(root)
        start = bisect.bisect_right(self._keys, prefix)
        out: list[tuple[str, object]] = []
        for i in range(start, len(self._keys)):
            if self._keys[i][:len(prefix)] != prefix or len(out) >= max_rows:
                break
            out.append((self._oids[i], self._values[i]))
        return out

    def stats(self) -> dict[str, int]:
        return {"replies_unsolicited": 0, "replies_garbled": 0, "replies_bad": 0}

    def close(self) -> None:
        pass


def snmprec_line(oid: str, value: object) -> str | None:
    """One snmprec line for a decoded value. The poller gives values, not SMI types: integers are
    written Integer32 when negative, Gauge32 up to 2^32-1, Counter64 above; strings as text, or hex
    when not printable; missing values are left out (None)."""
    if isinstance(value, Missing):
        return None
    if isinstance(value, Oid):
        return f"{oid}|{OBJECT_ID}|{value}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    if isinstance(value, int):
        tag = INTEGER if value < 0 else GAUGE32 if value < 2 ** 32 else COUNTER64
        return f"{oid}|{tag}|{value}"
    if value.isprintable() and "|" not in value and "\n" not in value:
        return f"{oid}|{OCTET_STRING}|{value}"
    return f"{oid}|{OCTET_STRING}x|{value.encode('utf-8', errors='replace').hex()}"


async def record(poller, ep, sys_object_id: str, max_rows: int = 50000) -> list[str]:
    """A device's walk in snmprec lines: the standard subtrees and its enterprise branch."""
    roots = list(STANDARD_ROOTS)
    parts = sys_object_id.strip(".").split(".")
    if parts[:6] == ["1", "3", "6", "1", "4", "1"] and len(parts) > 6:
        roots.append(".".join(parts[:7]))
    lines: dict[tuple[int, ...], str] = {}
    for root in roots:
        for oid, value in await poller.walk(ep, root, max_rows=max_rows):
            line = snmprec_line(oid.strip("."), value)
            if line is not None:
                lines.setdefault(_key(oid), line)
    return [lines[k] for k in sorted(lines)]
