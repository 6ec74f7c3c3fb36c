"""Energy: power trends, daily energy-based PUE, and the quarterly report (CSV download).

The report comes from ``dcim.report`` (imported lazily); without it the page says so.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import html

from dashboards import components as c
from dashboards.pages import cached
from dashboards.data import NS, quarter_of
from dashboards.i18n import fmt_num, t

PATH = "/energy"
TITLE = "nav.energy"
REPORT_BY = ("site", "room", "rack", "tenant", "gpu", "job")


def report_available() -> bool:
    try:
        import dcim.report as report  # noqa: F401
    except ImportError:
        return False
    return hasattr(report, "build_report") and hasattr(report, "write_csv")


def daily_pue(series, tz: str) -> tuple[list[str], list[float]]:
    """Energy-based PUE per local day from hourly mean powers."""
    fac: dict[str, float] = {}
    it: dict[str, float] = {}
    zone = ZoneInfo(tz)
    for s in series:
        for i, ts in enumerate(s.times_ns):
            a = s.values.get("total_power_w", [None])[i]
            b = s.values.get("it_power_w", [None])[i]
            if a is None or b is None:
                continue
            day = datetime.fromtimestamp(ts / NS, zone).date().isoformat()
            fac[day] = fac.get(day, 0.0) + a
            it[day] = it.get(day, 0.0) + b
    days = sorted(d for d in fac if it.get(d))
    return days, [round(fac[d] / it[d], 4) for d in days]


@cached
def update(ctx) -> dict:
    data = ctx.data
    L = ctx.lang
    week = data.series("facility", ("total_power_w", "it_power_w", "cooling_power_w"), 7 * 86400, 3600, "mean",
                       period_s=300)
    traces = []
    for s in week:
        x = [ts // 1_000_000 for ts in s.times_ns]
        for f, key in (("total_power_w", "kpi.facility_kw"), ("it_power_w", "kpi.it_kw"),
                       ("cooling_power_w", "kpi.cooling_kw")):
            traces.append({"type": "scatter", "mode": "lines", "name": t(key, L), "x": x,
                           "y": [None if v is None else v / 1000 for v in s.values.get(f, [])]})
    month = data.series("facility", ("total_power_w", "it_power_w"), 30 * 86400, 3600.0, "mean", period_s=300)
    days, pue = daily_pue(month, ctx.tz)
    trend = {"data": traces, "layout": c.dark_layout(xaxis={"type": "date", "gridcolor": c.GRID},
                                                     yaxis={"title": {"text": "kW"}, "gridcolor": c.GRID})}
    pue_fig = {"data": [{"type": "bar", "x": days, "y": pue, "marker": {"color": c.NORMAL},
                         "text": [f"{p:.2f}" for p in pue], "textposition": "outside"}],
               "layout": c.dark_layout(yaxis={"title": {"text": "PUE"}, "gridcolor": c.GRID,
                                              "range": [1, max(pue + [1.5]) * 1.05]})}
    return {"v": {"en_pue24": (fmt_num(data.pue_period(86400), 2), ""),
                  "en_pue30": (fmt_num(data.pue_period(30 * 86400), 2), "")},
            "fig": {"en_trend": trend, "en_pue": pue_fig}, "tbl": {}}


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    extra = "".join(f"&{k}={ctx.params[k]}" for k in ("lang",) if k in ctx.params)
    if report_available():
        now = ctx.data.now()
        quarters = [quarter_of(now, ctx.tz, -i) for i in range(0, 5)]
        report = html.Table([html.Tbody([
            html.Tr([html.Td(q, className="quarter")] + [
                html.Td(html.A(f"{by} CSV", href=f"/download/report.csv?period={q}&by={by}{extra}",
                               className="report-link", **{"data-period": q, "data-by": by}))
                for by in REPORT_BY])
            for q in quarters])], className="report-table")
    else:
        report = html.Div(t("energy.unavailable", L), className="unavailable", id="report-unavailable")
    return html.Div([
        html.H1(t("energy.title", L), className="page-title"),
        html.Div([c.kpi("en_pue24", t("kpi.pue_24h", L), u["v"]["en_pue24"][0]),
                  c.kpi("en_pue30", t("kpi.pue_30d", L), u["v"]["en_pue30"][0])], className="kpis two"),
        html.Div([
            c.panel(t("energy.trend", L), c.graph("en_trend", u["fig"]["en_trend"], height="340px")),
            c.panel(t("energy.pue_trend", L), c.graph("en_pue", u["fig"]["en_pue"], height="340px")),
        ], className="two-col"),
        c.panel(f"{t('energy.report', L)} · {t('energy.download', L)}", report),
    ])
