"""The text format (0.0.4) of the store's latest values, written fast for a large fleet.

A fleet of 32,000 GPUs is ~680,000 samples (~117 MB of text). ``prometheus_client``'s
``generate_latest`` validates and escapes each sample's labels, ~5 µs a sample. Here the series'
identity is formatted once and kept across scrapes (the same GPUs every time), and each field is
written as one column: its values formatted by ``repr`` in one C-level ``map`` and interleaved
with the kept label strings by slice assignment, so the per-sample Python work is the value's
``repr`` alone. ``dcim.exposition``'s tests hold the output equal to ``generate_latest``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def column(field: str, scale: float, fields: Sequence[dict], *, boolean: bool = False) -> list | None:
    """One field's values per series (None where absent, scaled to the exposed unit), or None
    when no series has it. A *boolean* field's values become 1/0; ints stay ints (their repr is
    Prometheus' digits)."""
    values: list[Any] = [d.get(field) for d in fields]
    nones = values.count(None)
    if nones == len(values):
        return None
    if scale != 1.0:
        if nones:
            return [None if v is None else v * scale for v in values]
        return [v * scale for v in values]
    if boolean:
        return [None if v is None else int(v) for v in values]
    return values


def interleave(head: str, name: str, labels: Sequence[str], values: list) -> str:
    """*head* (its last line without the newline), then one ``name{labels} value`` line per
    non-None value. *labels* end in a space. Each line's break rides in front of its name, so the
    parts are three kept strings per sample and the join is one C-level pass."""
    if None in values:
        keep = [i for i, v in enumerate(values) if v is not None]
        labels = [labels[i] for i in keep]
        values = [values[i] for i in keep]
    n = len(values)
    parts: list[Any] = [None] * (3 * n)
    parts[0::3] = ["\n" + name] * n
    parts[1::3] = labels
    parts[2::3] = value_strings(values)
    return head + "".join(parts) + "\n"


def value_strings(values: list) -> list[str]:
    """``repr`` of each value, formatted once per distinct value where a column repeats itself
    (power limits, clocks, P-states, ECC counts of 0: most of a GPU's fields), since ``repr`` of
    a float is most of the text's cost. 0, 0.0 and False share an entry: each parses as 0."""
    distinct = set(values)
    if 4 * len(distinct) < len(values):
        memo = {v: repr(v) for v in distinct}
        return list(map(memo.__getitem__, values))
    return list(map(repr, values))


class LabelCache:
    """'{tag="value",...} ' per series of one measurement, kept across scrapes. A store answers
    the same series in the same order scrape after scrape, so the last scrape's tag dicts are
    compared first (one C-level list comparison); otherwise each series' string is looked up by
    its tags' items (a series is never mistaken for another), the cache rebuilt when it grows past
    twice the series it serves (GPUs replaced)."""

    def __init__(self, tags: Sequence[str]):
        self.tags = tuple(tags)
        self._text: dict[tuple, str] = {}
        self._last: tuple[list[dict], list[str]] = ([], [])

    def strings(self, tag_dicts: list[dict]) -> list[str]:
        """The label strings with a trailing space, one per series."""
        last_dicts, last_strings = self._last
        if tag_dicts == last_dicts:
            return last_strings
        keys = list(map(tuple, map(dict.items, tag_dicts)))
        cache = self._text
        if len(cache) > 2 * len(keys) + 1024:
            cache.clear()
        out: list[Any] = list(map(cache.get, keys))
        if None in out:
            tags = self.tags
            for i, text in enumerate(out):
                if text is None:
                    d = tag_dicts[i]
                    text = "{" + ",".join(f'{t}="{escape_label(d.get(t, ""))}"' for t in tags) + "} "
                    out[i] = cache[keys[i]] = text
        self._last = (tag_dicts, out)
        return out


class InfoCache:
    """An ``_info`` gauge's whole line per series, kept across scrapes: its identity labels and
    its text fields (a GPU's job and tenant: few distinct values, rarely changing)."""

    def __init__(self, name: str, fields: Sequence[str]):
        self.name = name
        self.fields = tuple(fields)
        self._lines: dict[tuple, str] = {}

    def lines(self, labels: Sequence[str], field_dicts: Sequence[dict]) -> str:
        fields = self.fields
        cache = self._lines
        if len(cache) > 2 * len(labels) + 1024:
            cache.clear()
        out = []
        for label, values in zip(labels, field_dicts):
            extra = tuple([values.get(f, "") for f in fields])
            line = cache.get((label, extra))
            if line is None:
                text = ",".join(f'{f}="{escape_label(str(v))}"' for f, v in zip(fields, extra))
                line = cache[(label, extra)] = f"{self.name}{label[:-2]},{text}}} 1.0\n"
            out.append(line)
        return "".join(out)
