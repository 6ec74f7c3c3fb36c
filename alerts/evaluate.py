"""Rules over readings: pure functions, no I/O, no clock.

``evaluate`` turns each rule's latest readings into ``Finding``s keyed by (rule, entity): one
per device, its parts in alarm listed. A finding with ``severity`` None is evidence that the
device is fine (it clears an active alarm); a device with no fresh reading gets no finding at
all, and an active alarm about it stays as it is: a missing reading is never a recovery.

Hysteresis: while an alarm is active at a severity, that level (and those below it) is held
until the reading is ``hysteresis`` inside it; ``active`` gives each active alarm's severity.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

from alerts.rules import Rule
from dcim.metrics import Point

RANK = {None: 0, "warning": 1, "critical": 2}
ORDER = ("critical", "warning")


@dataclass
class Context:
    now_ns: int
    derate: float = 0.8  # breaker derate ([optimizer] breaker_derate)
    breaker_a: dict = field(default_factory=dict)  # pdu name -> rated current from the config
    ashrae_class: dict = field(default_factory=dict)  # rack -> class
    max_age_ns: dict = field(default_factory=dict)  # measurement -> a reading older is not evidence
    silent_after_ns: dict = field(default_factory=dict)  # interval name -> silence that raises
    active: dict = field(default_factory=dict)  # (rule, entity) -> severity of the active alarm


@dataclass
class Finding:
    rule: str
    entity: str
    severity: str | None
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    parts: tuple[str, ...] = ()
    summary: str = ""
    time_ns: int = 0


class _Tags(dict):
    """Formatting a template never fails on a missing tag: it shows '?'."""

    def __missing__(self, key):
        return "?"


def _fmt(template: str, values: dict) -> str:
    try:
        return template.format_map(_Tags(values))
    except (ValueError, TypeError, IndexError):  # a number format on a missing value
        return template


def _compile(template: str):
    """A tag template ("{host}/gpu{gpu}") as a fast function of the tags: evaluate formats one
    entity per reading, 50,000 of them a cycle on a large site."""
    pieces = [(lit, name) for lit, name, _, _ in string.Formatter().parse(template)]
    if len(pieces) == 1 and not pieces[0][0] and pieces[0][1]:
        name = pieces[0][1]
        return lambda tags: tags.get(name, "?")

    def fmt(tags: dict) -> str:
        return "".join(lit + (tags.get(name, "?") if name else "") for lit, name in pieces)
    return fmt


@dataclass
class _Part:
    severity: str | None
    value: float
    threshold: float | None
    time_ns: int
    extra: dict


class _Groups:
    """Parts gathered per entity while a rule's readings are walked."""

    def __init__(self, rule: Rule, ctx: Context | None = None):
        self.rule = rule
        self.by_entity: dict[str, tuple[dict, dict[str, _Part]]] = {}
        self.entity_of = _compile(rule.entity)
        self._part_of = _compile(rule.part) if rule.part else (lambda tags: "")
        # The rule's active alarms: only their devices need "fine" evidence.
        self.active = {e: sev for (r, e), sev in (ctx.active.items() if ctx else ()) if r == rule.name}

    def add(self, tags: dict, part: _Part, entity: str | None = None) -> None:
        entity = self.entity_of(tags) if entity is None else entity
        name = self._part_of(tags)
        slot = self.by_entity.get(entity)
        if slot is None:
            slot = self.by_entity[entity] = (tags, {})
        slot[1][name] = part

    def findings(self, worst_is_low: bool = False) -> Iterable[Finding]:
        rule = self.rule
        for entity, (tags, parts) in self.by_entity.items():
            firing = {n: p for n, p in parts.items() if p.severity}
            pool = firing or parts
            top = max(pool.values(), key=lambda p: (RANK[p.severity], -p.value if worst_is_low else p.value))
            f = Finding(rule.name, entity, top.severity, top.value, top.threshold, rule.unit,
                        tuple(sorted(n for n in firing if n)), time_ns=max(p.time_ns for p in parts.values()))
            if f.severity:
                f.summary = _fmt(rule.summary, {**tags, **top.extra, "entity": entity, "value": f.value,
                                                "threshold": f.threshold, "unit": rule.unit, "rule": rule.name,
                                                "parts": ", ".join(f.parts) or entity, "severity": f.severity})
            yield f


def _matches(p: Point, where: dict) -> bool:
    tags = p.tags
    return all(tags.get(k) == v for k, v in where.items())


def _level(value: float, rule: Rule, active: str | None) -> tuple[str | None, float | None]:
    side, levels = rule.levels
    held = RANK[active]
    for sev in ORDER:
        level = levels.get(sev)
        if level is None:
            continue
        margin = rule.hysteresis if held >= RANK[sev] else 0.0
        if (value > level - margin) if side == "above" else (value < level + margin):
            return sev, level
    return None, None


def _first_level(rule: Rule) -> float:
    side, levels = rule.levels
    return min(levels.values()) if side == "above" else max(levels.values())


def _threshold(rule: Rule, points: list[Point], ctx: Context) -> Iterable[Finding]:
    groups = _Groups(rule, ctx)
    side, _ = rule.levels
    first = _first_level(rule)
    actives = groups.active
    watched = bool(actives)  # actives need their "fine" evidence too
    oldest = ctx.now_ns - ctx.max_age_ns.get(rule.measurement, 1 << 62)
    fld, ratio_of, where, when = rule.field, rule.ratio_of, rule.where, rule.when
    for p in points:
        if p.time_ns < oldest:
            continue
        v = p.fields.get(fld)
        if v is None or (where and not _matches(p, where)):
            continue
        if when and any(p.fields.get(k) != want for k, want in when.items()):
            continue
        v = float(v)
        if ratio_of:
            limit = p.fields.get(ratio_of) or ctx.breaker_a.get(p.tags.get("pdu"))
            if not limit:
                continue
            v = 100.0 * v / (float(limit) * ctx.derate)
        over = (v > first) if side == "above" else (v < first)
        if not over and not watched:
            continue
        entity = groups.entity_of(p.tags)
        active = actives.get(entity)
        if not over and active is None:
            continue
        sev, level = _level(v, rule, active)
        groups.add(p.tags, _Part(sev, v, level, p.time_ns, {}), entity)
    return groups.findings(worst_is_low=side == "below")


def _feed_sum(rule: Rule, points: list[Point], ctx: Context) -> Iterable[Finding]:
    """A and B currents per rack and phase, against the weakest feed's derated breaker."""
    oldest = ctx.now_ns - ctx.max_age_ns.get(rule.measurement, 1 << 62)
    entity_of, part_of = _compile(rule.entity), _compile(rule.part)
    sums: dict[tuple, list] = {}  # (rack, part tags) -> [feeds, amps, limit, t, tags]
    for p in points:
        v = p.fields.get(rule.field)
        if p.time_ns < oldest or v is None or (rule.where and not _matches(p, rule.where)):
            continue
        limit = p.fields.get(rule.ratio_of) or ctx.breaker_a.get(p.tags.get("pdu"))
        if not limit:
            continue
        key = (entity_of(p.tags), part_of(p.tags))
        s = sums.setdefault(key, [set(), 0.0, float("inf"), 0, p.tags])
        s[0].add(p.tags.get("feed"))
        s[1] += float(v)
        s[2] = min(s[2], float(limit) * ctx.derate)
        s[3] = max(s[3], p.time_ns)
    groups = _Groups(rule)
    for (entity, _), (feeds, amps, limit, t, tags) in sums.items():
        if not {"A", "B"} <= feeds:
            continue
        v = 100.0 * amps / limit
        sev, level = _level(v, rule, ctx.active.get((rule.name, entity)))
        groups.add(tags, _Part(sev, v, level, t, {}))
    return groups.findings()


def _ashrae(rule: Rule, points: list[Point], ctx: Context) -> Iterable[Finding]:
    groups = _Groups(rule, ctx)
    oldest = ctx.now_ns - ctx.max_age_ns.get(rule.measurement, 1 << 62)
    for p in points:
        v = p.fields.get(rule.field)
        if p.time_ns < oldest or v is None or (rule.where and not _matches(p, rule.where)):
            continue
        cls = ctx.ashrae_class.get(p.tags.get("rack"), "A1")
        rec, allow = rule.ashrae.get(cls) or rule.ashrae["A1"]
        held = RANK[groups.active.get(groups.entity_of(p.tags))]
        part = _Part(None, float(v), None, p.time_ns, {"cls": cls})
        for sev, (lo, hi), envelope in (("critical", allow, "allowable"), ("warning", rec, "recommended")):
            margin = rule.hysteresis if held >= RANK[sev] else 0.0
            if v > hi - margin or v < lo + margin:
                part.severity, part.threshold = sev, (hi if v > (lo + hi) / 2 else lo)
                part.extra.update(envelope=envelope, lo=lo, hi=hi)
                break
        groups.add(p.tags, part)
    return groups.findings()


def _flag(rule: Rule, points: list[Point], ctx: Context) -> Iterable[Finding]:
    groups = _Groups(rule)
    oldest = ctx.now_ns - ctx.max_age_ns.get(rule.measurement, 1 << 62)
    patterns = [(f, re.compile(rx), True) for f, rx in rule.pattern.items()]
    patterns += [(f, re.compile(rx), False) for f, rx in rule.pattern_not.items()]
    for p in points:
        v = p.fields.get(rule.field)
        if p.time_ns < oldest or v is None or (rule.where and not _matches(p, rule.where)):
            continue
        hit = v == rule.equals and all(bool(rx.search(str(p.fields.get(f) or ""))) == want
                                       for f, rx, want in patterns)
        extra = {k: (str(x)[:160] if isinstance(x, str) else x) for k, x in p.fields.items()}
        groups.add(p.tags, _Part(rule.severity if hit else None, 1.0 if hit else 0.0, None, p.time_ns, extra))
    return groups.findings()


def _bits(rule: Rule, points: list[Point], ctx: Context) -> Iterable[Finding]:
    groups = _Groups(rule, ctx)
    oldest = ctx.now_ns - ctx.max_age_ns.get(rule.measurement, 1 << 62)
    mask_all = sum(rule.bits)
    for p in points:
        v = p.fields.get(rule.field)
        if p.time_ns < oldest or v is None:
            continue
        mask = int(v)
        if not (mask & mask_all) and (not groups.active or groups.entity_of(p.tags) not in groups.active):
            continue
        names = [name for bit, name in sorted(rule.bits.items()) if mask & bit]
        sev = ("critical" if mask & rule.critical_bits else rule.severity) if names else None
        groups.add(p.tags, _Part(sev, float(mask), None, p.time_ns, {"reasons": ", ".join(names)}))
    return groups.findings()


def _silent(rule: Rule, points: list[Point], ctx: Context) -> Iterable[Finding]:
    groups = _Groups(rule, ctx)
    after_ns = ctx.silent_after_ns[rule.interval]
    now = ctx.now_ns
    for p in points:
        age_ns = now - p.time_ns
        silent = age_ns > after_ns
        if not silent and (not groups.active or groups.entity_of(p.tags) not in groups.active):
            continue
        groups.add(p.tags, _Part(rule.severity if silent else None, age_ns / 1e9, after_ns / 1e9, p.time_ns, {}))
    return groups.findings()


KIND = {"threshold": _threshold, "feed_sum": _feed_sum, "ashrae": _ashrae, "flag": _flag, "bits": _bits,
        "silent": _silent}


def evaluate(rules: list[Rule], readings: dict[str, list[Point]], ctx: Context) -> dict[tuple[str, str], Finding]:
    """Every rule over the latest readings of its measurement: {(rule, entity): Finding}."""
    out: dict[tuple[str, str], Finding] = {}
    for rule in rules:
        for f in KIND[rule.kind](rule, readings.get(rule.measurement, []), ctx):
            out[(f.rule, f.entity)] = f
    return out
