"""The fleet as the optimizer sees it: the store's latest telemetry joined with the inventory
into flat numpy arrays (one entry per GPU), plus the budgets of every power/cooling group.

This is the only place the optimizer reads per-GPU telemetry; the policy (``power_caps``) and
placement get plain arrays. Ages are seconds; powers W.
"""

from __future__ import annotations

import math
import operator
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
    slot: np.ndarray | None = None  # int: the row's position in the inventory's GPU slots (None: unknown)
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.host.size)

    def fresh(self, stale_after_s: float) -> np.ndarray:
        return self.age_s <= stale_after_s


class FleetLayout:
    """What the fleet's arrays need from the inventory and config that does not change between
    cycles, computed once (the daemon keeps one): each GPU slot's position, location and host
    server, the group ids of every slot, and the static part of every budget.

    Why: rebuilt per cycle, these lookups cost more than the decision itself on 10,000 GPUs."""

    def __init__(self, inventory: Inventory, cfg: Config | None = None):
        self.inventory = inventory
        slots = inventory.gpus
        self.position = {(s.host, str(s.index)): i for i, s in enumerate(slots)}
        self.host = np.array([s.host for s in slots], dtype=object)
        self.gpu_index = np.array([s.index for s in slots], dtype=int)
        self.rack = np.array([s.rack for s in slots], dtype=object)
        self.room = np.array([s.room for s in slots], dtype=object)
        self.model = [s.model for s in slots]
        by_host = inventory.server_by_host
        servers = [by_host.get(s.host) for s in slots]
        # each slot's host server: idle and dynamic power, GPU count (0: no server known)
        self.host_idle_w = np.array([sv.host_idle_w if sv else 0.0 for sv in servers], dtype=float)
        self.host_dyn_w = np.array([sv.host_max_w - sv.host_idle_w if sv else 0.0 for sv in servers], dtype=float)
        self.host_gpus = np.array([sv.gpus if sv else 0 for sv in servers], dtype=int)
        server_pos = {sv.host: i for i, sv in enumerate(inventory.servers)}
        self.server_of = np.array([server_pos.get(s.host, -1) for s in slots], dtype=int)
        self._cfg = cfg
        self._groups: tuple[dict[str, np.ndarray], dict[str, list[str]]] | None = None
        self._budget_static: dict | None = None

    def groups(self, cfg: Config) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """:func:`group_ids` of every slot (index with a fleet's ``slot``)."""
        if self._groups is None or cfg is not self._cfg:
            self._cfg = cfg
            self._budget_static = None
            self._groups = _group_ids_of(self.rack.tolist(), self.room.tolist(), self.inventory, cfg)
        return self._groups

    def budget_static(self, cfg: Config, racks: list[str]) -> dict:
        """:func:`_static_budgets`, computed once per config."""
        if self._budget_static is None or cfg is not self._cfg or self._budget_static["racks"] != racks:
            self.groups(cfg)
            self._budget_static = _static_budgets(self.inventory, cfg, racks)
        return self._budget_static


# The gpu fields the cycle uses, in the order _gpu_values returns them.
GPU_FIELDS = ("power_limit_w", "power_limit_max_w", "power_limit_min_w", "power_limit_default_w", "power_w",
              "util_pct", "sm_clock_mhz", "throttle_reasons")
_all_gpu_fields = operator.itemgetter(*GPU_FIELDS)


def _gpu_values(fields: dict) -> tuple:
    """GPU_FIELDS of one reading, None where it lacks one (one C call when it has them all)."""
    try:
        return _all_gpu_fields(fields)
    except KeyError:
        return tuple(fields.get(f) for f in GPU_FIELDS)


def read_fleet(store, inventory: Inventory, now_ns: int, *, lookback_s: float = 3600.0,
               layout: FleetLayout | None = None) -> FleetState:
    """Latest ``gpu`` and ``workload`` readings for every GPU slot of the inventory that has
    ever reported within *lookback_s*. GPUs with no reading are left out (nothing to act on).
    Rows come in inventory order; ``slot`` is each row's position in the inventory."""
    layout = layout or FleetLayout(inventory)
    since = now_ns - int(lookback_s * 1e9)
    site = inventory.site
    position = layout.position
    by_slot = {}  # a slot's newest series wins (as the store orders them), as before
    for p in store.latest("gpu", where={"site": site}, since_ns=since):
        i = position.get((p.tags.get("host"), p.tags.get("gpu")))
        if i is not None:
            by_slot[i] = p
    work = {p.tags.get("uuid"): p for p in store.latest("workload", where={"site": site}, since_ns=since)}
    found = [(i, by_slot[i]) for i in sorted(by_slot) if by_slot[i].fields.get("power_limit_w") is not None]
    slot = np.array([i for i, _ in found], dtype=int)
    pts = [p for _, p in found]
    # numpy turns a missing value (None) into NaN: each takes its default below
    limit, mx, mn, default, power, util, clock, throttle = (
        np.array(col, dtype=float) for col in (zip(*[_gpu_values(p.fields) for p in pts]) if pts else [()] * 8))
    mx = np.where(np.isnan(mx), limit, mx)
    mn = np.where(np.isnan(mn), np.minimum(limit, mx), mn)
    default = np.where(np.isnan(default), mx, default)
    util = np.where(np.isnan(util), 0.0, util) / 100.0
    uuid = [p.tags.get("uuid", "") for p in pts]
    wfields = [w.fields if w is not None else None for w in map(work.get, uuid)]
    job = [str(wf.get("job", "") or "") if wf is not None else "" for wf in wfields]
    busy = np.array([bool(j) if wf is not None else u > 0.05 for j, wf, u in zip(job, wfields, util.tolist())],
                    dtype=bool)
    text = lambda key: np.array([str(wf.get(key, "") or "") if wf is not None else "" for wf in wfields],  # noqa: E731
                                dtype=object)
    model = layout.model
    return FleetState(
        now_ns, layout.host[slot], np.array(uuid, dtype=object), layout.gpu_index[slot], layout.rack[slot],
        layout.room[slot], np.array([p.tags.get("model", model[i]) for i, p in found], dtype=object), mn, mx, default,
        limit, np.where(np.isnan(power), 0.0, power), util,
        (now_ns - np.array([p.time_ns for p in pts], dtype=np.int64)) / 1e9, busy, np.array(job, dtype=object),
        text("job_class"), text("tenant"), clock, _power_capped_all(throttle, power, limit), slot=slot)


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


def _power_capped_all(throttle: np.ndarray, power_w: np.ndarray, limit_w: np.ndarray) -> np.ndarray:
    """:func:`_power_capped` of every GPU at once (NaN: not reported)."""
    near = power_w >= LIMITED_SHARE * limit_w  # no draw reported (NaN): not near
    bits = np.where(np.isnan(throttle), -1, throttle).astype(np.int64)
    return near & ((bits < 0) | ((bits & THROTTLE_SW_POWER_CAP) != 0))


def host_share_w(fleet: FleetState, inventory: Inventory, layout: FleetLayout | None = None) -> np.ndarray:
    """Non-GPU node power per GPU while it works (W): the host's idle power spread over its
    GPUs plus its dynamic part at the GPU's utilisation (the twin's and the reference's node
    model: P_node = P_host(util) + Σ P_gpu)."""
    if layout is None or fleet.slot is None:
        layout, slot = FleetLayout(inventory), _slots_of(fleet, inventory)
    else:
        slot = fleet.slot
    gpus = layout.host_gpus[slot]
    share = (layout.host_idle_w[slot] + layout.host_dyn_w[slot] * fleet.util) / np.maximum(gpus, 1)
    return np.where(gpus > 0, share, 0.0)


def _slots_of(fleet: FleetState, inventory: Inventory) -> np.ndarray:
    """Each row's inventory position from its host and index (-1 for a GPU the inventory lacks)."""
    position = {(s.host, s.index): i for i, s in enumerate(inventory.gpus)}
    return np.array([position.get((h, int(i)), -1) for h, i in zip(fleet.host.tolist(), fleet.gpu_index.tolist())],
                    dtype=int)


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
    s = np.zeros(fleet.n)
    top = _top_clocks(fleet, memory)
    busy_idx = np.flatnonzero(fleet.busy)
    mx = fleet.max_w
    limited = (fleet.power_capped.astype(bool) if fleet.power_capped is not None
               else fleet.power_w >= LIMITED_SHARE * fleet.limit_w)
    if top:
        top_of = np.array([top.get(m, np.inf) for m in fleet.model.tolist()], dtype=float)
        clock = fleet.sm_clock_mhz
        limited = limited & ~((clock == clock) & (clock >= TOP_CLOCK_SHARE * top_of))
    observed = (fleet.power_w / mx)[busy_idx].tolist()
    at_limit = (fleet.limit_w / mx)[busy_idx].tolist()
    keys = list(zip(fleet.uuid[busy_idx].tolist(), fleet.job[busy_idx].tolist()))
    est = []
    for key, lim, obs, floor in zip(keys, limited[busy_idx].tolist(), observed, at_limit):
        seen = memory.get(key)
        if not lim:
            # a demand seen under a higher cap is still valid; keep the larger (noise-safe),
            # forgetting slowly enough (DEMAND_DECAY per cycle) that the memory stays near the top
            # of the job's jitter, yet follows a falling demand (inference's daily rhythm moves
            # its draw < 1 % per 5-minute cycle)
            seen = obs if seen is None else max(obs, seen * DEMAND_DECAY)
            memory[key] = seen
            est.append(seen)
        elif seen is not None:
            # seen uncapped before: the cap now bites, but the job's demand is what we saw
            est.append(max(floor, seen))
        else:
            # held by a cap since it started (e.g. a job landed on a GPU still capped for the
            # last one): its demand is unknown, so assume it wants the full limit — the
            # pessimistic choice, since loss grows as cap/demand falls
            est.append(1.0)
    # forget finished jobs (bounded memory over months of cycles)
    current = set(keys)
    for key in [k for k in memory if k not in current and k[0] != CLOCK_KEY]:
        del memory[key]
    if busy_idx.size:
        jobs = fleet.job[busy_idx].tolist()
        by_job: dict[str, float] = {}
        for job, v in zip(jobs, est):
            if v > by_job.get(job, 0.0):
                by_job[job] = v
        s[busy_idx] = [by_job.get(job, 0.0) for job in jobs]
    return np.clip(s, 0.05, 1.0)


TOP_CLOCK_SHARE = 0.98  # within 2 % of the model's top SM clock: not slowed by the power limit
CLOCK_KEY = "__top_clock__"


def _top_clocks(fleet: FleetState, memory: dict) -> dict[str, float]:
    """The highest SM clock seen per GPU model on a busy GPU with headroom under its limit (so
    not power-limited: its clock is the model's free-running clock), kept in *memory* under
    (CLOCK_KEY, model). Clocks of GPUs at their limit never count: a fleet capped alike would
    otherwise make its throttled clock the top."""
    ok = np.isfinite(fleet.sm_clock_mhz) & fleet.busy & (fleet.power_w < LIMITED_SHARE * fleet.limit_w)
    models = fleet.model[ok]
    for model in set(models.tolist()):
        seen = float(fleet.sm_clock_mhz[ok][models == model].max())
        memory[(CLOCK_KEY, model)] = max(memory.get((CLOCK_KEY, model), 0.0), seen)
    return {k[1]: v for k, v in memory.items() if k[0] == CLOCK_KEY}


def cap_inputs(fleet: FleetState, inventory: Inventory, cfg: Config, curves: dict[tuple[str, str], Curve],
               memory: dict, *, stale_after_s: float, layout: FleetLayout | None = None,
               ) -> tuple[CapInputs, dict[str, list[str]]]:
    """Arrays for :func:`power_caps.decide_caps` and the group names per kind."""
    opt = cfg.optimizer
    bounds = opt.throughput_loss_bound
    unknown_bound = min(bounds.values()) if bounds else 0.0  # unknown class: most protected
    classes = fleet.job_class.tolist()
    loss_bound = np.array([bounds.get(c, unknown_bound) if c else unknown_bound for c in classes])
    beta_of = {mc: curve_for(curves, *mc).beta for mc in set(zip(fleet.model.tolist(), classes))}
    beta = np.array([beta_of[mc] for mc in zip(fleet.model.tolist(), classes)])
    sat = estimate_saturation(fleet, curves, memory)
    groups, names = group_ids(fleet, inventory, cfg, layout)
    inp = CapInputs(min_w=fleet.min_w, max_w=fleet.max_w, default_w=fleet.default_w, current_w=fleet.limit_w,
                    power_w=fleet.power_w, busy=fleet.busy, fresh=fleet.fresh(stale_after_s), saturation=sat,
                    beta=beta, loss_bound=loss_bound, host_share_w=host_share_w(fleet, inventory, layout),
                    groups=groups)
    return inp, names


def group_ids(fleet: FleetState, inventory: Inventory, cfg: Config, layout: FleetLayout | None = None,
              ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Integer group ids per GPU for racks (rack budget ∧ PDU capacity), cooling zones
    (in-row/CRAH units), rooms (the chiller) and the site."""
    if layout is None or fleet.slot is None:
        return _group_ids_of(fleet.rack.tolist(), fleet.room.tolist(), inventory, cfg)
    by_slot, names = layout.groups(cfg)
    return {kind: ids[fleet.slot] for kind, ids in by_slot.items()}, names


def _group_ids_of(rack_of: list, room_of: list, inventory: Inventory, cfg: Config,
                  ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    racks = [r.rack for r in inventory.racks]
    rack_id = {r: i for i, r in enumerate(racks)}
    zones = [u.name for u in cfg.cooling if u.kind != "chiller" and u.racks]
    zone_of_rack: dict[str, int] = {}
    for zi, u in enumerate([u for u in cfg.cooling if u.kind != "chiller" and u.racks]):
        for r in u.racks:
            zone_of_rack.setdefault(r, zi)
    rooms = [r.name for r in cfg.rooms]
    room_id = {r: i for i, r in enumerate(rooms)}
    groups = {
        "rack": np.array([rack_id.get(r, -1) for r in rack_of], dtype=int),
        "zone": np.array([zone_of_rack.get(r, -1) for r in rack_of], dtype=int),
        "room": np.array([room_id.get(r, -1) for r in room_of], dtype=int),
        "site": np.zeros(len(rack_of), dtype=int),
    }
    return groups, {"rack": racks, "zone": zones, "room": rooms, "site": [inventory.site]}


def _static_budgets(inventory: Inventory, cfg: Config, racks: list[str]) -> dict:
    """The parts of :func:`budgets` the config alone fixes: each rack's budget (its own and its
    feeds'), each cooling zone's racks and capacity, each room's racks and chiller capacity."""
    derate = cfg.optimizer.breaker_derate
    redundancy = feed_redundancy(cfg)
    rack_budget = np.zeros(len(racks))
    for i, rname in enumerate(racks):
        info = inventory.rack_by_name[rname]
        feeds: list[tuple[float, float, int]] = [(p.breaker_a, p.voltage_v, p.phases)
                                                 for p in inventory.pdus_by_rack.get(rname, [])]
        rack_budget[i] = min(info.power_budget_kw * 1000.0,
                             rack_power_capacity_w(feeds, derate, redundant=redundancy.get(rname, "2N") == "2N"))
    rack_pos = {r: i for i, r in enumerate(racks)}  # the first position of each name, as list.index
    for i in range(len(racks) - 1, -1, -1):
        rack_pos[racks[i]] = i
    units = [u for u in cfg.cooling if u.kind != "chiller" and u.racks]
    zone_racks = [[rack_pos[r] for r in u.racks if r in rack_pos] for u in units]
    zone_budget = np.array([COOLING_MARGIN * u.capacity_kw * 1000.0 for u in units], dtype=float)
    rooms = [r.name for r in cfg.rooms]
    room_budget = np.full(len(rooms), np.inf)
    room_racks = []
    for ri, room in enumerate(rooms):
        chillers = [u for u in cfg.cooling if u.kind == "chiller" and u.room == room]
        if chillers:
            room_budget[ri] = COOLING_MARGIN * sum(u.capacity_kw for u in chillers) * 1000.0
        room_racks.append([rack_pos[r.rack] for r in inventory.racks if r.room == room])
    return {"racks": racks, "rack_budget": rack_budget, "units": units, "zone_racks": zone_racks,
            "zone_budget": zone_budget, "room_budget": room_budget, "room_racks": room_racks}


def budgets(fleet: FleetState, inventory: Inventory, cfg: Config, groups: dict[str, np.ndarray],
            names: dict[str, list[str]], *, rack_power_w: dict[str, float] | None = None,
            zone_inlet_c: dict[str, float] | None = None, it_power_w: float | None = None,
            site_budget_w: float | None = None, pue: float = 1.3, layout: FleetLayout | None = None) -> Budgets:
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
    racks = names["rack"]
    static = layout.budget_static(cfg, racks) if layout is not None else _static_budgets(inventory, cfg, racks)
    gpu_draw_rack = np.bincount(groups["rack"][groups["rack"] >= 0], weights=fleet.power_w[groups["rack"] >= 0],
                                minlength=len(racks))
    host_model = _host_model_w(fleet, inventory, racks, layout)
    rack_budget = static["rack_budget"].copy()
    rack_base = np.zeros(len(racks))
    measured_of = rack_power_w or {}
    for i, rname in enumerate(racks):
        measured = measured_of.get(rname)
        rack_base[i] = max(measured - gpu_draw_rack[i], 0.0) if measured is not None else host_model.get(rname, 0.0)
    out = Budgets(names=names)
    out.budget_w["rack"] = rack_budget
    out.base_w["rack"] = rack_base

    zb = static["zone_budget"].copy()
    zbase = np.array([rack_base[idx].sum() if idx else 0.0 for idx in static["zone_racks"]], dtype=float)
    for zi, u in enumerate(static["units"]):
        inlet = (zone_inlet_c or {}).get(u.name)
        if inlet is not None and inlet > INLET_MAX_C:
            zone_gpu = fleet.power_w[groups["zone"] == zi].sum()
            zb[zi] = min(zb[zi], HOT_ZONE_SHED * (zbase[zi] + zone_gpu))
    out.budget_w["zone"], out.base_w["zone"] = zb, zbase

    rb = static["room_budget"].copy()
    rbase = np.array([sum(rack_base[i] for i in idx) for idx in static["room_racks"]], dtype=float)
    out.budget_w["room"], out.base_w["room"] = rb, rbase

    if site_budget_w is not None:
        base = rack_base.sum()
        if it_power_w is not None:
            base = max(it_power_w - fleet.power_w.sum(), 0.0)
        out.budget_w["site"] = np.array([site_budget_w / max(pue, 1.0)])
        out.base_w["site"] = np.array([base])
    return out


def _host_model_w(fleet: FleetState, inventory: Inventory, racks: list[str], layout: FleetLayout | None,
                  ) -> dict[str, float]:
    """Per rack, its hosts' modelled power: idle + dynamic share at the mean utilisation of the
    host's GPUs in the fleet (0 for a host with none)."""
    servers = inventory.servers
    if layout is not None and fleet.slot is not None:
        server = layout.server_of[fleet.slot]
        ok = server >= 0
        total = np.bincount(server[ok], weights=fleet.util[ok], minlength=len(servers))
        count = np.bincount(server[ok], minlength=len(servers))
        util = [t / c if c else 0.0 for t, c in zip(total.tolist(), count.tolist())]
    else:
        util_by_host: dict[str, list[float]] = {}
        for h, u in zip(fleet.host.tolist(), fleet.util.tolist()):
            util_by_host.setdefault(h, []).append(u)
        util = [float(np.mean(util_by_host.get(s.host, [0.0]))) for s in servers]
    host_model = {r: 0.0 for r in racks}
    for s, u in zip(servers, util):
        host_model[s.rack] = host_model.get(s.rack, 0.0) + s.host_idle_w + (s.host_max_w - s.host_idle_w) * u
    return host_model


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
    unit_of_rack: dict[str, str] = {}
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

    def fn(cap_w: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Relative throughput at *cap_w* (n × K, or n); with *rows*, *cap_w* holds only those
        GPUs' rows (a budget prices the GPUs of its over-budget groups alone)."""
        out = np.ones_like(cap_w, dtype=float)
        col = (slice(None), None) if cap_w.ndim == 2 else (slice(None),)
        pos = None
        if rows is not None:
            pos = np.full(max_w.size, -1)
            pos[rows] = np.arange(len(rows))
        for grows, cls in classes:
            grows, at = _within(grows, pos)
            if at.size:
                out[at] = pessimistic_throughput(cls, cap_w[at] / max_w[grows][col])
        for grows, cls, xs, rs in jobs:
            grows, at = _within(grows, pos)
            if not at.size:
                continue
            c = cap_w[at]
            pess = pessimistic_throughput(cls, c / max_w[grows][col])
            at_low = pessimistic_throughput(cls, xs[0] / max_w[grows][col])
            below = rs[0] * pess / np.maximum(at_low, 1e-6)
            out[at] = np.where(c < xs[0], below, np.interp(c, xs, rs))
        return out

    fn.takes_rows = True  # type: ignore[attr-defined]  # decide_caps may ask for a subset of rows
    return fn


def _within(rows: np.ndarray, pos: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """*rows* (fleet positions) kept where *pos* maps them into a subset, and their positions
    there; without *pos*, all of them at their own positions."""
    if pos is None:
        return rows, rows
    at = pos[rows]
    keep = at >= 0
    return rows[keep], at[keep]
