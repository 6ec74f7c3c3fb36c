"""The shape of a device profile: device knowledge as data.

A :class:`Profile` lists :class:`Reading` s. A reading is either a *scalar* (one instance OID)
or a *table column* (its instances are found by a GETBULK walk at discovery and then read
with batched GETs every cycle). Each reading says where its value lands in the metric
contract (measurement + field), how to scale the raw integer, which table index components
become tags, and which raw values are sentinels meaning "not available".

Per-row selection (``match_index`` / ``match_column``) lets generic sensor tables (Raritan
PDU2, ENTITY-SENSOR-MIB, Liebert temperature tables) be described as data: "rows of this
column whose sensor type is 5 are the active power".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dcim.metrics import FieldValue


@dataclass(frozen=True)
class Reading:
    # dataclasses.field spelled out below: the attribute ``field`` shadows the name in this body
    oid: str                            # scalar instance OID, or the column OID when table=True
    measurement: str
    field: str
    scale: float = 1.0                  # SI value = raw * scale (* 10^-digits when digits_oid is set) + offset
    # Added after scaling: a unit whose zero is not SI's (Fahrenheit: see fahrenheit()).
    offset: float = 0.0
    table: bool = False
    # Table index component -> tag. ``{"outlet": -1}`` tags each row with its last index part.
    # tag_from: tag -> a column (same index) whose value names the row instead, read at discovery
    # (APC's legacy rPDULoadStatusTable: row 3 is bank 2, named by rPDULoadStatusBankNumber).
    index_tags: dict[str, int] = dataclasses.field(default_factory=dict)
    # Index parts that name the unit the row belongs to (tower, daisy-chained unit, input cord),
    # as {position: the first unit's value}. The tag is then the whole index: rows of the first
    # unit keep the short name ("3"), any other unit's rows carry the unit parts too ("2.1.3"),
    # so a link tower's phase 1 never collides with the master's and adding a tower renames nothing.
    unit_index: dict[int, int] = dataclasses.field(default_factory=dict)
    tag_from: dict[str, str] = dataclasses.field(default_factory=dict)
    # Roll a table up into one value per point: "sum", "max", "mean" or "first" (None: one point per row).
    agg: str | None = None
    # Only rows whose index has these components: {position: value or tuple of values}.
    match_index: dict[int, int | tuple[int, ...]] = dataclasses.field(default_factory=dict)
    # Only rows where another column (same index) equals one of the values; read at discovery.
    # Several (column, values) pairs: the first column that has the row decides. None among the
    # values accepts a row that none of the columns has (a scale object the firmware leaves out).
    match_column: tuple[str, tuple] | tuple[tuple[str, tuple], ...] | None = None
    # Only rows where EVERY listed column (same index) holds one of its values, read at discovery:
    # description/unit tables (APC coolingUnit: description "Supply Air Temperature" and units "C").
    match_all: tuple[tuple[str, tuple], ...] = ()
    # A column (same index) holding each row's divisor, read at discovery: SI = raw / divisor * scale.
    divisor_oid: str | None = None
    # Raritan: number of decimal digits in another column, read at discovery and cached.
    digits_oid: str | None = None
    digits_index: tuple[int, ...] | None = None     # which index parts address the digits column
    # ENTITY-SENSOR-MIB: scale (enum) and precision columns, read at discovery and cached.
    entity_scale: bool = False
    # Raw values that mean "not available" (besides noSuchInstance/noSuchObject/wrong types).
    sentinels: tuple[int, ...] = (-1,)
    allow_negative: bool = False        # readings that may really be negative (temperatures)
    # Map raw enum values to a field value (e.g. upsOutputSource 5 -> on_battery True).
    enum: dict[int, FieldValue] | None = None
    enum_default: FieldValue | None = None
    # Only fill the field if a higher-priority reading did not (readings are applied in order).
    fallback: bool = False
    # Multiply by an attribute of the device's config (e.g. "capacity_kw"); skipped without it.
    device_factor: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)  # constant extra tags (position="inlet")
    # A column (same index) holding the probe's name, read at discovery: a rear/exhaust/outlet
    # name makes the row's position "outlet" instead of tags' (probe_position.py).
    position_from: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str                            # pdu, cooling, ups, meter
    description: str
    sys_object_ids: tuple[str, ...] = ()  # sysObjectID prefixes that select this profile under "auto"
    readings: tuple[Reading, ...] = ()
    # Checks applied after decoding, by name (see decode.POST_RULES), e.g. a UPS whose input
    # power reads below its output power while on mains is not really reporting input power.
    post: tuple[str, ...] = ()
    max_oids: int | None = None          # per-profile override of varbinds per GET
    max_repetitions: int | None = None   # per-profile override of GETBULK rows
    # A probe OID that must answer for this profile to be picked when no sysObjectID matches
    # (generic MIBs implemented by many vendors, e.g. UPS-MIB, ENTITY-SENSOR-MIB).
    probe_oid: str | None = None
    probe_is_table: bool = False
    # Subtrees (a table, or a scalar's object OID without ".0") of which at least one answers on
    # the devices this profile is for: decides between profiles sharing a sysObjectID prefix
    # (every Liebert IntelliSlot card reports the same one, UPS or cooling unit).
    identity: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()        # other names configs and the twin use for this profile


# °F -> °C is (F - 32) * 5/9: a raw value in 1/n °F has scale 5/(9n) and offset -160/9.
F_TO_C_OFFSET = -32.0 * 5.0 / 9.0


def fahrenheit(raw_per_degree: float = 1.0) -> dict:
    """Reading keywords turning a raw value in 1/raw_per_degree °F into °C (10: tenths of °F)."""
    return {"scale": 5.0 / 9.0 / raw_per_degree, "offset": F_TO_C_OFFSET}


def scalar(oid: str, measurement: str, field_: str, scale: float = 1.0, **kw) -> Reading:
    return Reading(oid=oid, measurement=measurement, field=field_, scale=scale, **kw)


def column(oid: str, measurement: str, field_: str, scale: float = 1.0, **kw) -> Reading:
    return Reading(oid=oid, measurement=measurement, field=field_, scale=scale, table=True, **kw)
