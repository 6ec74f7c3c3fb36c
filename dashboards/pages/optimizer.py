"""Optimizer: decision log and predicted vs actual PUE."""

from __future__ import annotations

from dash import html

from dashboards import components as c
from dashboards.pages import cached
from dashboards.i18n import fmt_num, fmt_time, t

PATH = "/optimizer"
TITLE = "nav.optimizer"
LOG_ROWS = 200


def decision_rows(points, tz: str, lang: str, limit: int = LOG_ROWS) -> list[dict]:
    """The newest decision of each (GPU, action), newest first."""
    rows = []
    for p in sorted(points, key=lambda p: p.time_ns, reverse=True)[:limit]:
        f = p.fields
        rows.append({"time": fmt_time(p.time_ns, tz, lang, with_date=True), "host": p.tags.get("host", ""),
                     "uuid": p.tags.get("uuid", ""), "action": p.tags.get("action", ""),
                     "mode": f.get("mode", ""),
                     "previous_w": None if f.get("previous_w") is None else round(f["previous_w"]),
                     "power_limit_w": None if f.get("power_limit_w") is None else round(f["power_limit_w"]),
                     "saving_w": None if f.get("est_saving_w") is None else round(f["est_saving_w"], 1),
                     "predicted_pue": None if f.get("predicted_pue") is None else round(f["predicted_pue"], 3),
                     "reason": f.get("reason", "")})
    return rows


def pue_figure(pred, actual, lang: str) -> dict:
    traces = []
    for s in actual:
        traces.append({"type": "scatter", "mode": "lines", "name": t("optimizer.actual", lang),
                       "x": [x // 1_000_000 for x in s.times_ns], "y": s.values.get("pue", [])})
    for s in pred:
        traces.append({"type": "scatter", "mode": "lines+markers", "name": t("optimizer.predicted", lang),
                       "x": [x // 1_000_000 for x in s.times_ns], "y": s.values.get("predicted_pue", []),
                       "line": {"dash": "dot"}})
    return {"data": traces, "layout": c.dark_layout(xaxis={"type": "date", "gridcolor": c.GRID},
                                                  yaxis={"title": {"text": "PUE"}, "gridcolor": c.GRID})}


@cached
def update(ctx) -> dict:
    data = ctx.data
    opt = ctx.snap["optimizer"]
    pred = data.series("optimizer", ("predicted_pue",), 86400, 600, "mean", period_s=60)
    actual = data.series("facility", ("pue",), 86400, 600, "mean", period_s=60)
    mode = opt["mode"]
    return {"v": {"op_mode": (t(f"mode.{mode}", ctx.lang) if mode else "—", ""),
                  "op_capped": (f"{opt['gpus_capped']:,}", ""),
                  "op_now": (fmt_num((opt["saving_now_w"] or 0) / 1000 if opt["saving_now_w"] is not None else None,
                                     1, "kW"), ""),
                  "op_today": (fmt_num(opt["saved_today_kwh"], 0, "kWh"), "")},
            "fig": {"op_pue": pue_figure(pred, actual, ctx.lang)},
            "tbl": {"decisions": decision_rows(data.latest("optimizer"), ctx.tz, ctx.lang)}}


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    cols = [{"id": k, "name": t(n, L) if n.startswith("col.") else n, "type": typ} for k, n, typ in (
        ("time", "col.time", "text"), ("host", "col.host", "text"), ("uuid", "col.uuid", "text"),
        ("action", "col.action", "text"), ("mode", "Mode", "text"), ("previous_w", "col.previous_w", "numeric"),
        ("power_limit_w", "col.cap_w", "numeric"), ("saving_w", "col.saving_w", "numeric"),
        ("predicted_pue", "PUE", "numeric"), ("reason", "col.reason", "text"))]
    return html.Div([
        html.H1(t("optimizer.title", L), className="page-title"),
        html.Div([c.kpi("op_mode", t("opt.mode", L), u["v"]["op_mode"][0]),
                  c.kpi("op_capped", t("opt.capped", L), u["v"]["op_capped"][0]),
                  c.kpi("op_now", t("opt.saving_now", L), u["v"]["op_now"][0]),
                  c.kpi("op_today", t("opt.saved_today", L), u["v"]["op_today"][0])], className="kpis four"),
        c.panel(t("optimizer.pue", L), c.graph("op_pue", u["fig"]["op_pue"], height="320px")),
        c.panel(t("optimizer.title", L), c.table("decisions", cols, u["tbl"]["decisions"], page_size=15)),
    ])
