"""Slurm hostlist expressions: ``node[01-03,07],gpu-a[1-2]b[1-2]`` → node names, in order.

Written here, not taken from PyPI: the one well-kept library (python-hostlist) is GPL-2.0+,
and dcim is Apache-2.0. This covers what Slurm prints in a job's ``nodes``: comma-separated
items, each with any number of ``[...]`` ranges (their product, in order), zero padding kept
from the lower bound (``[08-10]`` → 08 09 10).
"""

from __future__ import annotations

import itertools
import re

MAX_HOSTS = 1_000_000  # a typo like node[0-999999999] must not eat the collector's memory

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class HostlistError(ValueError):
    """A hostlist expression that does not parse; the message quotes it."""


def expand(hostlist: str) -> list[str]:
    """Every host name in *hostlist*, in the order written."""
    hosts: list[str] = []
    for item in split_outside(hostlist.strip()):
        if not item:
            continue
        hosts.extend(_expand_item(item, hostlist))
        if len(hosts) > MAX_HOSTS:
            raise HostlistError(f"hostlist {hostlist[:80]!r} names more than {MAX_HOSTS} hosts")
    return hosts


def split_outside(text: str, opening: str = "[", closing: str = "]") -> list[str]:
    """Split at the commas outside *opening*…*closing* (Slurm nests lists: ``n[1,3],m1``,
    ``gpu:h100:2(IDX:0,3)``)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _expand_item(item: str, whole: str) -> list[str]:
    # "a[1-2]b[3,5]c" → literal/choice parts: ["a"], ["1","2"], ["b"], ["3","5"], ["c"]
    parts: list[list[str]] = []
    pos = 0
    for match in re.finditer(r"\[([^\[\]]*)\]", item):
        parts.append([item[pos:match.start()]])
        parts.append(_expand_ranges(match.group(1), whole))
        pos = match.end()
    tail = item[pos:]
    if "[" in tail or "]" in tail or any("[" in p[0] or "]" in p[0] for p in parts if len(p) == 1):
        raise HostlistError(f"hostlist {whole[:80]!r}: unbalanced brackets in {item[:80]!r}")
    parts.append([tail])
    count = 1
    for choices in parts:
        count *= len(choices)
    if count > MAX_HOSTS:
        raise HostlistError(f"hostlist {whole[:80]!r} names more than {MAX_HOSTS} hosts")
    return ["".join(combo) for combo in itertools.product(*parts)]


def _expand_ranges(spec: str, whole: str) -> list[str]:
    out: list[str] = []
    for rng in spec.split(","):
        match = _RANGE.match(rng.strip())
        if not match:
            raise HostlistError(f"hostlist {whole[:80]!r}: bad range {rng[:40]!r}")
        lo_text, hi_text = match.group(1), match.group(2) or match.group(1)
        lo, hi = int(lo_text), int(hi_text)
        if hi < lo or hi - lo >= MAX_HOSTS:
            raise HostlistError(f"hostlist {whole[:80]!r}: bad range {rng[:40]!r}")
        width = len(lo_text)  # Slurm keeps the lower bound's zero padding
        out.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return out
