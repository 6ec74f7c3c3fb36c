"""The fleet as the optimizer sees it: the store's latest telemetry joined with the inventory
into flat numpy arrays (one entry per GPU), plus the budgets of every power/cooling group.

This is the only place the optimizer reads per-GPU telemetry; the policy (``power_caps``) and
placement get plain arrays. Ages are seconds; powers W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dcim.config import Config
from dcim.inventory import Inventory
from optimizer.power_caps import Budgets, CapInputs, rack_power_capacity_w
from optimizer.static_policy import pessimistic_throughput
from optimizer.throughput_curve import Curve, curve_for

# ASHRAE recommended inlet upper bound (°C); above it a cooling zone's budget is tightened.
INLET_MAX_C = 27.0
COOLING_MARGIN = 0.9  # use at most 90 % of a cooling unit's capacity
HOT_ZONE_SHED = 0.97  # a zone over INLET_MAX_C gets 97 % of its present load as budget


@dataclass
class FleetState:
    time_ns: int
    host: np.ndarray  # object
    uuid: np.ndarray  # object
    gpu_index: np.ndarray  # int
    rack: np.ndarray  # object
    room: np.ndarray  # object
    model: np.ndarray  # object
    min_w: np.ndarray
    max_w: np.ndarray
    default_w: np.ndarray
    limit_w: np.ndarray
    power_w: np.ndarray
    util: np.ndarray  # 0..1
    age_s: np.ndarray  # seconds since the GPU's newest sample
    busy: np.ndarray  # bool
    job: np.ndarray  # object, "" when idle
    job_class: np.ndarray  # object, "" when idle or unknown
    tenant: np.ndarray  # object
    sm_clock_mhz: np.ndarray  # NaN when not reported
    power_capped: np.ndarray | None = None  # bool: held back by its limit (:func:`_power_capped`; None: unknown)
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.host.size)

    def fresh(self, stale_after_s: float) -> np.ndarray:
        return self.age_s <= stale_after_s


def read_fleet(store, inventory: Inventory, now_ns: int, *, lookback_s: float = 3600.0) -> FleetState:
    """Latest ``gpu`` and ``workload`` readings for every GPU slot of the inventory that has
    ever reported within *lookback_s*. GPUs with no reading are left out (nothing to act on)."""
    since = now_ns - int(lookback_s * 1e9)
    site = inventory.site
    gpus = {(p.tags.get("host"), p.tags.get("gpu")): p for p in store.latest("gpu", where={"site": site}, since_ns=since)}
    work = {p.tags.get("uuid"): p for p in store.latest("workload", where={"site": site}, since_ns=since)}
    rows = []
    for slot in inventory.gpus:
        p = gpus.get((slot.host, str(slot.index)))
        if p is None:
            continue
        f = p.fields
        limit = f.get("power_limit_w")
        if limit is None:
            continue
        mx = f.get("power_limit_max_w", limit)
        uuid = p.tags.get("uuid", "")
        w = work.get(uuid)
        wf = w.fields if w is not None else {}
        job = str(wf.get("job", "") or "")
        util = float(f.get("util_pct", 0.0)) / 100.0
        busy = bool(job) if w is not None else util > 0.05
        rows.append((slot.host, uuid, slot.index, slot.rack, slot.room, p.tags.get("model", slot.model),
                     float(f.get("power_limit_min_w", min(limit, mx))), float(mx),
                     float(f.get("power_limit_default_w", mx)), float(limit), float(f.get("power_w", 0.0)), util,
                     (now_ns - p.time_ns) / 1e9, busy, job, str(wf.get("job_class", "") or ""),
                     str(wf.get("tenant", "") or ""), float(f.get("sm_clock_mhz", np.nan)),
                     _power_capped(f.get("throttle_reasons"), f.get("power_w"), limit)))
    cols = list(zip(*rows)) if rows else [[] for _ in range(19)]
    obj = lambda c: np.array(c, dtype=object)  # noqa: E731
    num = lambda c: np.array(c, dtype=float)  # noqa: E731
    return FleetState(now_ns, obj(cols[0]), obj(cols[1]), np.array(cols[2], dtype=int), obj(cols[3]), obj(cols[4]),
                      obj(cols[5]), num(cols[6]), num(cols[7]), num(cols[8]), num(cols[9]), num(cols[10]),
                      num(cols[11]), num(cols[12]), np.array(cols[13], dtype=bool), obj(cols[14]), obj(cols[15]),
                      obj(cols[16]), num(cols[17]), np.array(cols[18], dtype=bool))


THROTTLE_SW_POWER_CAP = 0x4  # NVML clocks-event reason: software power cap


# A GPU drawing more than this share of its limit may be held back by it; below, it is not,
# whatever NVML's reason bits say.
LIMITED_SHARE = 0.95


def _power_capped(throttle, power_w, limit_w) -> bool:
    """Is the GPU held back by its power limit? Only if it draws close to the limit (within
    :data:`LIMITED_SHARE`), and, where NVML reports clock-event reasons, the SW-power-cap bit is
    set too. The bit alone says nothing: a real H100 sets it nearly all the time, e.g. in bursts
    at 330 W average under a 700 W limit (reference: measured H100 power vs load), because the
    limit bites within each burst while the average stays far below it."""
    if power_w is None or float(power_w) < LIMITED_SHARE * float(limit_w):
        return False
    return throttle is None or bool(int(throttle) & THROTTLE_SW_POWER_CAP)


def host_share_w(fleet: FleetState, inventory: Inventory) -> np.ndarray:
    """Non-GPU node power per GPU while it works (W): the host's idle power spread over its
    GPUs plus its dynamic part at the GPU's utilisation (the twin's and the reference's node
    model: P_node = P_host(util) + Σ P_gpu)."""
    out = np.zeros(fleet.n)
    by_host = inventory.server_by_host
    for i, h in enumerate(fleet.host.tolist()):
        s = by_host.get(h)
        if s is None or s.gpus == 0:
            continue
        out[i] = (s.host_idle_w + (s.host_max_w - s.host_idle_w) * fleet.util[i]) / s.gpus
    return out


DEMAND_DECAY = 0.995  # remembered demand forgets 0.5 % per cycle (was 2 %: under the job's mean in two cycles)


def estimate_saturation(fleet: FleetState, curves: dict, memory: dict[tuple[str, str], float]) -> np.ndarray:
    """What each busy GPU's job would draw uncapped, as a fraction of max power.

    A GPU drawing clearly below its limit is not power-limited: its draw *is* its demand
    (remembered per (uuid, job) in *memory*, which the caller keeps across cycles). A GPU at
    its limit wants at least the limit: the remembered demand if its job was seen uncapped,
    else the full maximum (pessimistic: underestimating demand underestimates the loss).
    Synchronous jobs run at the pace of their slowest GPU, so every GPU of a job takes the
    job's largest estimate — one cap per job.

    "Limited" never rests on NVML's throttle bit alone (:func:`_power_capped`: a draw near the
    limit too), and a GPU near its limit whose SM clock is still at the top clock seen for its
    model is not being slowed by it (power-capping lowers clocks first)."""
    n = fleet.n
    s = np.zeros(n)
    top = _top_clocks(fleet, memory)
    for i in range(n):
        if not fleet.busy[i]:
            continue
        key = (fleet.uuid[i], fleet.job[i])
        mx = fleet.max_w[i]
        limited = (bool(fleet.power_capped[i]) if fleet.power_capped is not None
                   else fleet.power_w[i] >= LIMITED_SHARE * fleet.limit_w[i])
        clock = fleet.sm_clock_mhz[i]
        if limited and clock == clock and clock >= TOP_CLOCK_SHARE * top.get(fleet.model[i], np.inf):
            limited = False
        if not limited:
            observed = fleet.power_w[i] / mx
            # a demand seen under a higher cap is still valid; keep the larger (noise-safe),
            # forgetting slowly enough (DEMAND_DECAY per cycle) that the memory stays near the top
            # of the job's jitter, yet follows a falling demand (inference's daily rhythm moves
            # its draw < 1 % per 5-minute cycle)
            memory[key] = max(observed, memory.get(key, 0.0) * DEMAND_DECAY) if key in memory else observed
            s[i] = memory[key]
        elif key in memory:
            # seen uncapped before: the cap now bites, but the job's demand is what we saw
            s[i] = max(fleet.limit_w[i] / mx, memory[key])
        else:
            # held by a cap since it started (e.g. a job landed on a GPU still capped for the
            # last one): its demand is unknown, so assume it wants the full limit — the
            # pessimistic choice, since loss grows as cap/demand falls
            s[i] = 1.0
    # forget finished jobs (bounded memory over months of cycles)
    current = {(fleet.uuid[i], fleet.job[i]) for i in np.flatnonzero(fleet.busy).tolist()}
    for key in [k for k in memory if k not in current and k[0] != CLOCK_KEY]:
        del memory[key]
    jobs = fleet.job
    busy_idx = np.flatnonzero(fleet.busy)
    if busy_idx.size:
        by_job: dict[str, float] = {}
        for i in busy_idx.tolist():
            by_job[jobs[i]] = max(by_job.get(jobs[i], 0.0), s[i])
        for i in busy_idx.tolist():
            s[i] = by_job[jobs[i]]
    return np.clip(s, 0.05, 1.0)


TOP_CLOCK_SHARE = 0.98  # within 2 % of the model's top SM clock: not slowed by the power limit
CLOCK_KEY = "__top_clock__"


def _top_clocks(fleet: FleetState, memory: dict) -> dict[str, float]:
    """The highest SM clock seen per GPU model on a busy GPU with headroom under its limit (so
    not power-limited: its clock is the model's free-running clock), kept in *memory* under
    (CLOCK_KEY, model). Clocks of GPUs at their limit never count: a fleet capped alike would
    otherwise make its throttled clock the top."""
    ok = np.isfinite(fleet.sm_clock_mhz) & fleet.busy & (fleet.power_w < LIMITED_SHARE * fleet.limit_w)
    for model in set(fleet.model[ok].tolist()):
        seen = float(fleet.sm_clock_mhz[ok & (fleet.model == model)].max())
        memory[(CLOCK_KEY, model)] = max(memory.get((CLOCK_KEY, model), 0.0), seen)
    return {k[1]: v for k, v in memory.items() if k[0] == CLOCK_KEY}


def cap_inputs(fleet: FleetState, inventory: Inventory, cfg: Config, curves: dict[tuple[str, str], Curve],
               memory: dict, *, stale_after_s: float) -> tuple[CapInputs, dict[str, list[str]]]:
    """Arrays for :func:`power_caps.decide_caps` and the group names per kind."""
    opt = cfg.optimizer
    bounds = opt.throughput_loss_bound
    unknown_bound = min(bounds.values()) if bounds else 0.0  # unknown class: most protected
    loss_bound = np.array([bounds.get(c, unknown_bound) if c else unknown_bound for c in fleet.job_class.tolist()])
    beta = np.array([curve_for(curves, m, c).beta for m, c in zip(fleet.model.tolist(), fleet.job_class.tolist())])
    sat = estimate_saturation(fleet, curves, memory)
    groups, names = group_ids(fleet, inventory, cfg)
    inp = CapInputs(min_w=fleet.min_w, max_w=fleet.max_w, default_w=fleet.default_w, current_w=fleet.limit_w,
                    power_w=fleet.power_w, busy=fleet.busy, fresh=fleet.fresh(stale_after_s), saturation=sat,
                    beta=beta, loss_bound=loss_bound, host_share_w=host_share_w(fleet, inventory), groups=groups)
    return inp, names


def group_ids(fleet: FleetState, inventory: Inventory, cfg: Config) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Integer group ids per GPU for racks (rack budget ∧ PDU capacity), cooling zones
    (in-row/CRAH units), rooms (the chiller) and the site."""
    racks = [r.rack for r in inventory.racks]
    rack_id = {r: i for i, r in enumerate(racks)}
    zones = [u.name for u in cfg.cooling if u.kind != "chiller" and u.racks]
    zone_of_rack = {}
    for zi, u in enumerate([u for u in cfg.cooling if u.kind != "chiller" and u.racks]):
        for r in u.racks:
            zone_of_rack.setdefault(r, zi)
    rooms = [r.name for r in cfg.rooms]
    room_id = {r: i for i, r in enumerate(rooms)}
    groups = {
        "rack": np.array([rack_id.get(r, -1) for r in fleet.rack.tolist()], dtype=int),
        "zone": np.array([zone_of_rack.get(r, -1) for r in fleet.rack.tolist()], dtype=int),
        "room": np.array([room_id.get(r, -1) for r in fleet.room.tolist()], dtype=int),
        "site": np.zeros(fleet.n, dtype=int),
    }
    return groups, {"rack": racks, "zone": zones, "room": rooms, "site": [inventory.site]}


def budgets(fleet: FleetState, inventory: Inventory, cfg: Config, groups: dict[str, np.ndarray],
            names: dict[str, list[str]], *, rack_power_w: dict[str, float] | None = None,
            zone_inlet_c: dict[str, float] | None = None, it_power_w: float | None = None,
            site_budget_w: float | None = None, pue: float = 1.3) -> Budgets:
    """Budgets (W) per group and the non-GPU base power of each group.

    - rack: min(rack power budget, derated PDU feed capacity); the capacity is the weakest single
      feed under 2N (the default: on failover one feed carries the whole rack) and the sum of the
      feeds where the config says they share the load (``feed_redundancy = "shared"``, per rack
      or under ``[optimizer]``); base = measured rack power (PDUs) − its GPUs' draw, else the
      hosts' modelled power;
    - zone: 90 % of the cooling unit's capacity (heat ≈ electrical IT power), tightened to 97 %
      of its present load while its rack inlet is above 27 °C (ASHRAE recommended);
    - room: 90 % of the capacity of the chiller(s) of the room;
    - site: the facility budget (config, or an active demand-response window) ÷ PUE, as IT W.
    """
    derate = cfg.optimizer.breaker_derate
    racks = names["rack"]
    gpu_draw_rack = np.bincount(groups["rack"][groups["rack"] >= 0], weights=fleet.power_w[groups["rack"] >= 0],
                                minlength=len(racks))
    host_model = {r: 0.0 for r in racks}
    util_by_host: dict[str, list[float]] = {}
    for h, u in zip(fleet.host.tolist(), fleet.util.tolist()):
        util_by_host.setdefault(h, []).append(u)
    for s in inventory.servers:
        u = float(np.mean(util_by_host.get(s.host, [0.0])))
        host_model[s.rack] = host_model.get(s.rack, 0.0) + s.host_idle_w + (s.host_max_w - s.host_idle_w) * u
    rack_budget = np.zeros(len(racks))
    rack_base = np.zeros(len(racks))
    redundancy = feed_redundancy(cfg)
    for i, rname in enumerate(racks):
        info = inventory.rack_by_name[rname]
        feeds = [(p.breaker_a, p.voltage_v, p.phases) for p in inventory.pdus_by_rack.get(rname, [])]
        rack_budget[i] = min(info.power_budget_kw * 1000.0,
                             rack_power_capacity_w(feeds, derate, redundant=redundancy.get(rname, "2N") == "2N"))
        measured = (rack_power_w or {}).get(rname)
        rack_base[i] = max(measured - gpu_draw_rack[i], 0.0) if measured is not None else host_model.get(rname, 0.0)
    out = Budgets(names=names)
    out.budget_w["rack"] = rack_budget
    out.base_w["rack"] = rack_base

    units = [u for u in cfg.cooling if u.kind != "chiller" and u.racks]
    zb = np.zeros(len(units))
    zbase = np.zeros(len(units))
    for zi, u in enumerate(units):
        idx = [racks.index(r) for r in u.racks if r in racks]
        zbase[zi] = rack_base[idx].sum() if idx else 0.0
        zb[zi] = COOLING_MARGIN * u.capacity_kw * 1000.0
        inlet = (zone_inlet_c or {}).get(u.name)
        if inlet is not None and inlet > INLET_MAX_C:
            zone_gpu = fleet.power_w[groups["zone"] == zi].sum()
            zb[zi] = min(zb[zi], HOT_ZONE_SHED * (zbase[zi] + zone_gpu))
    out.budget_w["zone"], out.base_w["zone"] = zb, zbase

    rooms = names["room"]
    rb = np.full(len(rooms), np.inf)
    rbase = np.zeros(len(rooms))
    for ri, room in enumerate(rooms):
        chillers = [u for u in cfg.cooling if u.kind == "chiller" and u.room == room]
        if chillers:
            rb[ri] = COOLING_MARGIN * sum(u.capacity_kw for u in chillers) * 1000.0
        rbase[ri] = sum(rack_base[racks.index(r.rack)] for r in inventory.racks if r.room == room)
    out.budget_w["room"], out.base_w["room"] = rb, rbase

    if site_budget_w is not None:
        base = rack_base.sum()
        if it_power_w is not None:
            base = max(it_power_w - fleet.power_w.sum(), 0.0)
        out.budget_w["site"] = np.array([site_budget_w / max(pue, 1.0)])
        out.base_w["site"] = np.array([base])
    return out


def feed_redundancy(cfg: Config) -> dict[str, str]:
    """Per rack, "2N" or "shared": the rack's own key, else ``[optimizer] feed_redundancy``."""
    site_wide = cfg.optimizer.feed_redundancy
    return {rack.name: rack.feed_redundancy or site_wide
            for room in cfg.rooms for row in room.rows for rack in row.racks}


NEW_JOB_UTIL = 0.9  # utilisation assumed for a new GPU of work when pricing placement
DEFAULT_COOL_W_PER_W = 0.3


def zone_cooling_ratio(store, cfg: Config, site: str, since_ns: int) -> dict[str, float]:
    """Cooling W per W of heat per air unit: the unit's own power per heat it removes, plus the
    plant ratio (chiller power per heat) of the chillers that cool its room — a chiller's
    ``rooms``, every room when it names none (one chilled-water loop serves the halls; the twin's
    plant takes every air unit's heat). Without the plant, a hall whose chiller stands in the
    other hall looked nearly free to cool and drew new work it should not."""
    ratio: dict[str, float] = {}
    chiller_w: dict[str, float] = {}
    chiller_heat_w: dict[str, float] = {}
    for p in store.latest("cooling", where={"site": site}, since_ns=since_ns):
        power, heat_kw = p.fields.get("power_w"), p.fields.get("cooling_kw")
        if power is None or not heat_kw or heat_kw <= 0:
            continue
        unit = p.tags.get("unit", "")
        if p.tags.get("kind") == "chiller":
            chiller_w[unit], chiller_heat_w[unit] = float(power), float(heat_kw) * 1000.0
        else:
            ratio[unit] = float(power) / (float(heat_kw) * 1000.0)
    plant = plant_ratio_by_room(cfg, chiller_w, chiller_heat_w)
    for u in cfg.cooling:
        if u.kind != "chiller" and u.name in ratio:
            ratio[u.name] += plant.get(u.room, 0.0)
    return ratio


def chiller_rooms(cfg: Config) -> dict[str, list[str]]:
    """The rooms each chiller cools: its ``rooms``, else every room of the site."""
    every = [r.name for r in cfg.rooms]
    return {u.name: list(u.rooms) or every for u in cfg.cooling if u.kind == "chiller"}


def plant_ratio_by_room(cfg: Config, chiller_w: dict[str, float], chiller_heat_w: dict[str, float]) -> dict[str, float]:
    """Per room, the power per heat of the chillers that cool it (measured ones only)."""
    served = chiller_rooms(cfg)
    out: dict[str, float] = {}
    for room in (r.name for r in cfg.rooms):
        names = [c for c, rooms in served.items() if room in rooms and chiller_heat_w.get(c, 0.0) > 0]
        heat_w = sum(chiller_heat_w[c] for c in names)
        if heat_w > 0:
            out[room] = sum(chiller_w[c] for c in names) / heat_w
    return out


def placement_state(fleet: FleetState, inventory: Inventory, cfg: Config, store, now_ns: int,
                    stale_after_s: float):
    """A :class:`~optimizer.placement.PlacementState` from the fleet and cooling telemetry."""
    from optimizer.placement import PlacementState

    since = now_ns - int(max(stale_after_s, 600.0) * 1e9)
    site = inventory.site
    ratios = zone_cooling_ratio(store, cfg, site, since)
    unit_of_rack = {}
    for u in cfg.cooling:
        if u.kind != "chiller":
            for r in u.racks:
                unit_of_rack.setdefault(r, u.name)
    unit_inlet = {}
    for p in store.latest("cooling", where={"site": site}, since_ns=since):
        v = p.fields.get("rack_inlet_temp_c")
        if v is not None:
            unit_inlet[p.tags.get("unit", "")] = float(v)
    rack_inlet: dict[str, float] = {}
    for p in store.latest("env", where={"site": site}, since_ns=since):
        if p.tags.get("position", "inlet") == "inlet" and p.fields.get("temp_c") is not None:
            r = p.tags.get("rack", "")
            rack_inlet[r] = max(rack_inlet.get(r, -math.inf), float(p.fields["temp_c"]))
    rack_w: dict[str, float] = {}
    for p in store.latest("pdu", where={"site": site}, since_ns=since):
        if p.fields.get("power_w") is not None:
            rack_w[p.tags.get("rack", "")] = rack_w.get(p.tags.get("rack", ""), 0.0) + float(p.fields["power_w"])
    groups, names = group_ids(fleet, inventory, cfg)
    bud = budgets(fleet, inventory, cfg, groups, names, rack_power_w=rack_w)
    racks = names["rack"]
    rack_gpu_w = np.bincount(groups["rack"][groups["rack"] >= 0], weights=fleet.power_w[groups["rack"] >= 0],
                             minlength=len(racks))
    headroom = bud.budget_w["rack"] - bud.base_w["rack"] - rack_gpu_w
    free_by_host: dict[str, list[int]] = {}
    busy_by_host: dict[str, int] = {}
    for h, i, b in zip(fleet.host.tolist(), fleet.gpu_index.tolist(), fleet.busy.tolist()):
        if b:
            busy_by_host[h] = busy_by_host.get(h, 0) + 1
        else:
            free_by_host.setdefault(h, []).append(int(i))
    rows = sorted({(r.room, r.row) for r in inventory.racks})
    row_id = {k: i for i, k in enumerate(rows)}
    rack_info = inventory.rack_by_name
    servers = inventory.servers
    S = len(servers)
    zone = [unit_of_rack.get(s.rack, "") for s in servers]
    inlet = [rack_inlet.get(s.rack, unit_inlet.get(unit_of_rack.get(s.rack, ""), float("nan"))) for s in servers]
    return PlacementState(
        host=np.array([s.host for s in servers], dtype=object),
        rack_id=np.array([racks.index(s.rack) for s in servers], dtype=int),
        row_id=np.array([row_id[(s.room, rack_info[s.rack].row)] for s in servers], dtype=int),
        room=np.array([s.room for s in servers], dtype=object),
        tenant=np.array([s.tenant for s in servers], dtype=object),
        gpus_total=np.array([s.gpus for s in servers], dtype=int),
        free=[sorted(free_by_host.get(s.host, [])) for s in servers],
        busy_gpus=np.array([busy_by_host.get(s.host, 0) for s in servers], dtype=int),
        host_idle_w=np.array([s.host_idle_w for s in servers], dtype=float),
        host_dyn_per_gpu_w=np.array([(s.host_max_w - s.host_idle_w) * NEW_JOB_UTIL / max(s.gpus, 1) for s in servers]),
        cool_w_per_w=np.array([ratios.get(z, DEFAULT_COOL_W_PER_W) for z in zone], dtype=float),
        inlet_c=np.array(inlet, dtype=float),
        zone=np.array(zone, dtype=object),
        rack_names=list(racks),
        rack_headroom_w=headroom.astype(float),
        row_names=[f"{room}/{row}" for room, row in rows],
    ) if S else None


def job_throughput_fn(fleet: FleetState, inp, tables: dict[str, tuple[np.ndarray, np.ndarray]]):
    """``throughput_fn(cap_w) -> relative throughput`` for :func:`power_caps.decide_caps`, on what
    can be justified: a job with its own measured table (``job_curves``: caps in W, throughput at
    its lower confidence bound) on that table, continued below its lowest point along the
    pessimistic published curve of its class; every other busy GPU on the pessimistic published
    curve of its class (cap as a fraction of max; the steepest of all for an unknown class).
    Idle GPUs: 1. Budgets price caps with it; efficiency uses each job's own target."""
    max_w = inp.max_w.astype(float)
    by_class: dict[str, list[int]] = {}
    by_job: dict[str, list[int]] = {}
    for i in np.flatnonzero(inp.busy).tolist():
        job = fleet.job[i]
        if job in tables:
            by_job.setdefault(job, []).append(i)
        else:
            by_class.setdefault(fleet.job_class[i], []).append(i)
    classes = [(np.array(rows), cls) for cls, rows in by_class.items()]
    jobs = [(np.array(rows), fleet.job_class[rows[0]], *tables[job]) for job, rows in by_job.items()]

    def fn(cap_w: np.ndarray) -> np.ndarray:
        out = np.ones_like(cap_w, dtype=float)
        col = (slice(None), None) if cap_w.ndim == 2 else (slice(None),)
        for rows, cls in classes:
            out[rows] = pessimistic_throughput(cls, cap_w[rows] / max_w[rows][col])
        for rows, cls, xs, rs in jobs:
            c = cap_w[rows]
            pess = pessimistic_throughput(cls, c / max_w[rows][col])
            at_low = pessimistic_throughput(cls, xs[0] / max_w[rows][col])
            below = rs[0] * pess / np.maximum(at_low, 1e-6)
            out[rows] = np.where(c < xs[0], below, np.interp(c, xs, rs))
        return out

    return fn
