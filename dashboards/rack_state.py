"""A rack's state on the floor map (and the Racks page): no data, stale, ok, warning, critical."""

from __future__ import annotations

from dashboards import alarms as rules


def rack_state(rack: dict, metric: str) -> tuple[str, float | None]:
    """(state, value) of one rack for the floor map: nodata / stale / ok / warning / critical."""
    if metric == "power":
        v = rack.get("power_w")
        if v is None:
            return "nodata", None
        pct = 100 * v / (rack["budget_kw"] * 1000)
        if rack.get("power_stale"):
            return "stale", v
        if pct > 100:
            return "critical", v
        if pct >= 90:
            return "warning", v
        return ("stale" if rack.get("power_stale") else "ok"), v
    v = rack.get("inlet_c")
    if v is None:
        return "nodata", None
    if rack.get("inlet_stale"):  # an old reading says nothing about now, hot or not (the engine's silent-series alarm does)
        return "stale", v
    return rules.inlet_state(v, rack.get("ashrae_class", "A1")) or "ok", v
