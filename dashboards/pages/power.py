"""Power chain: UPS → PDU → feed A/B, with the 80 % breaker derate and A/B balance."""

from __future__ import annotations

from dash import html

from dashboards import alarms as rules
from dashboards import components as c
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached
from dashboards.power_chain import _kw, _r, chain_summary, hall_rows, pdu_rows, rack_feed_rows, ups_headroom

PATH = "/power"
TITLE = "nav.power"


@cached
def update(ctx) -> dict:
    snap = ctx.snap
    d = ctx.data.derate
    ups_rows = []
    rooms_of = {cfg.name: cfg.rooms for cfg in ctx.config.ups}
    for u in snap["ups"]:
        state = "critical" if u.get("on_battery") else ("stale" if u["stale"] else "ok")
        if state == "ok" and u.get("load_pct") is not None and u["load_pct"] >= rules.UPS_WARN_PCT:
            state = "warning"
        _load, head = ups_headroom(u)
        ups_rows.append({"ups": u["ups"], "rooms": ", ".join(rooms_of.get(u["ups"], [])) or "—",
                         "output_kw": _kw(u.get("output_power_w")), "capacity": u["capacity_kw"],
                         "load_pct": _r(u.get("load_pct"), 0), "headroom_kw": _r(head, 0),
                         "battery": t("yes" if u.get("on_battery") else "no", ctx.lang)
                         if u.get("on_battery") is not None else "—", "_state": state})
    s = chain_summary(snap, d)
    return {"v": {"pw_a": (fmt_num(s["a_kw"], 1, "kW"), ""), "pw_b": (fmt_num(s["b_kw"], 1, "kW"), ""),
                  "pw_bal": (fmt_num(s["a_share"], 0, "%"), "")},
            "fig": {},
            "tbl": {"ups": ups_rows, "halls": hall_rows(snap, ctx.config.ups, [r.name for r in ctx.config.rooms]),
                    "pdus": pdu_rows(snap, d), "feeds": rack_feed_rows(snap, d)}}


KIOSK_ROWS = 8  # rows per table page on the wall: the page fits the screen, the kiosk pages through the rest


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    rows = KIOSK_ROWS if ctx.kiosk else 40

    def col(key, name, typ="numeric"):
        return {"id": key, "name": t(name, L), "type": typ}

    return html.Div([
        html.H1(t("power.title", L), className="page-title"),
        html.Div([
            c.kpi("pw_a", t("chain.feed_a", L), u["v"]["pw_a"][0]),
            c.kpi("pw_b", t("chain.feed_b", L), u["v"]["pw_b"][0]),
            c.kpi("pw_bal", t("chain.balance", L), u["v"]["pw_bal"][0]),
        ], className="kpis three"),
        html.Div([
            c.panel("UPS", c.table("ups", [col("ups", "col.ups", "text"), col("rooms", "col.rooms", "text"),
                                           col("output_kw", "col.output_w"), col("capacity", "col.capacity"),
                                           col("load_pct", "col.ups_load"), col("headroom_kw", "col.headroom_kw"),
                                           col("battery", "col.battery", "text")], u["tbl"]["ups"],
                                   page_size=4 if ctx.kiosk else 20)),
            c.panel(t("power.halls", L), c.table("halls", [
                col("room", "col.room", "text"), col("ups", "col.ups", "text"), col("capacity", "col.capacity"),
                col("load_pct", "col.ups_load"), col("headroom_kw", "col.headroom_kw")], u["tbl"]["halls"],
                page_size=4 if ctx.kiosk else 20)),
        ], className="two-col"),
        html.Div([
            c.panel(t("col.pdu", L), c.table("pdus", [
                col("pdu", "col.pdu", "text"), col("rack", "col.rack", "text"), col("feed", "col.feed", "text"),
                col("power_kw", "col.rack_kw"), col("current_a", "col.current_a"), col("limit_a", "col.limit_a"),
                col("load_pct", "col.load_pct")], u["tbl"]["pdus"], page_size=rows)),
            c.panel(t("chain.balance", L), c.table("feeds", [
                col("rack", "col.rack", "text"), col("a_kw", "col.a_kw"), col("b_kw", "col.b_kw"),
                col("balance", "col.balance"), col("failover_pct", "col.failover_pct")], u["tbl"]["feeds"],
                page_size=rows)),
        ], className="two-col"),
    ])
