"""GPU fleet: a sortable table (sorted and paged on the server, so 32,000 GPUs stay light),
per-GPU history, and each GPU's power cap against its default limit."""

from __future__ import annotations

import math

from dash import dash_table, dcc, html

from dashboards import alarms as rules
from dashboards import components as c
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached

PATH = "/gpus"
TITLE = "nav.gpus"
PAGE_SIZE = 25
COLUMNS = (("host", "col.host", "text"), ("gpu", "col.gpu", "text"), ("rack", "col.rack", "text"),
           ("job", "col.job", "text"), ("tenant", "col.tenant", "text"), ("power_w", "col.power_w", "numeric"),
           ("power_limit_w", "col.cap_w", "numeric"),
           ("power_limit_default_w", "col.default_w", "numeric"), ("temp_c", "col.temp_c", "numeric"),
           ("util_pct", "col.util_pct", "numeric"), ("uuid", "col.uuid", "text"))


def gpu_rows(gpus: list[dict]) -> list[dict]:
    rows = []
    for g in gpus:
        throttled = bool(g.get("throttle_reasons") and rules.throttle_names(int(g["throttle_reasons"])))
        rows.append({"host": g["host"], "gpu": str(g["gpu"]), "rack": g["rack"], "uuid": g["uuid"],
                     "job": g.get("job") or "", "tenant": g.get("tenant") or "",
                     "power_w": _r(g["power_w"]), "power_limit_w": _r(g["power_limit_w"]),
                     "power_limit_default_w": _r(g["power_limit_default_w"]), "temp_c": _r(g["temp_c"]),
                     "util_pct": _r(g["util_pct"]),
                     "_state": "warning" if throttled else ("stale" if g["stale"] else "ok")})
    return rows


def _r(v):
    return None if v is None else round(float(v), 0)


def clean_sort_by(sort_by) -> list[dict]:
    """The table's sort_by as the browser sends it, keeping only well-formed entries on known columns
    (a client can send any JSON here)."""
    if not isinstance(sort_by, list):
        return []
    known = {k for k, _, _ in COLUMNS}
    return [{"column_id": s["column_id"], "direction": s["direction"]} for s in sort_by
            if isinstance(s, dict) and isinstance(s.get("column_id"), str) and s["column_id"] in known
            and s.get("direction") in ("asc", "desc")]


def sort_page(rows: list[dict], sort_by: list[dict] | None, page: int, size: int) -> tuple[list[dict], int]:
    """Sort (absent values last, whatever the direction) and cut one page; returns (rows, page_count)."""
    if sort_by:
        for spec in reversed(sort_by):
            col, desc = spec["column_id"], spec.get("direction") == "desc"
            present = [r for r in rows if r.get(col) is not None]
            absent = [r for r in rows if r.get(col) is None]
            present.sort(key=lambda r: r[col], reverse=desc)
            rows = present + absent
    else:
        rows = sorted(rows, key=lambda r: (r["host"], int(r["gpu"]) if str(r["gpu"]).isdigit() else 0))
    pages = max(1, math.ceil(len(rows) / size))
    page = min(max(0, page or 0), pages - 1)
    return rows[page * size:(page + 1) * size], pages


def history_figure(data, uuid: str | None, lang: str) -> dict:
    layout = c.dark_layout(xaxis=c.time_axis(data.tz, lang), yaxis={"title": {"text": "W"},
                                                                             "gridcolor": c.GRID},
                           yaxis2={"title": {"text": "°C"}, "overlaying": "y", "side": "right", "showgrid": False})
    if not uuid:
        layout["annotations"] = [{"text": t("gpus.pick", lang), "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 18, "color": c.MUTED}}]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return {"data": [], "layout": layout}
    series = data.series("gpu", ("power_w", "power_limit_w", "power_limit_default_w", "temp_c"), 86400, 300,
                         "mean", where={"uuid": uuid}, period_s=60)
    traces = []
    for s in series:
        x = c.local_x(s.times_ns, data.tz)
        traces += [
            {"type": "scatter", "mode": "lines", "name": t("col.power_w", lang), "x": x, "y": s.values["power_w"]},
            {"type": "scatter", "mode": "lines", "name": t("col.cap_w", lang), "x": x,
             "y": s.values["power_limit_w"], "line": {"shape": "hv", "width": 3}},
            {"type": "scatter", "mode": "lines", "name": t("col.default_w", lang), "x": x,
             "y": s.values["power_limit_default_w"], "line": {"dash": "dot"}},
            {"type": "scatter", "mode": "lines", "name": t("col.temp_c", lang), "x": x, "y": s.values["temp_c"],
             "yaxis": "y2", "line": {"dash": "dash"}},
        ]
    return {"data": traces, "layout": layout}


@cached
def update(ctx) -> dict:
    g = ctx.snap["gpu_summary"]
    v = {"g_count": (f"{g['count']:,}", ""), "g_power": (fmt_num(g["power_w"] / 1000, 1, "kW"), ""),
         "g_capped": (f"{g['capped']:,}", ""),
         "g_cap_pct": (fmt_num(100 * g["capped_limit_w"] / g["capped_default_w"] if g["capped"] else None, 0, "%"),
                       "")}
    return {"v": v, "fig": {}, "tbl": {}}


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    rows, pages = sort_page(gpu_rows(ctx.data.gpus()), None, 0, PAGE_SIZE)
    uuid = ctx.params.get("uuid")
    return html.Div([
        html.H1(t("gpus.title", L), className="page-title"),
        html.Div([c.kpi("g_count", "GPUs", u["v"]["g_count"][0]),
                  c.kpi("g_power", t("col.power_w", L).replace(" W", ""), u["v"]["g_power"][0]),
                  c.kpi("g_capped", t("opt.capped", L), u["v"]["g_capped"][0]),
                  c.kpi("g_cap_pct", f"{t('col.cap_w', L)} / {t('col.default_w', L)}", u["v"]["g_cap_pct"][0])],
                 className="kpis four"),
        c.panel(t("gpus.title", L), dash_table.DataTable(
            id="gpu-table", columns=[{"id": k, "name": t(n, L), "type": typ} for k, n, typ in COLUMNS],
            data=rows, page_current=0, page_size=PAGE_SIZE, page_count=pages, page_action="custom",
            sort_action="custom", sort_mode="single", sort_by=[], style_as_list_view=True,
            style_header={"backgroundColor": c.PANEL, "color": c.MUTED, "fontWeight": "600", "border": "none"},
            style_cell={"backgroundColor": c.BG, "color": c.TEXT, "border": f"1px solid {c.GRID}",
                        "fontSize": "1rem", "padding": "0.3rem 0.6rem", "fontFamily": "inherit"},
            style_cell_conditional=[{"if": {"column_type": "text"}, "textAlign": "left"}],
            style_data_conditional=[
                {"if": {"filter_query": '{_state} = "warning"'}, "color": c.WARN},
                {"if": {"filter_query": '{_state} = "stale"'}, "color": c.MUTED},
                {"if": {"filter_query": "{power_limit_w} < {power_limit_default_w}",
                        "column_id": "power_limit_w"}, "fontWeight": "700"},
            ])),
        c.panel(t("gpus.history", L), dcc.Graph(id="gpu-history", figure=history_figure(ctx.data, uuid, L),
                                                config={"displayModeBar": False}, style={"height": "340px"})),
    ])
