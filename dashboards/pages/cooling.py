"""Cooling units: supply/return temperatures, heat removed, electrical input, fans."""

from __future__ import annotations

from dash import html

from dashboards import components as c
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached

PATH = "/cooling"
TITLE = "nav.cooling"


def _rounded(unit: dict, key: str, digits: int = 1) -> float | None:
    return None if unit.get(key) is None else round(float(unit[key]), digits)


def unit_rows(snap: dict) -> list[dict]:
    rows = []
    for u in snap["cooling"]:
        rows.append({"unit": u["unit"], "room": u["room"], "kind": u["kind"],
                     "supply": _rounded(u, "supply_temp_c"), "return": _rounded(u, "return_temp_c"),
                     "output_kw": _rounded(u, "cooling_kw"),
                     "electric_kw": None if u.get("power_w") is None else round(u["power_w"] / 1000, 1),
                     "cop": _rounded(u, "cop", 2), "fan": _rounded(u, "fan_pct", 0),
                     "_state": "stale" if u["stale"] else "ok"})
    return rows


def trend_figure(series, lang: str, tz: str) -> dict:
    traces = []
    for s in series:
        unit = s.tags.get("unit", "?")
        x = c.local_x(s.times_ns, tz)
        for field, dash in (("supply_temp_c", "solid"), ("return_temp_c", "dot")):
            traces.append({"type": "scatter", "mode": "lines", "name": f"{unit} {t('col.' + field.split('_')[0], lang)}",
                           "x": x, "y": s.values.get(field, []), "line": {"dash": dash, "width": 2}})
    return {"data": traces, "layout": c.dark_layout(xaxis=c.time_axis(tz, lang),
                                                  yaxis={"title": {"text": "°C"}, "gridcolor": c.GRID})}


HALL_KINDS = ("crah", "crac", "inrow", "rdhx", "lcp")  # units that move the room's heat; a chiller moves it again


def plant_totals(units: list[dict]) -> dict:
    """Heat moved and electricity used by the cooling plant, each counted once:
    - output: the heat the hall units took out of the rooms (a chiller's cooling_kw is the same heat
      again, handed on from the hall units' water loop: adding it double-counts);
    - input: the electrical power of every unit, chillers included, from fresh readings only;
    - COP: output / input, only when every unit's reading is fresh (a stale unit would make it a
      ratio of two different moments)."""
    fresh = [u for u in units if not u["stale"]]
    hall = [u for u in fresh if u["kind"] in HALL_KINDS and u.get("cooling_kw") is not None]
    powered = [u for u in fresh if u.get("power_w") is not None]
    out_kw = sum(float(u["cooling_kw"]) for u in hall) if hall else None
    in_kw = sum(float(u["power_w"]) for u in powered) / 1000 if powered else None
    all_fresh = bool(units) and len(fresh) == len(units)
    cop = out_kw / in_kw if all_fresh and out_kw is not None and in_kw else None
    return {"output_kw": out_kw, "input_kw": in_kw, "cop": cop, "stale_units": len(units) - len(fresh)}


@cached
def update(ctx) -> dict:
    snap = ctx.snap
    series = ctx.data.series("cooling", ("supply_temp_c", "return_temp_c"), 86400, 900, "mean",
                             group_by=("unit",), period_s=60)
    tot = plant_totals(snap["cooling"])
    partial = "stale" if tot["stale_units"] else ""
    return {"v": {"cool_out": (fmt_num(tot["output_kw"], 0, "kW"), partial),
                  "cool_in": (fmt_num(tot["input_kw"], 0, "kW"), partial),
                  "cool_cop": (fmt_num(tot["cop"], 2), partial)},
            "fig": {"cool_trend": trend_figure(series, ctx.lang, ctx.tz)}, "tbl": {"units": unit_rows(snap)}}


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    cols = [{"id": k, "name": t(n, L), "type": typ} for k, n, typ in (
        ("unit", "col.unit", "text"), ("room", "col.room", "text"), ("kind", "col.kind", "text"),
        ("supply", "col.supply", "numeric"), ("return", "col.return", "numeric"),
        ("output_kw", "col.output_kw", "numeric"), ("electric_kw", "col.electric_kw", "numeric"),
        ("cop", "COP", "numeric"), ("fan", "col.fan", "numeric"))]
    return html.Div([
        html.H1(t("cooling.title", L), className="page-title"),
        html.Div([c.kpi("cool_out", t("col.output_kw", L), u["v"]["cool_out"][0]),
                  c.kpi("cool_in", t("col.electric_kw", L), u["v"]["cool_in"][0]),
                  c.kpi("cool_cop", "COP", u["v"]["cool_cop"][0])], className="kpis three"),
        c.panel(t("cooling.title", L), c.table("units", cols, u["tbl"]["units"])),
        c.panel(f"{t('col.supply', L)} / {t('col.return', L)} (24 h)", c.graph("cool_trend", u["fig"]["cool_trend"],
                                                                             height="360px")),
    ])
