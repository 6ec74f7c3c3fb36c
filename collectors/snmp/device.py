"""One SNMP device: discovery (profile, table rows, per-row scales) and one poll -> points.

Discovery runs once, again when the device's sysObjectID changes (a swapped or re-flashed
unit is re-detected), and every ``rediscover_s`` so added outlets or probes appear. It walks
table columns with GETBULK and caches what is static per device: the row indexes, Raritan
decimal digits, ENTITY-SENSOR scale/precision, Liebert row descriptions. A poll is then one
batched GET of sysObjectID plus every instance OID.

Decoding follows the metric contract: values are scaled to SI; sentinels (-1, negatives where
impossible, vendor codes), noSuchInstance/noSuchObject and values of the wrong type make the
field *absent* and are counted in :class:`DecodeStats`; counters are stored raw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from collectors.snmp import profiles as registry
from collectors.snmp.engine import SYS_OBJECT_ID, Endpoint, Missing, Oid, SnmpError, SnmpPoller
from collectors.snmp.profiles.probe_position import probe_position
from collectors.snmp.profiles.spec import Profile, Reading
from dcim.metrics import MEASUREMENTS, FieldValue, Point

log = logging.getLogger(__name__)


@dataclass
class DecodeStats:
    values: int = 0        # fields produced
    missing: int = 0       # noSuchInstance / noSuchObject / endOfMibView
    sentinel: int = 0      # vendor "not available" codes and impossible negatives
    garbage: int = 0       # wrong SMI type (a string where a number belongs, Opaque, ...)
    implausible: int = 0   # dropped by a profile's post rule

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Instance:
    """One OID to read every cycle and how to turn its value into a field."""

    oid: str
    reading: Reading
    index: tuple[int, ...]
    factor: float           # raw -> SI, including per-row decimal digits / entity scale
    labels: tuple[tuple[str, str], ...] = ()   # tags named by another column (Reading.tag_from)


@dataclass
class Plan:
    profile: Profile
    sys_object_id: str
    instances: list[Instance] = field(default_factory=list)
    discovered_at: float = 0.0


class DetectError(Exception):
    pass


def _index_of(oid: str, column_oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid[len(column_oid) + 1:].split(".") if p)


def _match_index(reading: Reading, index: tuple[int, ...]) -> bool:
    for pos, want in reading.match_index.items():
        try:
            have = index[pos]
        except IndexError:
            return False
        if (have not in want) if isinstance(want, tuple) else (have != want):
            return False
    return True


def _same(have: object, wanted: tuple) -> bool:
    """A walked value against a profile's wanted values (strings compared without padding)."""
    return (have.strip() if isinstance(have, str) else have) in wanted


async def _row_selected(reading: Reading, index: tuple[int, ...], column) -> bool:
    """Whether the row at *index* is one the reading reads (match_index, match_column, match_all)."""
    if not _match_index(reading, index):
        return False
    if reading.match_column is not None:
        pairs = (reading.match_column,) if isinstance(reading.match_column[0], str) else reading.match_column
        # the first of the columns that has this row decides
        have = [(v, ok) for other_oid, ok in pairs if (v := (await column(other_oid)).get(index)) is not None]
        if not have:
            if not any(None in ok for _, ok in pairs):
                return False
        elif not _same(have[0][0], have[0][1]):
            return False
    for other_oid, wanted in reading.match_all:
        if not _same((await column(other_oid)).get(index), wanted):
            return False
    return True


async def _row_factor(reading: Reading, index: tuple[int, ...], column, factor: float) -> float | None:
    """raw -> SI for one row: Raritan decimal digits, a per-row divisor column, ENTITY-SENSOR
    scale/precision. None: the row is not operational (ENTITY-SENSOR operStatus)."""
    if reading.digits_oid:
        key = tuple(index[p] for p in reading.digits_index) if reading.digits_index else index
        digits = (await column(reading.digits_oid)).get(key)
        if isinstance(digits, int) and 0 <= digits <= 9:
            factor *= 10.0 ** -digits
    if reading.divisor_oid:
        divisor = (await column(reading.divisor_oid)).get(index)
        if isinstance(divisor, int) and divisor > 0:
            factor /= divisor
    if reading.entity_scale:
        base = reading.oid.rsplit(".", 1)[0]
        status = (await column(base + ".5")).get(index)
        if status not in (None, 1):      # operStatus unavailable / nonoperational
            return None
        scale = (await column(base + ".2")).get(index)
        precision = (await column(base + ".3")).get(index)
        if isinstance(scale, int) and 1 <= scale <= 17:
            factor *= 10.0 ** (3 * (scale - 9))
        if isinstance(precision, int) and -8 <= precision <= 9:
            factor *= 10.0 ** -precision
    return factor


class SnmpDevice:
    """A device the collector polls: where it answers, its kind, tags and (after discovery) plan."""

    def __init__(self, name: str, kind: str | None, endpoint: Endpoint, tags: dict[str, str] | None = None,
                 profile: str = "auto", rediscover_s: float = 600.0, attrs: dict[str, float] | None = None):
        self.name = name
        self.kind = kind
        self.endpoint = endpoint
        self.tags = dict(tags or {})
        self.profile_name = profile
        self.rediscover_s = rediscover_s
        self.attrs = dict(attrs or {})   # device config the profile may scale by (capacity_kw)
        self.plan: Plan | None = None
        # Set by the collector: this device's own poll interval, and when it was last polled
        # (monotonic s); None: polled every tick.
        self.interval_s: float | None = None
        self.last_poll: float | None = None
        self.stats = DecodeStats()
        self.redetections = 0
        self._tag_cache: dict[int, tuple[dict[str, str], tuple]] = {}  # id(Instance) -> tags: static per plan
        self._logged: set[tuple] = set()   # faults already logged for this device (logged once each)

    # --- discovery -----------------------------------------------------------------------------

    def _endpoint_for(self, profile: Profile) -> Endpoint:
        ep = self.endpoint
        changes = {}
        if profile.max_oids and profile.max_oids < ep.max_oids:
            changes["max_oids"] = profile.max_oids
        if profile.max_repetitions and profile.max_repetitions < ep.max_repetitions:
            changes["max_repetitions"] = profile.max_repetitions
        if not changes:
            return ep
        return Endpoint(**{**ep.__dict__, **changes})

    async def _answers(self, poller: SnmpPoller, root: str) -> bool:
        """Whether the device has anything under *root* (a table, or a scalar object)."""
        try:
            return bool(await poller.walk(self.endpoint, root, max_rows=1))
        except SnmpError:
            return False

    async def _choose(self, poller: SnmpPoller, sys_oid: str) -> Profile:
        if self.profile_name and self.profile_name != "auto":
            return registry.get_profile(self.profile_name, self.kind)
        found = registry.candidates(sys_oid, self.kind) if sys_oid else []
        if len(found) == 1:
            return found[0]
        if found:
            return await self._choose_among(poller, sys_oid, found)
        for candidate in registry.probe_candidates(self.kind):
            oid = candidate.probe_oid
            if not oid:  # probe_candidates lists only profiles that have one
                continue
            if candidate.probe_is_table:
                if await self._answers(poller, oid):
                    return candidate
            else:
                got = await poller.get(self.endpoint, [oid])
                if not isinstance(got.get(oid), Missing):
                    return candidate
        raise DetectError(f"no profile matches sysObjectID {sys_oid or '(none)'}; "
                          "set snmp.profile in the config")

    async def _choose_among(self, poller: SnmpPoller, sys_oid: str, found: list[Profile]) -> Profile:
        """Several profiles share the sysObjectID: the first whose identity subtree answers; none
        answers: the first without an identity (the family's default), else the first. Logged once."""
        chosen, why = None, ""
        for profile in found:
            for root in profile.identity:
                if await self._answers(poller, root):
                    chosen, why = profile, f"{root} answered"
                    break
            if chosen:
                break
        if chosen is None:
            chosen = next((p for p in found if not p.identity), found[0])
            why = "no identity object answered"
        self._log_once(("choose", sys_oid, chosen.name), logging.INFO,
                       "%s: sysObjectID %s matches %s; chose %s (%s)", self.name, sys_oid,
                       ", ".join(p.name for p in found), chosen.name, why)
        return chosen

    def _log_once(self, key: tuple, level: int, msg: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args)

    async def discover(self, poller: SnmpPoller, sys_oid: str | None = None) -> Plan:
        if sys_oid is None:
            got = await poller.get(self.endpoint, [SYS_OBJECT_ID])
            value = got.get(SYS_OBJECT_ID)
            sys_oid = str(value) if isinstance(value, str) else ""
        profile = await self._choose(poller, sys_oid)
        ep = self._endpoint_for(profile)
        walked: dict[str, dict[tuple[int, ...], object]] = {}

        async def column(oid: str) -> dict[tuple[int, ...], object]:
            if oid not in walked:
                walked[oid] = self._rows(oid, await poller.walk(ep, oid))
            return walked[oid]

        instances: list[Instance] = []
        for reading in profile.readings:
            base_factor = reading.scale
            if reading.device_factor:
                attr = self.attrs.get(reading.device_factor)
                if attr is None:
                    continue
                base_factor *= attr
            if not reading.table:
                instances.append(Instance(reading.oid, reading, (), base_factor))
                continue
            rows = await column(reading.oid)
            for index in rows:
                if not await _row_selected(reading, index, column):
                    continue
                factor = await _row_factor(reading, index, column, base_factor)
                if factor is None:
                    continue
                labels = []
                for tag, other_oid in reading.tag_from.items():
                    if (name := (await column(other_oid)).get(index)) is not None:
                        labels.append((tag, str(name)))
                if reading.position_from and (name := (await column(reading.position_from)).get(index)) is not None:
                    labels.append(("position", probe_position(name, reading.tags.get("position", "inlet"))))
                instances.append(Instance(f"{reading.oid}.{'.'.join(map(str, index))}", reading, index, factor,
                                          tuple(labels)))
        silent = sorted({r.oid for r in profile.readings if r.table and not walked.get(r.oid)})
        if silent:
            # A device answering some tables and not others (a model without outlet metering, a
            # card without the probe): the rest decodes; say once which tables were empty.
            self._log_once(("silent", profile.name, tuple(silent)), logging.INFO,
                           "%s: profile %s: %d of %d table columns answered nothing: %s", self.name,
                           profile.name, len(silent), len({r.oid for r in profile.readings if r.table}),
                           ", ".join(silent))
        self.plan = Plan(profile, sys_oid, instances, time.monotonic())
        self._tag_cache = {}
        return self.plan

    def _rows(self, column_oid: str, rows: list) -> dict[tuple[int, ...], object]:
        """Walked rows by index. A walk must come back in increasing OID order; an agent that
        loops (an OID not after the previous one) or strays out of the column is cut there, the
        rows before it kept, and the fault logged once."""
        out: dict[tuple[int, ...], object] = {}
        prev: tuple[int, ...] | None = None
        for oid, value in rows:
            try:
                index = _index_of(oid, column_oid) if oid.startswith(column_oid + ".") else None
            except ValueError:
                index = None
            if not index or (prev is not None and index <= prev):
                self._log_once(("walk", column_oid), logging.WARNING,
                               "%s: walk of %s went back or out of the table at %s (after %d rows); "
                               "the rows before it are kept", self.name, column_oid, oid, len(out))
                break
            out[index] = value
            prev = index
        return out

    # --- polling -------------------------------------------------------------------------------

    def needs_discovery(self, now: float | None = None) -> bool:
        """No plan yet, or the plan is older than ``rediscover_s``."""
        now = time.monotonic() if now is None else now
        return self.plan is None or now - self.plan.discovered_at > self.rediscover_s

    async def poll(self, poller: SnmpPoller, rediscover: bool = True) -> list[Point]:
        """Read the device once. Raises SnmpError / DetectError; the collector reports them.
        *rediscover* False: read with the current plan even if it is due for rediscovery (the
        collector rediscovers in the background)."""
        plan = self.plan
        if plan is None or (rediscover and self.needs_discovery()):
            plan = await self.discover(poller)
        ep = self._endpoint_for(plan.profile)
        oids = [SYS_OBJECT_ID] + list(dict.fromkeys(i.oid for i in plan.instances))
        values = await poller.get(ep, oids)
        sys_oid = values.get(SYS_OBJECT_ID)
        if isinstance(sys_oid, str) and plan.sys_object_id and sys_oid != plan.sys_object_id:
            # The device changed model (swapped unit, new firmware): detect again, read again.
            self.redetections += 1
            plan = await self.discover(poller, str(sys_oid))
            ep = self._endpoint_for(plan.profile)
            values = await poller.get(ep, [i.oid for i in plan.instances])
        return self.decode(plan, values)

    # --- decoding ------------------------------------------------------------------------------

    def _tags(self, reading: Reading, index: tuple[int, ...]) -> dict[str, str]:
        allowed = MEASUREMENTS[reading.measurement].tags
        tags = {k: v for k, v in self.tags.items() if k in allowed}
        own = _OWN_TAG.get(reading.measurement)
        for tag, pos in reading.index_tags.items():
            name = _row_name(reading, index, pos) if index else ""
            if tag == "sensor" or tag == own:
                # A row naming a sensor or a unit (one Stulz board serves units 1..n) carries the
                # device's name too: two boards in one room never share "unit=3".
                tags[tag] = f"{self.name}-{name}" if index else self.name
            else:
                tags[tag] = name
        if reading.measurement == "env" and "sensor" not in tags:
            tags["sensor"] = self.name
        tags.update(reading.tags)
        # A device probed without an inventory still names itself in the measurement's own tag.
        if own and own not in tags:
            tags[own] = self.name
        return tags

    def _value(self, inst: Instance, raw: object, stats: DecodeStats) -> FieldValue | None:
        r = inst.reading
        if isinstance(raw, Missing):
            if raw.why.startswith("unexpected type"):
                stats.garbage += 1
            else:
                stats.missing += 1
            return None
        if raw is None:
            stats.missing += 1
            return None
        if isinstance(raw, (str, Oid)) or not isinstance(raw, int):
            stats.garbage += 1
            return None
        if raw in r.sentinels or (raw < 0 and not r.allow_negative):
            stats.sentinel += 1
            return None
        if r.enum is not None:
            return r.enum.get(raw, r.enum_default)
        kind = MEASUREMENTS[r.measurement].fields[r.field].kind
        value = raw * inst.factor + r.offset      # offset: a unit whose zero is not SI's (°F)
        return int(round(value)) if kind is int else float(round(value, 9))

    def decode(self, plan: Plan, values: Mapping[str, object], time_ns: int | None = None) -> list[Point]:
        stats = DecodeStats()
        now = time.time_ns() if time_ns is None else time_ns
        fields: dict[tuple, dict[str, FieldValue]] = {}
        tags_of: dict[tuple, dict[str, str]] = {}
        aggregates: dict[tuple, list] = {}   # (point key, field, agg, fallback, reading) -> values
        incomplete: set[tuple] = set()
        for inst in plan.instances:
            r = inst.reading
            value = self._value(inst, values.get(inst.oid), stats)
            cached = self._tag_cache.get(id(inst))
            if cached is None:
                tags = self._tags(r, () if r.agg else inst.index)
                if not r.agg:
                    tags.update(inst.labels)
                cached = self._tag_cache[id(inst)] = (tags, (r.measurement, tuple(sorted(tags.items()))))
            tags, key = cached
            tags_of.setdefault(key, tags)
            fields.setdefault(key, {})
            agg_key = (key, r.field, r.agg, r.fallback, id(r))
            if value is None:
                # A total over rows with one row missing would be silently low: no total at all.
                if r.agg == "sum":
                    incomplete.add(agg_key)
                continue
            aggregates.setdefault(agg_key, []).append(value)
        for agg_key in incomplete:
            aggregates.pop(agg_key, None)
        # Primary readings first, then fallbacks fill what is still absent (in profile order).
        for want_fallback in (False, True):
            for (key, name, agg, fallback, _), vals in aggregates.items():
                if fallback != want_fallback:
                    continue
                if fallback and name in fields[key]:
                    continue
                fields[key][name] = _reduce(vals, agg)
        points = []
        for key, flds in fields.items():
            for rule in plan.profile.post:
                POST_RULES[rule](key[0], flds, stats)
            if flds:
                stats.values += len(flds)
                points.append(Point(key[0], dict(tags_of[key]), flds, now))
        self.stats = stats
        return points


# The tag naming the device itself in each measurement (dcim/metrics.py).
_OWN_TAG = {"pdu": "pdu", "pdu_phase": "pdu", "pdu_breaker": "pdu", "pdu_outlet": "pdu", "cooling": "unit",
            "ups": "ups", "meter": "meter"}


def _row_name(reading: Reading, index: tuple[int, ...], pos: int) -> str:
    """The row's tag: its own index part, prefixed by the unit parts (tower, cord) unless they all
    name the first unit (see Reading.unit_index)."""
    leaf = str(index[pos])
    units = reading.unit_index
    if not units or all(index[p] == first for p, first in units.items() if p < len(index)):
        return leaf
    return ".".join([str(index[p]) for p in sorted(units, key=lambda p: p % len(index))] + [leaf])


def _reduce(values: list, agg: str | None) -> FieldValue:
    if agg in (None, "first") or len(values) == 1:
        return values[0]
    if agg == "sum":
        return float(round(sum(values), 9))
    if agg == "max":
        return max(values)
    if agg == "mean":
        return float(round(sum(values) / len(values), 9))
    raise ValueError(f"unknown aggregate {agg!r}")


def _ups_input_below_output(measurement: str, flds: dict, stats: DecodeStats) -> None:
    """On mains, a UPS draws at least what it delivers; an input reading below the output (the
    Eaton 93E's upsInputTruePower = 0) means the input is not really measured: drop it."""
    if measurement != "ups" or flds.get("on_battery"):
        return
    inp, out = flds.get("input_power_w"), flds.get("output_power_w")
    if inp is not None and out is not None and inp < out:
        del flds["input_power_w"]
        stats.implausible += 1


POST_RULES = {"ups_input_below_output": _ups_input_below_output}

__all__ = ["DecodeStats", "DetectError", "Instance", "Plan", "SnmpDevice", "SnmpError"]
