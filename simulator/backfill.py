"""Write days of twin history straight into a Store, so a fresh demo has trends, a PUE model
has training data and a report has a quarter to read.

The twin is stepped at a coarse ``step_s`` (default 300 s); device and facility points are
written every step, per-GPU points (gpu + workload, 1,024 of the ~1,200 points of a demo step)
every ``gpu_step_s`` (default 900 s), because the store's write path dominates the cost:
14 demo days at 300 s for everything are ~4.8 M points. History ends at "now"; the twin is returned positioned
there, so a live run can continue from the same state (counters continue, jobs keep running).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dcim.config import Config
from dcim.metrics import Point
from dcim.store.base import Store
from simulator.facility import FacilityTwin

BATCH_POINTS = 50_000  # points per store.write call

Progress = Callable[[int, int], None]  # (steps done, steps total)


def backfill(twin_or_config: FacilityTwin | Config, store: Store, days: float, step_s: float = 300.0,
             progress: Progress | None = None, *, end_ns: int | None = None, seed: int | None = None,
             gpu_step_s: float | None = 900.0, include_outlets: bool = False, emit: bool = True,
             batch_points: int = BATCH_POINTS) -> FacilityTwin:
    """Write *days* of history at *step_s* spacing ending at *end_ns* (default: now) into *store*.

    With a Config, a new twin (seed from *seed*, else the config's simulator seed) starts at
    ``end_ns − days``. Per-GPU points are written every *gpu_step_s* (rounded to a multiple of
    *step_s*; None = every step) and always at the last step. With a twin, its clock must not be
    later than that start; it is moved there first without writing. Returns the twin, now at *end_ns*. Calls ``store.maintain()``
    at the end when the store has one (rollups, retention). *emit* False: the twin takes the same
    steps and nothing is built or written (its points draw from no random stream, so the twin
    ends in the state a writing run leaves it in: :func:`backfill_quarter` defers the early part).
    *batch_points* per write (one transaction each)."""
    if days < 0 or step_s <= 0:
        raise ValueError("days must be ≥ 0 and step_s > 0")
    end_ns = time.time_ns() if end_ns is None else int(end_ns)
    step_ns = round(step_s * 1e9)
    steps = int(days * 86400 * 1e9 // step_ns)
    start_ns = end_ns - steps * step_ns
    if isinstance(twin_or_config, FacilityTwin):
        twin = twin_or_config
        if twin.now_ns > start_ns:
            raise ValueError("the twin is already past the start of the backfill window; "
                             "create it with start_ns = end_ns − days")
        while twin.now_ns < start_ns:
            twin.advance(min(step_s, (start_ns - twin.now_ns) / 1e9))
    else:
        twin = FacilityTwin(twin_or_config, seed=twin_or_config.simulator.seed if seed is None else seed,
                            start_ns=start_ns)
    if not emit:
        for i in range(steps):
            twin.advance(step_s)
            if progress is not None:
                progress(i + 1, steps)
        return twin
    gpu_every = 1 if gpu_step_s is None else max(1, round(gpu_step_s / step_s))
    probes = RackProbes(twin)
    batch = probes.as_collected(twin.points(include_outlets=include_outlets, include_gpus=steps % gpu_every == 0))
    for i in range(steps):
        twin.advance(step_s)
        # GPU points on a grid that ends exactly at end_ns.
        with_gpus = (steps - i - 1) % gpu_every == 0
        batch += probes.as_collected(twin.points(include_outlets=include_outlets, include_gpus=with_gpus))
        if len(batch) >= batch_points:
            store.write(batch)
            batch = []
        if progress is not None:
            progress(i + 1, steps)
    if batch:
        store.write(batch)
    store.flush()
    maintain = getattr(store, "maintain", None)
    if callable(maintain):
        maintain()
    return twin


# The rack probes as the live collectors store them: the probes plugged into each rack's PDUs,
# served by the twin's agents with their vendor's MIB and named by the collector "<pdu>-<probe>",
# per position (the collector reads it from the probe's name). APC rPDU2
# (simulator/mib_apc_pdu.py): probe 1 "<rack> inlet" reads temperature and humidity, probe 2
# "<rack> rear" the exhaust temperature; Raritan PDU2 (simulator/mib_raritan_pdu.py): external
# sensor 1 the inlet temperature, 2 the humidity, 3 the outlet temperature. History writes exactly
# these series: one that only the backfill wrote would fall silent the moment the live collectors
# take over (and raise env_silent).
ProbeLayout = dict[str, dict[str, tuple[str, ...]]]   # position -> probe -> the fields it reads
PROBE_FIELDS: dict[str, ProbeLayout] = {
    "apc_rpdu2": {"inlet": {"1": ("temp_c", "humidity_pct")}, "outlet": {"2": ("temp_c",)}},
    "raritan_pdu2": {"inlet": {"1": ("temp_c",), "2": ("humidity_pct",)}, "outlet": {"3": ("temp_c",)}}}


class RackProbes:
    """Rewrites the twin's per-rack ``env`` points as the PDUs' probes report them."""

    def __init__(self, twin: FacilityTwin):
        from simulator.snmp_agents import agent_profile_for

        inventory = twin.inventory
        self.by_rack: dict[tuple[str, str], list[tuple[str, tuple]]] = {}
        for pdu in inventory.config.pdus:
            layout = PROBE_FIELDS.get(agent_profile_for("pdu", pdu, inventory).name, {})
            for position, probes in layout.items():
                self.by_rack.setdefault((pdu.rack, position), []).extend(
                    (f"{pdu.name}-{probe}", fields) for probe, fields in probes.items())

    def as_collected(self, points: list) -> list:
        out = []
        for p in points:
            if p.measurement != "env":
                out.append(p)
                continue
            for sensor, fields in self.by_rack.get((p.tags["rack"], p.tags.get("position", "")), ()):
                values = {f: p.fields[f] for f in fields if f in p.fields}
                if values:
                    out.append(Point("env", {**p.tags, "sensor": sensor}, values, p.time_ns))
        return out


QUARTER_STEP_S = 3600.0  # the quarter before the recent days: hourly, GPUs included (coverage 100 %)


def quarter_start_ns(now_ns: int, timezone: str) -> int:
    """The start of the calendar quarter holding *now_ns*, local midnight in *timezone* (UTC ns)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(now_ns / 1e9, ZoneInfo(timezone))
    start = local.replace(month=(local.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp()) * 10**9


@dataclass(frozen=True)
class EarlyPart:
    """The quarter's history before the recent days, left for :func:`fill_early` to write."""

    start_ns: int
    end_ns: int
    seed: int

    @property
    def days(self) -> float:
        return (self.end_ns - self.start_ns) / 86400e9


def backfill_quarter(config: Config, store: Store, recent_days: float, progress: Progress | None = None, *,
                     end_ns: int | None = None, seed: int | None = None, step_s: float = 300.0,
                     whole_quarter: bool = True,
                     defer_early: Callable[[EarlyPart], None] | None = None) -> FacilityTwin:
    """The demo's history: the current quarter to date (site time), so its report and energy
    page have a period to show. The last *recent_days* at *step_s* (GPUs every 900 s), as
    :func:`backfill`; the rest of the quarter before them hourly with every GPU each hour, so the
    report's coverage is whole there too at a twelfth of the points. One twin runs through both,
    so counters and jobs continue. Returns it, at *end_ns* (default now). *whole_quarter* False:
    the recent days only (``dcim up --backfill-days D``: exactly what was asked).

    *defer_early*: the early part is not written here; the twin only steps through it (a few
    ms an hour, no points), so the recent days continue its counters and jobs exactly, and
    *defer_early* gets the :class:`EarlyPart` that :func:`fill_early` writes later (``dcim up``:
    in a process of its own once everything serves). The hourly writing costs ~2.6 s CPU a day,
    minutes for a quarter, before anything would serve."""
    end_ns = time.time_ns() if end_ns is None else int(end_ns)
    if not whole_quarter:
        return backfill(config, store, recent_days, step_s=step_s, progress=progress, end_ns=end_ns, seed=seed)
    recent_start_ns = end_ns - int(recent_days * 86400 * 1e9)
    start_ns = min(quarter_start_ns(end_ns, config.site.timezone), recent_start_ns)
    twin = FacilityTwin(config, seed=config.simulator.seed if seed is None else seed, start_ns=start_ns)
    early_days = (recent_start_ns - start_ns) / 86400e9
    early_steps = int(early_days * 86400 // QUARTER_STEP_S) if early_days > 0 else 0
    late_steps = int(recent_days * 86400 // step_s)
    total = early_steps + late_steps

    def stage(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, _: progress(offset + done, total)

    if early_steps:
        backfill(twin, store, early_days, step_s=QUARTER_STEP_S, gpu_step_s=QUARTER_STEP_S, end_ns=recent_start_ns,
                 progress=stage(0), emit=defer_early is None)
        if defer_early is not None:
            defer_early(EarlyPart(start_ns, recent_start_ns, config.simulator.seed if seed is None else seed))
    return backfill(twin, store, recent_days, step_s=step_s, end_ns=end_ns, progress=stage(early_steps))


# The early part is written while the live collectors write too: short transactions (two hourly
# steps of the demo), so that this low-priority writer holds SQLite's write lock only briefly
# (simulator/quarter_fill.py also paces the writes and waits out a lock held by another writer).
FILL_BATCH_POINTS = 2_500


def fill_early(config: Config, store: Store, part: EarlyPart, progress: Progress | None = None) -> None:
    """Write the early part :func:`backfill_quarter` deferred: a twin of the same seed from the
    quarter's start takes the same hourly steps, so its points are those a single run writes
    (its counters end where the recent days' begin). The store's maintain() at the end rolls up
    the days these late points fall in, as it does for any late point."""
    twin = FacilityTwin(config, seed=part.seed, start_ns=part.start_ns)
    backfill(twin, store, part.days, step_s=QUARTER_STEP_S, gpu_step_s=QUARTER_STEP_S, end_ns=part.end_ns,
             progress=progress, batch_points=FILL_BATCH_POINTS)
