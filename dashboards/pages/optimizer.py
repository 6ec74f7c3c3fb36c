"""Optimizer: decision log and predicted vs actual PUE."""

from __future__ import annotations

from dash import html

from dashboards import components as c
from dashboards.i18n import fmt_num, fmt_time, t
from dashboards.pages.base import cached
from dcim.metrics import OPTIMIZER_CYCLE_ACTION

PATH = "/optimizer"
TITLE = "nav.optimizer"
LOG_ROWS = 200


# Rows of the optimizer measurement that are not one GPU's decision: the daemon's cycle summary,
# the measured saving (M&V) and demand-response audit rows. Each has its own place on the page.
NOT_PER_GPU = (OPTIMIZER_CYCLE_ACTION, "measured", "demand_response")


def _w(v, digits=0):
    return None if v is None else round(float(v), digits)


def decision_rows(points, tz: str, lang: str, limit: int = LOG_ROWS) -> list[dict]:
    """The newest decision of each (GPU, action), newest first; the reason as the optimizer wrote it."""
    rows = []
    per_gpu = [p for p in points if p.tags.get("action") not in NOT_PER_GPU and p.tags.get("uuid")]
    for p in sorted(per_gpu, key=lambda p: p.time_ns, reverse=True)[:limit]:
        f = p.fields
        rows.append({"time": fmt_time(p.time_ns, tz, lang, with_date=True), "host": p.tags.get("host", ""),
                     "uuid": p.tags.get("uuid", ""), "action": t(f"action.{p.tags.get('action', '')}", lang),
                     "mode": t(f"mode.{f['mode']}", lang) if f.get("mode") else "",
                     "previous_w": _w(f.get("previous_w")), "power_limit_w": _w(f.get("power_limit_w")),
                     "saving_w": _w(f.get("est_saving_w"), 1), "predicted_pue": _w(f.get("predicted_pue"), 3),
                     "reason": f.get("reason", "")})
    return rows


def cycle_rows(points, tz: str, lang: str) -> list[dict]:
    """The daemon's newest cycle summary (the whole facility's estimated saving), apart from the GPUs."""
    rows = []
    for p in sorted((p for p in points if p.tags.get("action") == OPTIMIZER_CYCLE_ACTION), key=lambda p: p.time_ns,
                    reverse=True):
        f = p.fields
        rows.append({"time": fmt_time(p.time_ns, tz, lang, with_date=True),
                     "mode": t(f"mode.{f['mode']}", lang) if f.get("mode") else "",
                     "saving_kw": None if f.get("est_saving_w") is None else round(f["est_saving_w"] / 1000, 2),
                     "predicted_pue": _w(f.get("predicted_pue"), 3), "reason": f.get("reason", "")})
    return rows


def measured(points) -> dict | None:
    """The newest measured saving (M&V) the optimizer wrote, or None."""
    pts = [p for p in points if p.tags.get("action") == "measured" and p.fields.get("measured_saving_pct") is not None]
    return max(pts, key=lambda p: p.time_ns).fields if pts else None


def measured_text(m: dict | None, lang: str) -> str:
    if m is None:
        return t("optimizer.no_measured", lang)
    lo, hi = m.get("measured_ci_low_pct"), m.get("measured_ci_high_pct")
    text = fmt_num(m["measured_saving_pct"], 1, "%")
    if lo is not None and hi is not None:
        text += " " + t("optimizer.ci", lang, lo=f"{lo:.1f}", hi=f"{hi:.1f}")
    return text


def measured_groups(m: dict | None, lang: str) -> str:
    if m is None or m.get("treated_jobs") is None:
        return ""
    return t("optimizer.groups", lang, treated=int(m["treated_jobs"]), control=int(m.get("control_jobs") or 0))


def class_rows(gpus: list[dict], bounds: dict, lang: str) -> list[dict]:
    """Per job class: GPUs, how many are capped and how deep (mean cap as % of the default limit),
    against the throughput loss the optimizer may cost that class (its configured bound)."""
    by: dict[str, dict] = {}
    for g in gpus:
        if g.get("stale"):
            continue
        cls = g.get("job_class") or ("" if not g.get("job") else "unknown")
        row = by.setdefault(cls, {"gpus": 0, "capped": 0, "ratio": 0.0})
        row["gpus"] += 1
        lim, dflt = g.get("power_limit_w"), g.get("power_limit_default_w")
        if lim is not None and dflt and lim < dflt - 1.0:
            row["capped"] += 1
            row["ratio"] += lim / dflt
    out = []
    for cls in sorted(by, key=lambda k: (k == "", k)):
        r = by[cls]
        bound = bounds.get(cls)
        out.append({"job_class": t(f"class.{cls or 'idle'}", lang), "gpus": r["gpus"], "capped": r["capped"],
                    "cap_pct": round(100 * r["ratio"] / r["capped"], 0) if r["capped"] else None,
                    "loss_bound_pct": None if bound is None else round(100 * bound, 1), "_state": "ok"})
    return out


def pue_figure(pred, actual, lang: str, tz: str) -> dict:
    traces = []
    for s in actual:
        traces.append({"type": "scatter", "mode": "lines", "name": t("optimizer.actual", lang),
                       "x": c.local_x(s.times_ns, tz), "y": s.values.get("pue", [])})
    for s in pred:
        traces.append({"type": "scatter", "mode": "lines+markers", "name": t("optimizer.predicted", lang),
                       "x": c.local_x(s.times_ns, tz), "y": s.values.get("predicted_pue", []),
                       "line": {"dash": "dot"}})
    return {"data": traces, "layout": c.dark_layout(xaxis=c.time_axis(tz, lang),
                                                  yaxis={"title": {"text": "PUE"}, "gridcolor": c.GRID})}


@cached
def update(ctx) -> dict:
    data = ctx.data
    L = ctx.lang
    opt = ctx.snap["optimizer"]
    pred = data.series("optimizer", ("predicted_pue",), 86400, 600, "mean", period_s=60)
    actual = data.series("facility", ("pue",), 86400, 600, "mean", period_s=60)
    mode = opt["mode"]
    points = data.latest("optimizer")
    m = measured(points)
    return {"v": {"op_mode": (t(f"mode.{mode}", L) if mode else "—", ""),
                  "op_capped": (f"{opt['gpus_capped']:,}", ""),
                  "op_now": (fmt_num((opt["saving_now_w"] or 0) / 1000 if opt["saving_now_w"] is not None else None,
                                     1, "kW"), ""),
                  "op_today": (fmt_num(opt["saved_today_kwh"], 0, "kWh"), ""),
                  "op_measured": (measured_text(m, L), "" if m else "zero"),
                  "op_groups": (measured_groups(m, L), "")},
            "fig": {"op_pue": pue_figure(pred, actual, L, ctx.tz)},
            "tbl": {"decisions": decision_rows(points, ctx.tz, L), "cycles": cycle_rows(points, ctx.tz, L)[:1],
                    "classes": class_rows(data.gpus(), dict(ctx.config.optimizer.throughput_loss_bound), L)}}


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    cols = [{"id": k, "name": t(n, L), "type": typ} for k, n, typ in (
        ("time", "col.time", "text"), ("host", "col.host", "text"), ("uuid", "col.uuid", "text"),
        ("action", "col.action", "text"), ("mode", "opt.mode", "text"), ("previous_w", "col.previous_w", "numeric"),
        ("power_limit_w", "col.cap_w", "numeric"), ("saving_w", "col.saving_w", "numeric"),
        ("predicted_pue", "col.predicted_pue", "numeric"), ("reason", "col.reason", "text"))]
    ccols = [{"id": k, "name": t(n, L), "type": typ} for k, n, typ in (
        ("time", "col.time", "text"), ("mode", "opt.mode", "text"), ("saving_kw", "col.saving_kw", "numeric"),
        ("predicted_pue", "col.predicted_pue", "numeric"), ("reason", "col.reason", "text"))]
    kcols = [{"id": k, "name": t(n, L), "type": typ} for k, n, typ in (
        ("job_class", "col.job_class", "text"), ("gpus", "col.gpus", "numeric"), ("capped", "opt.capped", "numeric"),
        ("cap_pct", "col.cap_pct", "numeric"), ("loss_bound_pct", "col.loss_bound_pct", "numeric"))]
    return html.Div([
        html.H1(t("optimizer.title", L), className="page-title"),
        html.Div([c.kpi("op_mode", t("opt.mode", L), u["v"]["op_mode"][0]),
                  c.kpi("op_capped", t("opt.capped", L), u["v"]["op_capped"][0]),
                  c.kpi("op_now", t("optimizer.estimated_now", L), u["v"]["op_now"][0]),
                  c.kpi("op_today", t("opt.saved_today", L), u["v"]["op_today"][0]),
                  html.Div([html.Div(t("optimizer.measured", L), className="kpi-label"),
                            html.Div(u["v"]["op_measured"][0], id=c.vid("op_measured"),
                                     className=f"kpi-value {u['v']['op_measured'][1]}".strip(),
                                     **{"data-testid": "op_measured"}),
                            html.Div(u["v"]["op_groups"][0], id=c.vid("op_groups"), className="kpi-sub")],
                           className="kpi")], className="kpis five"),
        html.Div([
            c.panel(t("optimizer.classes", L), c.table("classes", kcols, u["tbl"]["classes"], sort=False,
                                                       page_size=6 if ctx.kiosk else 20)),
            c.panel(t("optimizer.pue", L), c.graph("op_pue", u["fig"]["op_pue"], height="15rem")),
        ], className="two-col"),
        c.panel(t("optimizer.cycle", L), c.table("cycles", ccols, u["tbl"]["cycles"], sort=False, page_size=1)),
        c.panel(t("optimizer.per_gpu", L), c.table("decisions", cols, u["tbl"]["decisions"],
                                                   page_size=6 if ctx.kiosk else 15)),
    ])
