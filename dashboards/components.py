"""Reusable pieces: KPI tiles, panels, the alarm banner, the floor map, tables, dark figures.

Colour carries meaning only: neutral greys for normal, amber for warning, red for critical, and
dimmed text for stale values. Values that refresh in place carry pattern ids
``{"type": "v", "k": key}`` (text + class), ``{"type": "fig", "k": key}`` (figure, patched) and
``{"type": "tbl", "k": key}`` (table data).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dash import dcc, html
from dash.dash_table.DataTable import DataTable

from dashboards import alarms as rules
from dashboards.i18n import MESSAGES, fmt_time, t

BG = "#0b0d12"
PANEL = "#151922"
GRID = "#2a2f3a"
TEXT = "#d8dce4"
MUTED = "#7d8494"
NORMAL = "#3a4050"
WARN = "#f0a020"
CRIT = "#e5383b"
NODATA = "#1b1f27"
# Stale must not read as "normal": a muted violet, apart from the grey of normal and from the
# amber/red of alarms, with its value in brackets in the cell and its own legend entry.
STALE = "#5e4a99"

STATE_LEVEL = {"nodata": -1.0, "stale": -0.5, "ok": 0.0, "warning": 1.0, "critical": 2.0}
# Discrete scale over zmin=-1 .. zmax=2.
FLOOR_COLORSCALE = [
    [0.0, NODATA], [1 / 6, NODATA],
    [1 / 6, STALE], [2 / 6, STALE],
    [2 / 6, NORMAL], [0.5, NORMAL],
    [0.5, NORMAL], [4 / 6, NORMAL],
    [4 / 6, WARN], [5 / 6, WARN],
    [5 / 6, CRIT], [1.0, CRIT],
]


def vid(key: str) -> dict:
    return {"type": "v", "k": key}


def fid(key: str) -> dict:
    return {"type": "fig", "k": key}


def tid(key: str) -> dict:
    return {"type": "tbl", "k": key}


def testid(key: str) -> dict[str, Any]:
    """A component's data-testid attribute, as keyword arguments (its name is no Python identifier)."""
    return {"data-testid": key}


def value(key: str, text: str, cls: str = "", tag=html.Span) -> html.Span:
    return tag(text, id=vid(key), className=cls)


def kpi(key: str, label: str, text: str, cls: str = "", sub: str | None = None) -> html.Div:
    return html.Div([
        html.Div(label, className="kpi-label"),
        html.Div(text, id=vid(key), className=f"kpi-value {cls}".strip(), **testid(key)),
        html.Div(sub or "", className="kpi-sub") if sub is not None else None,
    ], className="kpi")


def panel(title: str, *children, cls: str = "") -> html.Section:
    return html.Section([html.H2(title, className="panel-title"), *children], className=f"panel {cls}".strip())


def state_class(state: str | None, stale: bool = False) -> str:
    parts = []
    if state in ("warning", "critical"):
        parts.append(state)
    if stale:
        parts.append("stale")
    return " ".join(parts)


def dark_layout(**extra) -> dict:
    layout = {
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"color": TEXT, "size": 16, "family": "Noto Sans, Noto Sans CJK KR, sans-serif"},
        "margin": {"l": 60, "r": 20, "t": 20, "b": 40},
        "xaxis": {"gridcolor": GRID, "zeroline": False},
        "yaxis": {"gridcolor": GRID, "zeroline": False},
        "legend": {"orientation": "h", "y": 1.08, "x": 0, "font": {"size": 15}},
        "hoverlabel": {"bgcolor": PANEL, "font": {"color": TEXT}},
        "uirevision": "keep",
    }
    layout.update(extra)
    return layout


def local_x(times_ns, tz: str) -> list[str]:
    """Plotly x values in the site's zone: wall-clock strings without an offset, which Plotly draws
    as they are (epoch milliseconds would be drawn in the browser's zone)."""
    zone = ZoneInfo(tz)
    return [datetime.fromtimestamp(t_ns / 1e9, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
            for t_ns in times_ns]


def zone_label(tz: str) -> str:
    """The zone's short name now (KST), or its key when it has none."""
    name = datetime.now(ZoneInfo(tz)).strftime("%Z")
    return name if name and not name.startswith(("+", "-")) else tz


def time_axis(tz: str, lang: str, **extra) -> dict:
    """A date x axis labelled with the site's zone (the values come from :func:`local_x`)."""
    # numeric tick labels: the same in every language (Plotly's own would be English month names)
    return {"type": "date", "gridcolor": GRID, "tickformat": "%m-%d %H:%M",
            "title": {"text": t("axis.time", lang, zone=zone_label(tz)),
                                                        "font": {"size": 13, "color": MUTED}}, **extra}


def graph(key: str, figure: dict, height: str = "300px", cls: str = "") -> dcc.Graph:
    return dcc.Graph(id=fid(key), figure=figure, config={"displayModeBar": False, "responsive": True},
                     style={"height": height}, className=cls)


def table(key: str, columns: list[Any], data: list[dict], *, page_size: int = 25, sort: bool = True,
          style_cond: list | None = None, **kwargs) -> DataTable:
    """A DataTable in the wall's style; *columns*: its column dicts (id, name, type...)."""
    return DataTable(
        id=tid(key), columns=columns, data=data, page_size=page_size,
        sort_action=kwargs.pop("sort_action", "native" if sort else "none"),
        style_as_list_view=True,
        style_header={"backgroundColor": PANEL, "color": MUTED, "fontWeight": "600", "border": "none"},
        style_cell={"backgroundColor": BG, "color": TEXT, "border": f"1px solid {GRID}",
                    "fontSize": "1rem", "padding": "0.35rem 0.6rem", "textAlign": "right",
                    "fontFamily": "inherit"},
        style_cell_conditional=[{"if": {"column_type": "text"}, "textAlign": "left"}],
        style_data_conditional=(style_cond or []) + [
            {"if": {"filter_query": '{_state} = "warning"'}, "color": WARN},
            {"if": {"filter_query": '{_state} = "critical"'}, "color": CRIT, "fontWeight": "700"},
            {"if": {"filter_query": '{_state} = "stale"'}, "color": MUTED},
        ],
        **kwargs)


def alarm_message(a: dict, lang: str) -> str:
    """One line for one alarm (one device, its parts listed). English: the engine's summary as
    it wrote it; Korean: the rule's name, the value against its threshold and the parts."""
    if lang == "en" and a.get("summary"):
        return a["summary"]
    rule = a.get("rule", "?")
    text = f"{t('rule.' + rule, lang)}: {a.get('entity', '?')}"
    if a.get("value") is not None:
        text += f" {fmt_value(a['value'], a.get('unit'), lang)}"
        if a.get("threshold") is not None:
            text += f" ({t('alarm.col.threshold', lang)} {fmt_value(a['threshold'], a.get('unit'), lang)})"
    if a.get("parts"):
        text += f" · {', '.join(a['parts'])}"
    return text


def fmt_value(v, unit: str | None, lang: str = "en") -> str:
    digits = 0 if abs(float(v)) >= 100 else 1
    unit = t(f"unit.{unit}", lang) if unit and f"unit.{unit}" in MESSAGES else unit
    return f"{float(v):,.{digits}f} {unit}".strip() if unit else f"{float(v):,.{digits}f}"


BANNER_LINES = 3


def banner(alarms: list[dict], lang: str, tz: str, limit: int = BANNER_LINES) -> list:
    """Counts per severity, then one line per device (most severe, oldest first); what does not
    fit is summarised by rule ("12 × PDU phase load"), never a bare "+59 more"."""
    shown = rules.annunciated(alarms)
    shelved = len(alarms) - len(shown)
    n = rules.counts(shown)
    if not shown:
        items = [html.Span(t("banner.ok", lang), className="banner-ok")]
        if shelved:
            items.append(html.Span(t("banner.shelved", lang, n=shelved), className="banner-more"))
        return items
    count = t("banner.count", lang, crit=n["critical"], warn=n["warning"])
    if shelved:
        count += " · " + t("banner.shelved", lang, n=shelved)
    items = [html.Span(count, className="banner-count")]
    for a in shown[:limit]:
        acked = f" · {t('state.acked', lang)} {a.get('by', '')}".rstrip() if a.get("state") == "acked" else ""
        items.append(html.Span([
            alarm_message(a, lang),
            html.Span(f" · {fmt_time(a.get('raised_ns'), tz, lang)}{acked}", className="banner-time"),
        ], className=f"banner-item {a['severity']}"))
    rest = shown[limit:]
    if rest:
        groups = ", ".join(f"{k} × {t('rule.' + r, lang)}" for r, k in rules.by_rule(rest)[:4])
        items.append(html.Span(t("banner.rest", lang, n=len(rest), groups=groups), className="banner-more"))
    return items


def floor_legend(lang: str) -> html.Div:
    """What the floor map's colours mean (the same swatches as its cells)."""
    items = [("normal", NORMAL, ""), ("warning", WARN, ""), ("critical", CRIT, ""), ("stale", STALE, "(21.4)"),
             ("nodata", NODATA, "—")]
    return html.Div([html.Span([html.Span(sample, className=f"swatch swatch-{k}", style={"background": color}),
                                html.Span(t(f"legend.{k}", lang), className="legend-label")], className="legend-item")
                     for k, color, sample in items], className="floor-legend", **testid("floor-legend"))


def banner_class(alarms: list[dict]) -> str:
    alarms = rules.annunciated(alarms)
    if any(a["severity"] == "critical" for a in alarms):
        return "banner critical"
    if alarms:
        return "banner warning"
    return "banner ok"
