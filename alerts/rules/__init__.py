"""The rule tables (``default.toml`` here, plus a site's ``[alerts] rules_file``) loaded into
``Rule`` objects, with the site's ``[alerts.overrides]`` applied. Every problem is one clear
error naming the file, the rule and the key (``RuleError``), never a traceback."""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, replace
from dataclasses import field as _field
from pathlib import Path

from dcim.metrics import MEASUREMENTS

DEFAULT_RULES = Path(__file__).with_name("default.toml")
KINDS = ("threshold", "ashrae", "flag", "bits", "feed_sum", "silent")
SEVERITIES = ("warning", "critical")
INTERVALS = ("gpu", "snmp", "collector", "workload")


class RuleError(ValueError):
    """A rule table that cannot be used; the message names the file, the rule and the key."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    measurement: str
    entity: str  # format string over the reading's tags
    field: str = ""
    part: str = ""
    where: dict = _field(default_factory=dict)
    unit: str = ""
    hysteresis: float = 0.0
    for_s: float = 0.0
    summary: str = "{entity}: {rule}"
    above: dict = _field(default_factory=dict)  # severity -> level
    below: dict = _field(default_factory=dict)
    ratio_of: str = ""  # compare field / (ratio_of x breaker derate), in %
    when: dict = _field(default_factory=dict)  # other fields that must equal these values
    equals: object = None  # flag: the value that raises
    pattern: dict = _field(default_factory=dict)  # flag: string field -> regex that must match
    pattern_not: dict = _field(default_factory=dict)  # ... that must not match
    severity: str = "warning"  # flag, bits (non-critical bits), silent
    bits: dict = _field(default_factory=dict)  # bits: mask -> name
    critical_bits: int = 0
    interval: str = ""  # silent: which collector's interval applies
    ashrae: dict = _field(default_factory=dict)  # class -> ((rec lo, hi), (allow lo, hi))
    enabled: bool = True

    @property
    def levels(self) -> tuple[str, dict]:
        return ("above", self.above) if self.above else ("below", self.below)

    @property
    def entity_tags(self) -> tuple[str, ...]:
        return tuple(n for _, n, _, _ in string.Formatter().parse(self.entity + self.part) if n)


_KEYS = {f for f in Rule.__dataclass_fields__}


def load_rules(settings=None) -> list[Rule]:
    """The default tables, then *settings*' rules_file (a rule of the same name replaces the
    default), then its overrides. *settings*: ``dcim.config.alerts.AlertsSettings`` or None."""
    rules = {r.name: r for r in _load_file(DEFAULT_RULES)}
    if settings is not None and settings.rules_file is not None:
        for r in _load_file(Path(settings.rules_file)):
            rules[r.name] = r
    if settings is not None:
        for name, o in settings.overrides.items():
            if name not in rules:
                raise RuleError(f"alerts.overrides.{name}: no rule named {name!r} (rules: {', '.join(sorted(rules))})")
            rules[name] = _override(rules[name], o, f"alerts.overrides.{name}")
    return [r for r in rules.values() if r.enabled]


def _override(rule: Rule, o, where: str) -> Rule:
    changes: dict = {}
    if o.enabled is not None:
        changes["enabled"] = o.enabled
    if o.hysteresis is not None:
        changes["hysteresis"] = o.hysteresis
    if o.for_s is not None:
        changes["for_s"] = o.for_s
    for sev in SEVERITIES:
        level = getattr(o, sev)
        if level is None:
            continue
        if rule.kind not in ("threshold", "feed_sum"):
            raise RuleError(f"{where}.{sev}: rule {rule.name!r} is of kind {rule.kind!r}, which has no levels")
        side, levels = rule.levels
        changes[side] = {**levels, sev: float(level)}
    return replace(rule, **changes)


def _load_file(path: Path) -> list[Rule]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"alerts.rules_file: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: {exc}") from None
    ashrae = _ashrae(doc.get("ashrae", {}), path)
    out, seen = [], set()
    for i, raw in enumerate(doc.get("rule", [])):
        rule = _rule(raw, f"{path}: rule[{i}]", ashrae)
        if rule.name in seen:
            raise RuleError(f"{path}: rule[{i}].name: duplicate rule {rule.name!r}")
        seen.add(rule.name)
        out.append(rule)
    return out


def _ashrae(table: dict, path: Path) -> dict:
    out = {}
    for cls, spec in table.items():
        try:
            (rlo, rhi), (alo, ahi) = spec["recommended"], spec["allowable"]
            out[cls] = ((float(rlo), float(rhi)), (float(alo), float(ahi)))
        except (KeyError, TypeError, ValueError):
            raise RuleError(f"{path}: ashrae.{cls}: needs recommended = [lo, hi] and allowable = [lo, hi]") from None
        if not (alo <= rlo < rhi <= ahi):
            raise RuleError(f"{path}: ashrae.{cls}: the recommended range must lie inside the allowable one")
    return out


def _rule(raw: dict, where: str, ashrae: dict) -> Rule:
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {unknown}")
    for key in ("name", "kind", "measurement", "entity"):
        if key not in raw:
            raise RuleError(f"{where}.{key}: missing")
    name = raw["name"]
    where = f"{where} ({name})"
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]*$", name):
        raise RuleError(f"{where}.name: lower-case letters, digits and _ only, got {name!r}")
    if raw["kind"] not in KINDS:
        raise RuleError(f"{where}.kind: one of {', '.join(KINDS)}, got {raw['kind']!r}")
    spec = MEASUREMENTS.get(raw["measurement"])
    if spec is None:
        raise RuleError(f"{where}.measurement: unknown measurement {raw['measurement']!r}")
    data = dict(raw)
    if "bits" in data:
        try:
            data["bits"] = {int(k): str(v) for k, v in data["bits"].items()}
        except ValueError:
            raise RuleError(f"{where}.bits: keys are bit masks (integers)") from None
    for side in ("above", "below"):
        if side in data:
            bad = sorted(set(data[side]) - set(SEVERITIES))
            if bad or not data[side]:
                raise RuleError(f"{where}.{side}: levels are warning and/or critical, got {sorted(data[side])}")
            data[side] = {k: float(v) for k, v in data[side].items()}
    rule = Rule(**data, ashrae=ashrae if data["kind"] == "ashrae" else {})
    _check(rule, spec, where)
    return rule


def _check(rule: Rule, spec, where: str) -> None:
    if rule.kind != "silent":
        if rule.field not in spec.fields:
            raise RuleError(f"{where}.field: {rule.measurement} has no field {rule.field!r}")
    for tag in rule.entity_tags + tuple(rule.where):
        if tag not in spec.tags:
            raise RuleError(f"{where}: {rule.measurement} has no tag {tag!r} (entity, part or where)")
    for f in (*rule.when, *rule.pattern, *rule.pattern_not, *([rule.ratio_of] if rule.ratio_of else [])):
        if f not in spec.fields:
            raise RuleError(f"{where}: {rule.measurement} has no field {f!r} (when, pattern or ratio_of)")
    for f, rx in {**rule.pattern, **rule.pattern_not}.items():
        try:
            re.compile(rx)
        except re.error as exc:
            raise RuleError(f"{where}.pattern: {f}: not a regular expression: {exc}") from None
    if rule.severity not in SEVERITIES:
        raise RuleError(f"{where}.severity: warning or critical, got {rule.severity!r}")
    if rule.kind in ("threshold", "feed_sum") and bool(rule.above) == bool(rule.below):
        raise RuleError(f"{where}: a {rule.kind} rule needs exactly one of above or below")
    if rule.kind == "ashrae" and not rule.ashrae:
        raise RuleError(f"{where}: an ashrae rule needs the [ashrae] class table in its file")
    if rule.kind == "bits" and not rule.bits:
        raise RuleError(f"{where}.bits: needs {{mask = name}} pairs")
    if rule.kind == "silent" and rule.interval not in INTERVALS:
        raise RuleError(f"{where}.interval: one of {', '.join(INTERVALS)}, got {rule.interval!r}")
    if rule.kind == "flag" and rule.equals is None:
        raise RuleError(f"{where}.equals: a flag rule needs the value that raises it")
    if rule.kind == "feed_sum" and not (rule.ratio_of and rule.measurement.startswith("pdu")):
        raise RuleError(f"{where}: a feed_sum rule reads a PDU measurement and needs ratio_of")
