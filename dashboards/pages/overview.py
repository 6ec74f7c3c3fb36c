"""The wall-screen overview: PUE, power, alarms, floor map, power-chain headroom, optimizer."""

from __future__ import annotations

from dash import html

from dashboards import alarms as rules
from dashboards import components as c
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached
from dashboards.power_chain import chain_summary
from dashboards.rack_state import rack_state
from dcim.store.base import Series

PATH = "/"
TITLE = "nav.overview"
MAX_TEXT_CELLS = 300


def floor_figure(racks: list[dict], metric: str, room_order: list[str], stale_word: str = "stale") -> dict:
    """One heatmap: a line per room·row, a column per position; z is the state level."""
    order = {r: i for i, r in enumerate(room_order)}
    lines = sorted({(r["room"], r["row_index"], r["row"]) for r in racks},
                   key=lambda x: (order.get(x[0], 99), x[1]))
    line_idx = {(room, row): i for i, (room, _, row) in enumerate(lines)}
    width = max((r["position"] for r in racks), default=0) + 1
    z: list[list[float | None]] = [[None] * width for _ in lines]  # None: no rack there
    text = [[""] * width for _ in lines]
    hover = [[""] * width for _ in lines]
    show_text = len(racks) <= MAX_TEXT_CELLS
    for r in racks:
        i = line_idx[(r["room"], r["row"])]
        j = r["position"]
        state, v = rack_state(r, metric)
        z[i][j] = c.STATE_LEVEL[state]
        if metric == "power":
            val = "—" if v is None else f"{v / 1000:.1f} kW"
            detail = f"{val} / {r['budget_kw']:g} kW"
        else:
            val = "—" if v is None else f"{v:.1f} °C"
            detail = f"{val} ({r['ashrae_class']})"
        if state == "stale":  # the last value, in brackets: old, not current
            val, detail = f"({val})", f"{detail} · {stale_word}"
        text[i][j] = f"{r['rack']}<br>{val}" if show_text else ""
        hover[i][j] = f"{r['rack']}: {detail}"
    ylabels = [f"{room} · {row}" for room, _, row in lines]
    trace = {"type": "heatmap", "z": z, "text": text, "customdata": hover, "x": list(range(1, width + 1)),
             "y": ylabels, "zmin": -1, "zmax": 2, "colorscale": c.FLOOR_COLORSCALE, "showscale": False,
             "xgap": 4, "ygap": 4, "texttemplate": "%{text}", "hovertemplate": "%{customdata}<extra></extra>",
             "textfont": {"size": 26 if len(racks) <= 64 else 16 if len(racks) <= MAX_TEXT_CELLS else 10,
                          "color": c.TEXT}}
    # the cell text and row labels are sized by the stylesheet (rem, which follows the viewport);
    # the px sizes here are only what Plotly lays out with
    layout = c.dark_layout(margin={"l": 110, "r": 10, "t": 10, "b": 10},
                           xaxis={"visible": False, "fixedrange": True},
                           yaxis={"autorange": "reversed", "fixedrange": True, "tickfont": {"size": 18},
                                  "gridcolor": "rgba(0,0,0,0)"})
    return {"data": [trace], "layout": layout}


def trend_figure(data, lang: str) -> dict:
    """The last 24 h of PUE (right axis) and IT and facility power (kW, left axis), 10-minute means,
    in the site's zone; hours without readings stay gaps."""
    series = data.series("facility", ("total_power_w", "it_power_w", "pue"), 86400, 600, "mean", period_s=60)
    traces = []
    for s in series:
        x = c.local_x(s.times_ns, data.tz)
        pue = s.values.get("pue") or []
        if not any(v is not None for v in pue):  # a store without the pue field: the ratio of the powers
            pue = [a / b if a is not None and b else None
                   for a, b in zip(s.values.get("total_power_w", []), s.values.get("it_power_w", []))]
        traces += [
            {"type": "scatter", "mode": "lines", "name": t("kpi.facility_kw", lang), "x": x, "y": _kw(s, "total_power_w"),
             "line": {"color": "#9aa3b5", "width": 2}},
            {"type": "scatter", "mode": "lines", "name": t("kpi.it_kw", lang), "x": x, "y": _kw(s, "it_power_w"),
             "line": {"color": "#5d6a82", "width": 2}},
            {"type": "scatter", "mode": "lines", "name": "PUE", "x": x, "y": pue, "yaxis": "y2",
             "line": {"color": "#d8dce4", "width": 2, "dash": "dot"}},
        ]
    layout = c.dark_layout(margin={"l": 60, "r": 60, "t": 30, "b": 40}, xaxis=c.time_axis(data.tz, lang),
                           yaxis={"title": {"text": "kW"}, "gridcolor": c.GRID, "rangemode": "tozero"},
                           yaxis2={"title": {"text": "PUE"}, "overlaying": "y", "side": "right", "showgrid": False,
                                   "tickformat": ".2f"})
    return {"data": traces, "layout": layout}


def _kw(series: Series, field: str) -> list[float | None]:
    """A series' watts of *field* in kW (None where a bucket has none)."""
    return [None if v is None else v / 1000 for v in series.values.get(field, [])]


@cached
def update(ctx) -> dict:
    data = ctx.data
    snap = ctx.snap
    L = ctx.lang
    fac = snap["facility"]
    fstale = "stale" if snap["facility_stale"] else ""
    pue24 = data.pue_period(86400)
    pue30 = data.pue_period(30 * 86400)
    s = chain_summary(snap, data.derate)
    counts = {"critical": 0, "warning": 0}
    for a in snap["alarms"]:
        counts[a["severity"]] = counts.get(a["severity"], 0) + 1
    opt = snap["optimizer"]
    # grey when old, or when the store has no decision yet (the mode then comes from the config)
    ostale = "stale" if (opt["stale"] and opt["t"]) or not opt.get("mode_from_store") else ""
    mode = opt["mode"]
    ups_state = "critical" if s["on_battery"] else (
        "warning" if s["ups_load_pct"] is not None and s["ups_load_pct"] >= rules.UPS_WARN_PCT else "")
    pdu_state = ("critical" if (s["worst_pdu_pct"] or 0) > 100 else
                 "warning" if (s["worst_pdu_pct"] or 0) >= 100 * rules.PDU_WARN_FRACTION else "")
    pdus_stale = bool(snap["pdus"]) and all(p.get("stale") for p in snap["pdus"])
    metric = "power" if ctx.params.get("map") == "power" else "inlet"
    room_order = [r.name for r in ctx.config.rooms]

    def kw(field):
        v = fac.get(field)
        return fmt_num(v / 1000 if v is not None else None, 1, "kW")

    outdoor = fac.get("outdoor_temp_c")
    v = {
        "pue_now": (fmt_num(fac.get("pue"), 2), fstale),
        "pue_24h": (fmt_num(pue24, 2), ""),
        "pue_30d": (fmt_num(pue30, 2), ""),
        "it_kw": (kw("it_power_w"), fstale),
        "facility_kw": (kw("total_power_w"), fstale),
        "cooling_kw": (kw("cooling_power_w"), fstale),
        "outdoor": (f"{t('kpi.outdoor', L)} {fmt_num(outdoor, 1, '°C')}" if outdoor is not None else "", fstale),
        "alarms_crit": (str(counts["critical"]), "critical" if counts["critical"] else "zero"),
        "alarms_warn": (str(counts["warning"]), "warning" if counts["warning"] else "zero"),
        "ups_load": (fmt_num(s["ups_load_pct"], 0, "%"), c.state_class(ups_state, s["ups_stale"])),
        "ups_headroom": (fmt_num(s["ups_headroom_kw"], 0, "kW") + (f" · {s['ups_tightest']}" if s["ups_tightest"] else ""),
                         "stale" if s["ups_stale"] else ""),
        "worst_pdu": (fmt_num(s["worst_pdu_pct"], 0, "%") + (f" · {s['worst_pdu']}" if s["worst_pdu"] else ""),
                      c.state_class(pdu_state, pdus_stale)),
        "failover": (f"{s['no_failover']} / {s['racks_with_feeds']}",
                     c.state_class("warning" if s["no_failover"] else None, pdus_stale)),
        "ab_balance": (f"A {fmt_num(s['a_share'], 0)} % · B {fmt_num(100 - s['a_share'], 0)} %"
                       if s["a_share"] is not None else "—", c.state_class(None, pdus_stale)),
        "opt_mode": (t(f"mode.{mode}", L) if mode else "—", ostale),
        "opt_capped": (f"{opt['gpus_capped']:,}", ostale),
        "opt_saving_now": (fmt_num((opt["saving_now_w"] or 0) / 1000 if opt["saving_now_w"] is not None else None,
                                   1, "kW"), ostale),
        "opt_saved_today": (fmt_num(opt["saved_today_kwh"], 0, "kWh"), ostale),
    }
    return {"v": v, "fig": {"floor": floor_figure(snap["racks"], metric, room_order, t("stale", L)),
                    "trend": trend_figure(data, L)}, "tbl": {}}


def layout(ctx):
    u = update(ctx)
    v = u["v"]
    L = ctx.lang
    metric = "power" if ctx.params.get("map") == "power" else "inlet"

    def item(key, label):
        return html.Div([html.Div(label, className="stat-label"),
                         html.Div(v[key][0], id=c.vid(key), className=f"stat-value {v[key][1]}".strip())],
                        className="stat")

    return html.Div([
        html.Div([
            c.kpi("pue_now", t("kpi.pue_now", L), v["pue_now"][0], v["pue_now"][1]),
            c.kpi("pue_24h", t("kpi.pue_24h", L), v["pue_24h"][0], v["pue_24h"][1]),
            c.kpi("pue_30d", t("kpi.pue_30d", L), v["pue_30d"][0], v["pue_30d"][1]),
            c.kpi("it_kw", t("kpi.it_kw", L), v["it_kw"][0], v["it_kw"][1]),
            c.kpi("facility_kw", t("kpi.facility_kw", L), v["facility_kw"][0], v["facility_kw"][1]),
            c.kpi("cooling_kw", t("kpi.cooling_kw", L), v["cooling_kw"][0], v["cooling_kw"][1]),
        ], className="kpis"),
        html.Div([
            html.Div([
                c.panel(t("panel.floor_power" if metric == "power" else "panel.floor_inlet", L),
                        c.graph("floor", u["fig"]["floor"], height="100%", cls="floor"), c.floor_legend(L),
                        cls="floor-panel"),
                c.panel(t("panel.trend", L), c.graph("trend", u["fig"]["trend"], height="100%", cls="trend"),
                        cls="trend-panel"),
            ], className="left"),
            html.Div([
                c.panel(t("panel.alarms", L), html.Div([
                    html.Div([html.Div(v["alarms_crit"][0], id=c.vid("alarms_crit"),
                                       className=f"count {v['alarms_crit'][1]}"),
                              html.Div(t("sev.critical", L), className="stat-label")], className="count-box"),
                    html.Div([html.Div(v["alarms_warn"][0], id=c.vid("alarms_warn"),
                                       className=f"count {v['alarms_warn'][1]}"),
                              html.Div(t("sev.warning", L), className="stat-label")], className="count-box"),
                ], className="counts")),
                c.panel(t("panel.chain", L), html.Div([
                    item("ups_load", t("chain.ups", L)), item("ups_headroom", t("chain.ups_headroom", L)),
                    item("worst_pdu", t("chain.worst_pdu", L)), item("failover", t("chain.failover", L)),
                    item("ab_balance", t("chain.balance", L)),
                ], className="stats")),
                c.panel(t("panel.optimizer", L), html.Div([
                    item("opt_mode", t("opt.mode", L)), item("opt_capped", t("opt.capped", L)),
                    item("opt_saving_now", t("opt.saving_now", L)), item("opt_saved_today", t("opt.saved_today", L)),
                ], className="stats")),
            ], className="side"),
        ], className="overview-main"),
        html.Div(v["outdoor"][0], id=c.vid("outdoor"), className=f"outdoor {v['outdoor'][1]}"),
    ], className="overview")
