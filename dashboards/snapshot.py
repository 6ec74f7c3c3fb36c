"""The facility snapshot the screens read: the latest value of every device, as plain dicts.

Built once per tick by :meth:`dashboards.data.DataSource.snapshot`; each part of it (facility,
racks, PDUs, UPS, cooling, GPUs, data age) is one step here, reading through the data source's
``latest()`` and ``stale()`` so the query cache and staleness rules stay in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dashboards.data import DataSource

NS = 1_000_000_000  # the same nanoseconds-per-second as dashboards.data.NS (no import: data imports this module)

# The sources the wall shows, each aged on its own; the measurement whose interval says "stale".
SOURCE_MEASUREMENT = {"facility": "facility", "racks": "env", "pdus": "pdu", "ups": "ups", "cooling": "cooling",
                      "gpus": "gpu"}


def build_snapshot(src: DataSource) -> dict:
    now_ns = int(src.now() * NS)
    snap: dict = {"now_ns": now_ns}
    facility, facility_t = facility_state(src)
    snap["facility"] = facility
    snap["facility_t"] = facility_t
    snap["facility_stale"] = src.stale("facility", facility_t, now_ns)

    temps = rack_temps(src)  # read before the PDUs, as the screens always have
    snap["pdus"] = pdu_rows(src, now_ns)
    snap["racks"] = rack_rows(src, temps, snap["pdus"], now_ns)
    snap["ups"] = ups_rows(src, now_ns)
    snap["cooling"] = cooling_rows(src, now_ns)

    # GPUs: the fleet's totals and the GPUs that need an alarm, computed by the store (the
    # full per-GPU rows, for the GPU and rack pages, are built on demand by gpus())
    g = src.gpu_summary()
    snap["gpu_summary"] = {"count": g.count, "capped": g.capped, "power_w": g.power_w,
                           "capped_limit_w": g.capped_limit_w, "capped_default_w": g.capped_default_w,
                           "t": g.newest_ns}
    snap["gpus"] = [src._gpu_row(p, now_ns) for p in g.flagged]  # only what an alarm rule looks at

    # collectors
    snap["collectors"] = [{"collector": p.tags.get("collector", ""), "target": p.tags.get("target", ""),
                           "ok": p.fields.get("ok"), "error": p.fields.get("error"),
                           "duration_s": p.fields.get("duration_s"), "t": p.time_ns}
                          for p in src.latest("collector")]

    snap["optimizer"] = src._optimizer_state(g.capped, now_ns)

    # alarms: the engine's state, as stored (the dashboard computes none)
    snap["alarms"] = src.alarms()

    add_data_age(src, snap, g, now_ns)
    return snap


def facility_state(src: DataSource) -> tuple[dict[str, Any], int | None]:
    """The site's facility totals (with a PUE worked out where the meter gives none) and their time."""
    fac_points = src.latest("facility")
    fac = next((p for p in fac_points if p.tags.get("site") in (None, src.inventory.site)), None)
    if fac is None and fac_points:
        fac = fac_points[0]
    facility: dict[str, Any] = dict(fac.fields) if fac else {}
    if fac and "pue" not in facility and facility.get("it_power_w"):
        facility["pue"] = facility.get("total_power_w", 0) / facility["it_power_w"]
    return facility, (fac.time_ns if fac else None)


def rack_temps(src: DataSource) -> dict[tuple[str, str], tuple[float, int]]:
    """env → rack inlet/outlet (hottest probe of each position): {(rack, position): (temp_c, time_ns)}."""
    temps: dict[tuple[str, str], tuple[float, int]] = {}
    for p in src.latest("env"):
        rack, pos, v = p.tags.get("rack"), p.tags.get("position"), p.fields.get("temp_c")
        if rack is None or v is None or pos not in ("inlet", "outlet"):
            continue
        old, temp_c = temps.get((rack, pos)), float(v)
        if old is None or temp_c > old[0]:
            temps[(rack, pos)] = (temp_c, p.time_ns)
    return temps


def pdu_rows(src: DataSource, now_ns: int) -> list[dict]:
    """PDUs and their phases: the configured ones first, then any the store knows that the config does not."""
    inv = src.inventory
    pdus: dict[str | None, dict] = {}  # None: points without a pdu tag
    for cfg in src.config.pdus:
        rack_info = inv.rack_by_name.get(cfg.rack)
        pdus[cfg.name] = {"pdu": cfg.name, "rack": cfg.rack, "room": rack_info.room if rack_info else "",
                          "feed": cfg.feed, "phases": cfg.phases, "breaker_a": cfg.breaker_a,
                          "voltage_v": cfg.voltage_v, "power_w": None, "current_a": None, "t": None,
                          "phase_current": {}, "phase_power": {}}
    for p in src.latest("pdu"):
        name = p.tags.get("pdu")
        d = pdus.get(name)
        if d is None:
            d = pdus[name] = {"pdu": name, "rack": p.tags.get("rack", ""), "room": p.tags.get("room", ""),
                              "feed": p.tags.get("feed", "?"), "phases": 1, "breaker_a": None,
                              "voltage_v": None, "phase_current": {}, "phase_power": {}}
        d["power_w"] = p.fields.get("power_w")
        d["current_a"] = p.fields.get("current_a")
        if p.fields.get("breaker_a"):
            d["breaker_a"] = p.fields["breaker_a"]
        d["t"] = p.time_ns
    for p in src.latest("pdu_phase"):
        d = pdus.get(p.tags.get("pdu"))
        if d is None:
            continue
        phase = p.tags.get("phase", "?")
        if p.fields.get("current_a") is not None:
            d["phase_current"][phase] = (float(p.fields["current_a"]), p.time_ns)
        if p.fields.get("power_w") is not None:
            d["phase_power"][phase] = float(p.fields["power_w"])
        d["t"] = max(d.get("t") or 0, p.time_ns)
    for d in pdus.values():
        d["stale"] = src.stale("pdu", d.get("t"), now_ns)
    return sorted(pdus.values(), key=lambda d: (d["rack"], d["feed"], d["pdu"]))


def rack_rows(src: DataSource, temps: dict[tuple[str, str], tuple[float, int]], pdus: list[dict],
              now_ns: int) -> list[dict]:
    """One row per inventory rack: its temperatures and the summed power of its PDUs."""
    rack_power: dict[str, float] = {}
    rack_power_t: dict[str, int] = {}
    for d in pdus:
        if d.get("power_w") is not None:
            rack_power[d["rack"]] = rack_power.get(d["rack"], 0.0) + float(d["power_w"])
            rack_power_t[d["rack"]] = max(rack_power_t.get(d["rack"], 0), d["t"] or 0)

    racks = []
    for r in src.inventory.racks:
        inlet = temps.get((r.rack, "inlet"))
        outlet = temps.get((r.rack, "outlet"))
        racks.append({
            "rack": r.rack, "room": r.room, "row": r.row, "row_index": r.row_index, "position": r.position,
            "ashrae_class": r.ashrae_class, "budget_kw": r.power_budget_kw, "tenant": r.tenant,
            "inlet_c": inlet[0] if inlet else None, "inlet_t": inlet[1] if inlet else None,
            "inlet_stale": src.stale("env", inlet[1] if inlet else None, now_ns),
            "outlet_c": outlet[0] if outlet else None, "outlet_t": outlet[1] if outlet else None,
            "outlet_stale": src.stale("env", outlet[1] if outlet else None, now_ns),
            "power_w": rack_power.get(r.rack), "power_t": rack_power_t.get(r.rack),
            "power_stale": src.stale("pdu", rack_power_t.get(r.rack), now_ns),
        })
    return racks


def ups_rows(src: DataSource, now_ns: int) -> list[dict]:
    ups_pts = {p.tags.get("ups"): p for p in src.latest("ups")}
    ups = []
    for u in src.config.ups:
        up = ups_pts.pop(u.name, None)
        f = up.fields if up else {}
        ups.append({"ups": u.name, "capacity_kw": u.capacity_kw, "output_power_w": f.get("output_power_w"),
                    "input_power_w": f.get("input_power_w"), "load_pct": f.get("load_pct"),
                    "on_battery": bool(f.get("on_battery")) if "on_battery" in f else None,
                    "battery_charge_pct": f.get("battery_charge_pct"), "runtime_s": f.get("runtime_s"),
                    "t": up.time_ns if up else None,
                    "stale": src.stale("ups", up.time_ns if up else None, now_ns)})
    return ups


def cooling_rows(src: DataSource, now_ns: int) -> list[dict]:
    cool_pts = {p.tags.get("unit"): p for p in src.latest("cooling")}
    cooling = []
    for c in src.config.cooling:
        cp = cool_pts.get(c.name)
        f = cp.fields if cp else {}
        cooling.append({"unit": c.name, "room": c.room, "kind": c.kind, "capacity_kw": c.capacity_kw,
                        **{k: f.get(k) for k in ("supply_temp_c", "return_temp_c", "setpoint_c",
                                                 "rack_inlet_temp_c", "fan_pct", "cooling_kw", "power_w",
                                                 "humidity_pct", "cop", "economizer_pct")},
                        "t": cp.time_ns if cp else None,
                        "stale": src.stale("cooling", cp.time_ns if cp else None, now_ns)})
    return cooling


def add_data_age(src: DataSource, snap: dict, gpu_summary, now_ns: int) -> None:
    """data age: per source, the newest reading of each; the stamp shows the oldest of them
    (a frozen rack-sensor feed must not hide behind fresh facility totals)."""
    sources = source_times(snap, gpu_summary)
    oldest = min((min(v) for v in sources.values()), default=None)
    snap["data_t"] = oldest
    snap["data_age_s"] = (now_ns - oldest) / NS if oldest else None
    # per source: (devices whose newest reading is stale, devices with readings)
    snap["stale_sources"] = {k: (n, len(v)) for k, v in sources.items()
                             if (n := sum(1 for t_ns in v if src.stale(SOURCE_MEASUREMENT[k], t_ns, now_ns)))}


def source_times(snap: dict, gpu_summary) -> dict[str, list[int]]:
    """{source: the time of each device's newest reading} for each source that has any (a rack
    counts by its older probe position: a frozen outlet is as stale as a frozen inlet)."""
    racks = []
    for r in snap["racks"]:
        times = [t for t in (r.get("inlet_t"), r.get("outlet_t")) if t]
        if times:
            racks.append(min(times))
    gpu = [t for t in (getattr(gpu_summary, "oldest_ns", None), getattr(gpu_summary, "newest_ns", None)) if t]
    out = {
        "facility": [snap["facility_t"]] if snap.get("facility_t") else [],
        "racks": racks,
        "pdus": [d["t"] for d in snap["pdus"] if d.get("t")],
        "ups": [u["t"] for u in snap["ups"] if u.get("t")],
        "cooling": [u["t"] for u in snap["cooling"] if u.get("t")],
        "gpus": gpu[:1],
    }
    return {k: v for k, v in out.items() if v}
