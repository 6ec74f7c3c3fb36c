"""Rack detail: elevation (servers and their GPUs), PDU phases, inlet/outlet temperatures, power."""

from __future__ import annotations

from dash import dcc, html

from dashboards import alarms as rules
from dashboards import components as c
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached
from dashboards.rack_state import rack_state

PATH = "/racks"
TITLE = "nav.racks"


def pick_rack(ctx) -> str | None:
    names = [r.rack for r in ctx.data.inventory.racks]
    want = ctx.params.get("rack")
    if want in names:
        return want
    # default: the rack with the hottest inlet, else the first
    racks = [r for r in ctx.snap["racks"] if r["inlet_c"] is not None]
    if racks:
        return max(racks, key=lambda r: r["inlet_c"])["rack"]
    return names[0] if names else None


def gpu_cell_state(g: dict | None) -> str:
    if g is None:
        return "nodata"
    if g.get("throttle_reasons") and rules.throttle_names(int(g["throttle_reasons"])):
        return "warning"
    return "stale" if g.get("stale") else ""


@cached
def update(ctx) -> dict:
    snap = ctx.snap
    name = pick_rack(ctx)
    v: dict = {}
    tbl: dict = {"phases": []}
    if name is None:
        return {"v": v, "fig": {}, "tbl": tbl}
    rack = next(r for r in snap["racks"] if r["rack"] == name)
    istate, _ = rack_state(rack, "inlet")
    pstate, _ = rack_state(rack, "power")
    v["rk_inlet"] = (fmt_num(rack["inlet_c"], 1, "°C"), c.state_class(istate, rack["inlet_stale"]))
    # each reading greyed on its own age: a frozen outlet sensor next to a live inlet is stale too
    v["rk_outlet"] = (fmt_num(rack["outlet_c"], 1, "°C"), c.state_class(None, rack["outlet_stale"]))
    v["rk_power"] = (f"{fmt_num(rack['power_w'] / 1000 if rack['power_w'] is not None else None, 1)} / "
                     f"{rack['budget_kw']:g} kW", c.state_class(pstate, rack["power_stale"]))
    (rlo, rhi), (alo, ahi) = rules.inlet_limits(rack["ashrae_class"])
    v["rk_class"] = (f"{rack['ashrae_class']} · {rlo:g}–{rhi:g} ({alo:g}–{ahi:g}) °C", "")
    by_host: dict[str, dict[str, dict]] = {}
    for g in ctx.data.gpus():
        if g["rack"] == name:
            by_host.setdefault(g["host"], {})[str(g["gpu"])] = g
    for s in ctx.data.inventory.servers:
        if s.rack != name:
            continue
        for i in range(s.gpus):
            g = by_host.get(s.host, {}).get(str(i))
            text = "—" if g is None else (f"{fmt_num(g['power_w'], 0)} W · {fmt_num(g['temp_c'], 0)} °C")
            v[f"el:{s.host}:{i}"] = (text, gpu_cell_state(g))
    derate = ctx.data.derate
    for p in snap["pdus"]:
        if p["rack"] != name:
            continue
        limit = p["breaker_a"] * derate if p.get("breaker_a") else None
        for phase, (amps, _) in sorted(rules.pdu_phase_currents(p).items()):
            pct = 100 * amps / limit if limit else None
            state = "critical" if pct and pct > 100 else "warning" if pct and pct >= 90 else (
                "stale" if p.get("stale") else "ok")
            tbl["phases"].append({"pdu": p["pdu"], "feed": p["feed"], "phase": phase,
                                  "current_a": round(amps, 1), "limit_a": None if limit is None else round(limit, 1),
                                  "load_pct": None if pct is None else round(pct, 0),
                                  "power_kw": round(p["phase_power"][phase] / 1000, 2)
                                  if phase in p.get("phase_power", {}) else None, "_state": state})
    return {"v": v, "fig": {}, "tbl": tbl}


def layout(ctx):
    u = update(ctx)
    v = u["v"]
    L = ctx.lang
    name = pick_rack(ctx)
    if name is None:
        return html.Div(t("no_data", L))
    servers = [s for s in ctx.data.inventory.servers if s.rack == name]
    elevation = html.Div([
        html.Div([
            html.Div(s.host, className="server-name"),
            html.Div([html.Div([html.Span(f"GPU{i}", className="gpu-idx"),
                                html.Span(v[f"el:{s.host}:{i}"][0], id=c.vid(f"el:{s.host}:{i}"),
                                          className=v[f"el:{s.host}:{i}"][1])], className="gpu-cell")
                      for i in range(s.gpus)], className="gpu-cells"),
        ], className="server") for s in servers
    ], className="elevation")
    cols = [{"id": k, "name": t(n, L) if n.startswith("col.") else n, "type": typ} for k, n, typ in (
        ("pdu", "col.pdu", "text"), ("feed", "col.feed", "text"), ("phase", "Phase", "text"),
        ("current_a", "col.current_a", "numeric"), ("limit_a", "col.limit_a", "numeric"),
        ("load_pct", "col.load_pct", "numeric"), ("power_kw", "col.rack_kw", "numeric"))]
    options = [{"label": f"{r.room} · {r.row} · {r.rack}", "value": r.rack} for r in ctx.data.inventory.racks]
    return html.Div([
        html.Div([html.H1(f"{t('racks.title', L)} {name}", className="page-title"),
                  dcc.Dropdown(id="rack-pick", options=options, value=name, clearable=False,
                               className="rack-pick")], className="title-row"),
        html.Div([
            c.kpi("rk_inlet", t("col.inlet", L), *v["rk_inlet"]),
            c.kpi("rk_outlet", t("col.outlet", L), *v["rk_outlet"]),
            c.kpi("rk_power", t("racks.budget", L), *v["rk_power"]),
            c.kpi("rk_class", "ASHRAE", *v["rk_class"]),
        ], className="kpis four"),
        html.Div([
            c.panel(t("racks.servers", L), elevation),
            c.panel(t("racks.phases", L), c.table("phases", cols, u["tbl"]["phases"], sort=False)),
        ], className="two-col"),
    ])
