"""Power chain: UPS → PDU → feed A/B, with the 80 % breaker derate and A/B balance."""

from __future__ import annotations

from dash import html

from dashboards import alarms as rules
from dashboards import components as c
from dashboards.pages import cached
from dashboards.i18n import fmt_num, t

PATH = "/power"
TITLE = "nav.power"


def pdu_rows(snap: dict, derate: float) -> list[dict]:
    """One row per PDU: worst phase current vs the derated breaker."""
    rows = []
    for p in snap["pdus"]:
        currents = rules.pdu_phase_currents(p)
        limit = rules.derated_limit_a(p["breaker_a"], derate) if p.get("breaker_a") else None
        worst = max((a for a, _ in currents.values()), default=None)
        pct = 100.0 * worst / limit if worst is not None and limit else None
        state = "stale" if p.get("stale") and p.get("t") else None
        if pct is not None and pct > 100:
            state = "critical"
        elif pct is not None and pct >= 100 * rules.PDU_WARN_FRACTION:
            state = "warning"
        rows.append({"pdu": p["pdu"], "rack": p["rack"], "feed": p["feed"],
                     "power_kw": _kw(p.get("power_w")), "current_a": _r(worst, 1), "limit_a": _r(limit, 1),
                     "load_pct": _r(pct, 0), "_state": state or "ok"})
    return rows


def rack_feed_rows(snap: dict, derate: float) -> list[dict]:
    """One row per rack: A kW, B kW, A share, and A+B current against one derated breaker."""
    out = []
    for rack, feeds in sorted(rules.rack_feeds(snap["pdus"]).items()):
        a = sum(p["power_w"] or 0 for p in feeds.get("A", []) if p.get("power_w") is not None)
        b = sum(p["power_w"] or 0 for p in feeds.get("B", []) if p.get("power_w") is not None)
        has = any(p.get("power_w") is not None for ps in feeds.values() for p in ps)
        fo = rules.failover_load(feeds, derate)
        pct = 100.0 * fo[0] / fo[1] if fo else None
        state = "warning" if pct is not None and pct > 100 else "ok"
        out.append({"rack": rack, "a_kw": _r(a / 1000, 2) if has else None, "b_kw": _r(b / 1000, 2) if has else None,
                    "balance": _r(100 * a / (a + b), 0) if has and a + b > 0 else None,
                    "failover_pct": _r(pct, 0), "_state": state})
    return out


def ups_headroom(u: dict) -> tuple[float | None, float | None]:
    """(load %, headroom kW) of one UPS from its own output and capacity (None when unread)."""
    if u.get("output_power_w") is None or not u.get("capacity_kw"):
        return None, None
    out_kw = float(u["output_power_w"]) / 1000
    return 100 * out_kw / u["capacity_kw"], u["capacity_kw"] - out_kw


def hall_rows(snap: dict, ups_cfg: list, rooms: list[str]) -> list[dict]:
    """Per hall, the UPSes that feed it and their headroom. A UPS serves only the halls it is wired
    to: hall-1's load cannot use ups-2's spare capacity, so UPSes of different halls are never
    added; a hall fed by several UPSes (in parallel) has their headroom together."""
    by_name = {u["ups"]: u for u in snap["ups"]}
    out = []
    for room in rooms:
        feeding = [cfg.name for cfg in ups_cfg if room in cfg.rooms]
        units = [by_name[n] for n in feeding if n in by_name]
        read = [ups_headroom(u) for u in units]
        stale = any(u["stale"] for u in units)
        head = [h for _, h in read if h is not None]
        cap = sum(u["capacity_kw"] for u in units)
        load_kw = cap - sum(head) if units and len(head) == len(units) else None
        out.append({"room": room, "ups": ", ".join(feeding) or "—", "capacity": round(cap, 0) if units else None,
                    "load_pct": _r(100 * load_kw / cap, 0) if load_kw is not None and cap else None,
                    "headroom_kw": _r(sum(head), 0) if units and len(head) == len(units) else None,
                    "_state": "stale" if stale else "ok"})
    return out


def chain_summary(snap: dict, derate: float) -> dict:
    ups = [u for u in snap["ups"] if u.get("output_power_w") is not None]
    per = [(u, *ups_headroom(u)) for u in ups]
    # the tightest UPS, not the sum: UPSes of different halls cannot lend each other capacity
    tightest = min(per, key=lambda x: x[2], default=None)
    ups_load = max((x[1] for x in per), default=None)
    pdus = pdu_rows(snap, derate)
    worst = max((r["load_pct"] for r in pdus if r["load_pct"] is not None), default=None)
    worst_pdu = next((r["pdu"] for r in pdus if r["load_pct"] == worst), None) if worst is not None else None
    racks = rack_feed_rows(snap, derate)
    no_failover = sum(1 for r in racks if r["failover_pct"] is not None and r["failover_pct"] > 100)
    a = sum(r["a_kw"] or 0 for r in racks)
    b = sum(r["b_kw"] or 0 for r in racks)
    return {"ups_load_pct": ups_load, "ups_headroom_kw": tightest[2] if tightest else None,
            "ups_tightest": tightest[0]["ups"] if tightest else None,
            "ups_stale": any(u["stale"] for u in ups) if ups else True,
            "on_battery": any(u.get("on_battery") for u in snap["ups"]),
            "worst_pdu_pct": worst, "worst_pdu": worst_pdu, "no_failover": no_failover,
            "racks_with_feeds": sum(1 for r in racks if r["failover_pct"] is not None),
            "a_share": 100 * a / (a + b) if a + b > 0 else None, "a_kw": a, "b_kw": b}


def _r(v, digits):
    return None if v is None else round(float(v), digits)


def _kw(w):
    return None if w is None else round(w / 1000, 2)


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
