"""The alarm list: the engine's active alarms (one per device, its parts listed), most severe and
oldest first; acknowledge or shelve one (as the signed-in operator, with a note); and the
history of the last seven days. Every time in the site's zone."""

from __future__ import annotations

from dash import dcc, html

from dashboards import components as c
from dashboards.i18n import fmt_time, t
from dashboards.pages.base import cached

PATH = "/alarms"
TITLE = "nav.alarms"
SHELVE_HOURS = (1, 4, 8, 24, 72)
ACTIVE_COLS = ("severity", "state", "message", "value", "threshold", "raised", "by", "note")
HISTORY_COLS = ("time", "id", "severity", "state", "by", "note")
# the wall shows one page of alarms at a time, rotated by the kiosk
PAGE_ROWS = 8


def _num(a: dict, key: str, lang: str) -> str:
    return "" if a.get(key) is None else c.fmt_value(a[key], a.get("unit"), lang)


def state_text(a: dict, lang: str, tz: str) -> str:
    text = t(f"state.{a.get('state', 'raised')}", lang)
    if a.get("state") == "shelved" and a.get("shelved_until_ns"):
        text = t("alarms.shelved_until", lang, until=fmt_time(a["shelved_until_ns"], tz, lang, with_date=True))
    return text


def alarm_rows(alarms: list[dict], lang: str, tz: str) -> list[dict]:
    rows = []
    for a in alarms:
        rows.append({
            "id": a.get("id", ""), "severity": t(f"sev.{a['severity']}", lang), "state": state_text(a, lang, tz),
            "message": c.alarm_message(a, lang), "value": _num(a, "value", lang), "threshold": _num(a, "threshold", lang),
            "raised": fmt_time(a.get("raised_ns"), tz, lang, with_date=True),
            "by": a.get("by", "") if a.get("state") in ("acked", "shelved") else "",
            "note": a.get("note", "") if a.get("state") in ("acked", "shelved") else "",
            "_state": a["severity"] if a.get("state") == "raised" else "stale",
        })
    return rows


def history_rows(history: list[dict], lang: str, tz: str, limit: int = 500) -> list[dict]:
    return [{"time": fmt_time(h.get("time_ns"), tz, lang, with_date=True), "id": h.get("id", ""),
             "severity": t(f"sev.{h.get('severity', 'warning')}", lang), "state": t(f"state.{h.get('state')}", lang),
             "by": h.get("by", ""), "note": h.get("note", ""),
             "_state": h.get("severity") if h.get("state") == "raised" else "ok"} for h in history[:limit]]


def options(alarms: list[dict], lang: str) -> list[dict]:
    return [{"label": f"{t('sev.' + a['severity'], lang)} · {a.get('id', '')}", "value": a.get("id", "")}
            for a in alarms if a.get("state") != "cleared"]


@cached
def update(ctx) -> dict:
    alarms = ctx.data.alarms()
    crit = sum(1 for a in alarms if a["severity"] == "critical")
    warn = len(alarms) - crit
    return {"v": {"al_crit": (str(crit), "critical" if crit else "zero"),
                  "al_warn": (str(warn), "warning" if warn else "zero")},
            "fig": {}, "tbl": {"alarms": alarm_rows(alarms, ctx.lang, ctx.tz),
                               "alarm_history": history_rows(ctx.data.alarm_history(), ctx.lang, ctx.tz)}}


def has_rows(ctx) -> bool:
    """The kiosk skips this page when there is nothing on it."""
    return bool(ctx.data.alarms())


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    cols = [{"id": k, "name": t(f"alarm.col.{k}", L), "type": "text"} for k in ACTIVE_COLS]
    hcols = [{"id": k, "name": t(f"alarm.col.{k}", L), "type": "text"} for k in HISTORY_COLS]
    rows = u["tbl"]["alarms"]
    # long summaries wrap inside the table instead of pushing columns off the screen
    wrap = {"style_data": {"whiteSpace": "normal", "height": "auto"}, "style_table": {"overflowX": "auto"}}
    active = c.table("alarms", cols, rows, page_size=PAGE_ROWS, page_action="native", sort=False, **wrap) if rows or \
        not ctx.kiosk else html.Div(t("alarms.none", L), className="unavailable")
    parts = [
        html.H1(t("nav.alarms", L), className="page-title"),
        html.Div([
            c.kpi("al_crit", t("sev.critical", L), *u["v"]["al_crit"]),
            c.kpi("al_warn", t("sev.warning", L), *u["v"]["al_warn"]),
        ], className="kpis two"),
        c.panel(t("panel.alarms", L), active),
    ]
    if not ctx.kiosk:  # the wall only watches; acting and history are for a desk
        parts.append(c.panel(t("alarms.act", L), action_form(ctx.data.alarms(), L)))
        parts.append(c.panel(t("alarms.history", L), c.table("alarm_history", hcols, u["tbl"]["alarm_history"],
                                                             page_size=20, sort=False)))
    return html.Div(parts)


def action_form(alarms: list[dict], lang: str) -> html.Div:
    return html.Div([
        dcc.Dropdown(id="alarm-pick", options=options(alarms, lang), placeholder=t("alarms.pick", lang),
                     className="alarm-pick"),
        dcc.Input(id="alarm-note", type="text", maxLength=500, placeholder=t("alarms.note", lang),
                  className="alarm-note", debounce=False),
        html.Button(t("alarms.ack", lang), id="alarm-ack", n_clicks=0, className="btn"),
        dcc.Dropdown(id="alarm-shelve-h", options=[{"label": t("alarms.for_h", lang, h=h), "value": h}
                                                   for h in SHELVE_HOURS], value=4, clearable=False,
                     className="alarm-hours"),
        html.Button(t("alarms.shelve", lang), id="alarm-shelve", n_clicks=0, className="btn"),
        html.Div(id="alarm-result", className="alarm-result", role="status"),
    ], className="alarm-actions")
