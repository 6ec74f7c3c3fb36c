"""Points to InfluxDB line protocol, as the 1.x, 2.x and 3.x ``/write`` endpoints read it.

``measurement,tag=v,... field=v,... time``. What must be escaped, and how (checked against
influxd 1.6.7):

* measurement: comma and space;
* tag keys, tag values and field keys: comma, space and ``=``. A backslash is literal there
  (1.x keeps ``\\\\`` as two characters), so a backslash that ends the text or precedes one of
  ``, ="\\`` cannot be written portably and is refused;
* string field values: inside double quotes, ``"`` and ``\\`` escaped; newlines are literal;
* newlines cannot appear in measurement, tag or field names nor in tag values: refused;
* integers carry an ``i`` suffix, floats are written by ``repr`` (shortest exact form),
  booleans as ``true``/``false``; subclasses of float and int (``numpy.float64``, an
  ``IntEnum``) are written as the plain number they are.

The field's type comes from the metric contract where the measurement is known: an ``int``
given for a float field (``power_w=300``) is written as a float so InfluxDB never sees a
type conflict. Refusals raise :class:`~dcim.metrics.PointError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import cast

from dcim.metrics import MEASUREMENTS, Point, PointError

PRECISIONS = {"ns": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

_FIELD_KINDS: dict[str, dict[str, type]] = {
    name: {f.name: f.kind for f in m.fields.values()} for name, m in MEASUREMENTS.items()
}
_NO_KINDS: dict[str, type] = {}

# A backslash that would merge with the escape after it, or that ends the text.
_BAD_BACKSLASH = re.compile(r'\\(?=[ ,="\\]|$)')
_NEEDS_KEY_ESCAPE = re.compile(r"[ ,=\\\n\r]")


def _check_name(text: str, what: str) -> None:
    if not text:
        raise PointError(f"empty {what}")
    if "\n" in text or "\r" in text:
        raise PointError(f"{what} {text!r}: line protocol cannot carry a newline here")
    if "\\" in text and _BAD_BACKSLASH.search(text):
        raise PointError(f"{what} {text!r}: a backslash before ' ', ',', '=', '\"', '\\' or at the "
                         "end cannot be written in line protocol")


def escape_measurement(name: str) -> str:
    _check_name(name, "measurement")
    return name.replace(",", r"\,").replace(" ", r"\ ")


def escape_key(text: str, what: str = "tag") -> str:
    """Escape a tag key, tag value or field key."""
    if _NEEDS_KEY_ESCAPE.search(text) is None:
        if not text:
            raise PointError(f"empty {what}")
        return text
    _check_name(text, what)
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def escape_string_value(text: str) -> str:
    """A string field value, with its quotes."""
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


# Tag part per tag dict: collectors reuse one tags dict per device for every sample, so the
# escaped "measurement,k=v,..." prefix is computed once. Keyed by id(); the entry keeps the dict
# alive (so the id cannot be reused) and a copy to notice in-place changes.
_PREFIX_CACHE: dict[int, tuple[dict, dict, str, str]] = {}
_PREFIX_CACHE_MAX = 200_000


def series_prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,k1=v1,k2=v2`` with tags sorted by key; empty tag values are left out
    (InfluxDB treats an empty tag as no tag)."""
    entry = _PREFIX_CACHE.get(id(tags))
    if entry is not None and entry[0] is tags and entry[2] == measurement and entry[1] == tags:
        return entry[3]
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if not isinstance(value, str):
            raise PointError(f"{measurement}: tag {key!r} must be a string, got {value!r}")
        if value:
            parts.append(f"{escape_key(key, 'tag key')}={escape_key(value, 'tag value')}")
    prefix = ",".join(parts)
    if len(_PREFIX_CACHE) >= _PREFIX_CACHE_MAX:
        _PREFIX_CACHE.clear()
    _PREFIX_CACHE[id(tags)] = (tags, dict(tags), measurement, prefix)
    return prefix


_FIELD_KEY_CACHE: dict[str, str] = {}


# Numeric field sets of known measurements: one str.format template per (measurement, field
# names in order), with the exact value types it is valid for. About 25 % less CPU per point.
_TEMPLATES: dict[tuple, tuple | None] = {}


def _template(measurement: str, names: tuple) -> tuple | None:
    kinds = _FIELD_KINDS.get(measurement)
    if kinds is None or len(_TEMPLATES) > 10_000:
        return None
    parts, types = [], []
    for name in names:
        kind = kinds.get(name)
        if kind is float:
            parts.append(f"{escape_key(name, 'field key')}={{!r}}")
        elif kind is int:
            parts.append(f"{escape_key(name, 'field key')}={{}}i")
        else:  # strings and booleans take the general path
            return None
        types.append(kind)
    return ",".join(parts).format, tuple(types)


def format_fields(measurement: str, fields: dict) -> str:
    """``k1=v1,k2=v2`` typed per the metric contract (see module docstring)."""
    key = (measurement, tuple(fields))
    try:
        template = _TEMPLATES[key]
    except KeyError:
        template = _TEMPLATES[key] = _template(measurement, key[1]) if fields else None
    if template is not None:
        values = fields.values()
        # Exactly the types the template was made for, and finite (an inf or NaN makes the sum
        # inf or NaN; huge ints overflow): otherwise the general path, which says what is wrong.
        if tuple(map(type, values)) == template[1]:
            try:
                total = sum(values)
            except OverflowError:
                total = None
            if total is not None and total - total == 0.0:
                return template[0](*values)
    if not fields:
        raise PointError(f"{measurement}: a point needs at least one field")
    kinds = _FIELD_KINDS.get(measurement, _NO_KINDS)
    out = []
    for key, value in fields.items():
        ekey = _FIELD_KEY_CACHE.get(key)
        if ekey is None:
            ekey = escape_key(key, "field key")
            if len(_FIELD_KEY_CACHE) < 10_000:
                _FIELD_KEY_CACHE[key] = ekey
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # NaN or ±inf: InfluxDB has no literal for them
                raise PointError(f"{measurement}.{key}: {value!r} cannot be stored")
            out.append(f"{ekey}={value!r}")
        elif kind is int:
            out.append(f"{ekey}={value}" if kinds.get(key) is float else f"{ekey}={value}i")
        elif kind is bool:
            out.append(f"{ekey}={'true' if value else 'false'}")
        elif kind is str:
            out.append(f"{ekey}={escape_string_value(value)}")
        elif isinstance(value, float):  # a float subclass (numpy.float64): written as the float it is
            value = float(value)
            if value - value != 0.0:
                raise PointError(f"{measurement}.{key}: {value!r} cannot be stored")
            out.append(f"{ekey}={value!r}")
        elif isinstance(value, int) and not isinstance(value, bool):  # an int subclass (IntEnum)
            out.append(f"{ekey}={int(value)}" if kinds.get(key) is float else f"{ekey}={int(value)}i")
        else:
            raise PointError(f"{measurement}.{key}: unsupported value {value!r}")
    return ",".join(out)


def check(point: Point) -> None:
    """Raise PointError if *point* cannot be written; cheaper than serialising it (the tag part
    is cached, values are only type-checked)."""
    series_prefix(point.measurement, point.tags)
    fields = point.fields
    if not fields:
        raise PointError(f"{point.measurement}: a point needs at least one field")
    if _FIELD_KEY_CACHE.keys() >= fields.keys():
        # Fast path, all in C: known keys, and numbers whose sum is finite (an inf or NaN
        # anywhere makes it inf or NaN; a string or an odd type raises TypeError).
        try:
            # A str among the values raises TypeError here: the slow path below decides.
            total = sum(cast("Iterable[float]", fields.values()))
        except (TypeError, OverflowError):
            pass
        else:
            if total - total == 0.0:
                return
    for key, value in fields.items():
        if key not in _FIELD_KEY_CACHE:
            escaped = escape_key(key, "field key")
            if len(_FIELD_KEY_CACHE) < 10_000:
                _FIELD_KEY_CACHE[key] = escaped
        kind = type(value)
        if isinstance(value, float):  # float and its subclasses (bool is an int)
            if value - value != 0.0:
                raise PointError(f"{point.measurement}.{key}: {value!r} cannot be stored")
        elif kind is not str and not isinstance(value, int):  # int, bool and their subclasses pass
            raise PointError(f"{point.measurement}.{key}: unsupported value {value!r}")


def to_line(point: Point, precision: str = "ns") -> str:
    """One point as one line (no trailing newline). *precision* is ns, us, ms or s; the
    timestamp is floored to it."""
    divisor = PRECISIONS[precision]
    ts = point.time_ns if divisor == 1 else point.time_ns // divisor
    return f"{series_prefix(point.measurement, point.tags)} {format_fields(point.measurement, point.fields)} {ts}"


def to_lines(points: Iterable[Point], precision: str = "ns") -> list[str]:
    divisor = PRECISIONS[precision]
    prefix = series_prefix
    fmt = format_fields
    if divisor == 1:
        return [f"{prefix(p.measurement, p.tags)} {fmt(p.measurement, p.fields)} {p.time_ns}" for p in points]
    return [f"{prefix(p.measurement, p.tags)} {fmt(p.measurement, p.fields)} {p.time_ns // divisor}"
            for p in points]


def to_body(points: Sequence[Point], precision: str = "ns") -> bytes:
    """The request body for ``/write``: lines joined by newlines, UTF-8."""
    return "\n".join(to_lines(points, precision)).encode("utf-8")
