"""The alarm list: every active alarm, most severe and oldest first."""

from __future__ import annotations

from dash import html

from dashboards import components as c
from dashboards.pages import cached
from dashboards.i18n import fmt_time, t

PATH = "/alarms"
TITLE = "nav.alarms"


def alarm_rows(alarms: list[dict], lang: str, tz: str) -> list[dict]:
    rows = []
    for a in alarms:
        unit = f" {a['unit']}" if a.get("unit") else ""
        rows.append({
            "severity": t(f"sev.{a['severity']}", lang), "subject": a["subject"],
            "message": c.alarm_message(a, lang),
            "value": "" if a.get("value") is None or a["kind"] in ("ups_battery", "gpu_throttle")
            else f"{a['value']:.1f}{unit}",
            "threshold": "" if a.get("threshold") is None or a["kind"] in ("ups_battery", "gpu_throttle")
            else f"{a['threshold']:.1f}{unit}",
            "first_seen": fmt_time(a["first_seen_ns"], tz, lang, with_date=True),
            "_state": a["severity"],
        })
    return rows


@cached
def update(ctx) -> dict:
    alarms = ctx.snap["alarms"]
    crit = sum(1 for a in alarms if a["severity"] == "critical")
    return {"v": {"al_crit": (str(crit), "critical" if crit else "zero"),
                  "al_warn": (str(len(alarms) - crit), "warning" if len(alarms) - crit else "zero")},
            "fig": {}, "tbl": {"alarms": alarm_rows(alarms, ctx.lang, ctx.tz)}}


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    cols = [{"id": k, "name": t(f"alarm.col.{k}", L), "type": "text"}
            for k in ("severity", "subject", "message", "value", "threshold", "first_seen")]
    return html.Div([
        html.H1(t("nav.alarms", L), className="page-title"),
        html.Div([
            c.kpi("al_crit", t("sev.critical", L), *u["v"]["al_crit"]),
            c.kpi("al_warn", t("sev.warning", L), *u["v"]["al_warn"]),
        ], className="kpis two"),
        c.panel(t("panel.alarms", L), c.table("alarms", cols, u["tbl"]["alarms"], page_size=50)),
    ])
