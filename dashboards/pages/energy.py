"""Energy: power trends, daily energy-based PUE, and the quarterly report (CSV download).

The report comes from ``dcim.report`` (imported lazily); without it the page says so.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import html

from dashboards import components as c
from dashboards.data import NS, quarter_of
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached

PATH = "/energy"
TITLE = "nav.energy"
REPORT_BY = ("site", "room", "rack", "tenant", "gpu", "job")


def report_available() -> bool:
    try:
        import dcim.report as report  # noqa: F401
    except ImportError:
        return False
    return hasattr(report, "build_report") and hasattr(report, "write_csv")


def daily_pue(series, tz: str) -> tuple[list[str], list[float], list[int]]:
    """Energy-based PUE per local day from hourly mean powers, and how many hours of each day had
    both readings: a day's PUE is over its measured hours only (hours without data are not
    averaged in as zero, nor filled)."""
    fac: dict[str, float] = {}
    it: dict[str, float] = {}
    hours: dict[str, int] = {}
    zone = ZoneInfo(tz)
    for s in series:
        tot, itv = s.values.get("total_power_w", []), s.values.get("it_power_w", [])
        for i, ts in enumerate(s.times_ns):
            a = tot[i] if i < len(tot) else None
            b = itv[i] if i < len(itv) else None
            if a is None or b is None:
                continue
            day = datetime.fromtimestamp(ts / NS, zone).date().isoformat()
            fac[day] = fac.get(day, 0.0) + a
            it[day] = it.get(day, 0.0) + b
            hours[day] = hours.get(day, 0) + 1
    days = sorted(d for d in fac if it.get(d))
    return days, [round(fac[d] / it[d], 4) for d in days], [hours[d] for d in days]


def coverage_text(have: int, total: int, lang: str) -> str:
    if total == 0:
        return "—"
    return t("energy.coverage", lang, pct=f"{100 * have / total:.0f}", have=have, total=total)


@cached
def update(ctx) -> dict:
    data = ctx.data
    L = ctx.lang
    week = data.series("facility", ("total_power_w", "it_power_w", "cooling_power_w"), 7 * 86400, 3600, "mean",
                       period_s=300)
    traces = []
    week_hours = 0
    for s in week:
        # hours without readings stay gaps (None), never a line drawn across them
        x = c.local_x(s.times_ns, ctx.tz)
        week_hours = max(week_hours, sum(1 for v in s.values.get("total_power_w", []) if v is not None))
        for f, key in (("total_power_w", "kpi.facility_kw"), ("it_power_w", "kpi.it_kw"),
                       ("cooling_power_w", "kpi.cooling_kw")):
            traces.append({"type": "scatter", "mode": "lines", "name": t(key, L), "x": x, "connectgaps": False,
                           "y": [None if v is None else v / 1000 for v in s.values.get(f, [])]})
    month = data.series("facility", ("total_power_w", "it_power_w"), 30 * 86400, 3600.0, "mean", period_s=300)
    days, pue, hours = daily_pue(month, ctx.tz)
    trend = {"data": traces, "layout": c.dark_layout(xaxis=c.time_axis(ctx.tz, L),
                                                     yaxis={"title": {"text": "kW"}, "gridcolor": c.GRID})}
    pue_fig = {"data": [{"type": "bar", "x": days, "y": pue, "marker": {"color": c.NORMAL},
                         "text": [f"{p:.2f}" + ("" if h >= 24 else f" ({h} h)") for p, h in zip(pue, hours)],
                         "textposition": "outside", "name": "PUE"}],
               "layout": c.dark_layout(xaxis={"gridcolor": c.GRID, "tickformat": "%m-%d",
                                              "title": {"text": t("axis.day", L, zone=c.zone_label(ctx.tz)),
                                                        "font": {"size": 13, "color": c.MUTED}}},
                                       yaxis={"title": {"text": "PUE"}, "gridcolor": c.GRID,
                                              "range": [1, max(pue + [1.5]) * 1.05]})}
    return {"v": {"en_pue24": (fmt_num(data.pue_period(86400), 2), ""),
                  "en_pue30": (fmt_num(data.pue_period(30 * 86400), 2), ""),
                  "en_cov7": (coverage_text(min(week_hours, 7 * 24), 7 * 24, L), "warning" if week_hours < 7 * 24 * 0.9
                              else "")},
            "fig": {"en_trend": trend, "en_pue": pue_fig}, "tbl": {}}


def quarter_rows(ctx) -> list[tuple[str, int, int]]:
    """The quarters offered (this one and the four before), each with its hours of facility data
    and its hours so far."""
    from dcim.report.periods import quarter

    now = ctx.data.now()
    out = []
    for i in range(0, 5):
        q = quarter_of(now, ctx.tz, -i)
        period = quarter(q, ctx.tz)
        have, total = ctx.data.hours_with_data(period.start_ns, period.end_ns)
        out.append((q, have, total))
    return out


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    extra = "".join(f"&{k}={ctx.params[k]}" for k in ("lang",) if k in ctx.params)
    if report_available():
        rows = []
        for q, have, total in quarter_rows(ctx):
            cov = html.Td(coverage_text(have, total, L), className="coverage" + (" warning" if have < total else ""))
            if have == 0:  # nothing to report: say so, offer no empty CSV
                rows.append(html.Tr([html.Td(q, className="quarter"), html.Td(t("energy.empty_quarter", L),
                                                                               colSpan=len(REPORT_BY) + 1,
                                                                               className="unavailable")]))
                continue
            rows.append(html.Tr([html.Td(q, className="quarter"), cov] + [
                html.Td(html.A(f"{by} CSV", href=f"/download/report.csv?period={q}&by={by}{extra}",
                               className="report-link", **{"data-period": q, "data-by": by}))
                for by in REPORT_BY]))
        report = html.Table([html.Tbody(rows)], className="report-table")
    else:
        report = html.Div(t("energy.unavailable", L), className="unavailable", id="report-unavailable")
    return html.Div([
        html.H1(t("energy.title", L), className="page-title"),
        html.Div([c.kpi("en_pue24", t("kpi.pue_24h", L), u["v"]["en_pue24"][0]),
                  c.kpi("en_pue30", t("kpi.pue_30d", L), u["v"]["en_pue30"][0]),
                  c.kpi("en_cov7", t("energy.coverage_7d", L), *u["v"]["en_cov7"])], className="kpis three"),
        html.Div([
            c.panel(t("energy.trend", L), c.graph("en_trend", u["fig"]["en_trend"], height="340px")),
            c.panel(t("energy.pue_trend", L), c.graph("en_pue", u["fig"]["en_pue"], height="340px")),
        ], className="two-col"),
        c.panel(f"{t('energy.report', L)} · {t('energy.download', L)}", report),
    ])
