"""The power chain's figures, shared by the Power page and the overview: per-PDU worst phase
against the derated breaker, per-rack A/B feeds and failover, per-UPS and per-hall headroom."""

from __future__ import annotations

from dashboards import alarms as rules


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
    # (a UPS without a capacity has no headroom: it sorts after those that have one)
    tightest = min(per, key=lambda x: (x[2] is None, x[2] or 0.0), default=None)
    ups_load = max((x[1] for x in per if x[1] is not None), default=None)
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
