"""The GPU fleet at a glance, from each GPU's latest reading: how many report, their power, how
many are capped below their default limit, and which ones throttle for a reason worth an alarm.

The wall screen needs only these few numbers for a fleet of tens of thousands of GPUs; a store
that can compute them next to the data (SQLite) does so instead of handing back one Point per GPU.
``summarize_gpus`` is the definition; every store's answer must equal it over ``latest("gpu")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dcim.metrics import Point

# A limit counts as a cap only when it is clearly below the default: NVML reports limits in
# whole milliwatts and some boards round the default, so equality is tested with a margin.
CAP_MARGIN_W = 0.5


@dataclass
class GpuSummary:
    """Totals over the GPUs' latest readings. Powers in watts; ``newest_ns`` in UTC ns."""

    count: int = 0
    power_w: float = 0.0
    capped: int = 0
    capped_limit_w: float = 0.0  # Σ power limit of the capped GPUs
    capped_default_w: float = 0.0  # Σ default limit of the same GPUs
    newest_ns: int | None = None
    flagged: list[Point] = field(default_factory=list)  # GPUs whose throttle reasons hit the mask


def is_capped(limit_w: float | None, default_w: float | None) -> bool:
    return limit_w is not None and default_w is not None and limit_w < default_w - CAP_MARGIN_W


def summarize_gpus(points: Iterable[Point], throttle_mask: int) -> GpuSummary:
    """The summary of ``gpu`` Points (each GPU's latest). A GPU is flagged when its
    ``throttle_reasons`` bitmask shares a bit with *throttle_mask*."""
    s = GpuSummary()
    newest = 0
    for p in points:
        f = p.fields
        s.count += 1
        if p.time_ns > newest:
            newest = p.time_ns
        pw = _number(f.get("power_w"))
        if pw is not None:
            s.power_w += pw
        lim, dflt = _number(f.get("power_limit_w")), _number(f.get("power_limit_default_w"))
        if lim is not None and dflt is not None and is_capped(lim, dflt):
            s.capped += 1
            s.capped_limit_w += lim
            s.capped_default_w += dflt
        tr = f.get("throttle_reasons")
        if tr and int(tr) & throttle_mask:
            s.flagged.append(p)
    s.newest_ns = newest or None
    return s


def _number(value: float | int | bool | str | None) -> float | None:
    """A power field's value (the metric contract makes them numbers; a string counts as none)."""
    return None if value is None or isinstance(value, str) else value
