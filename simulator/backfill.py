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
from typing import Callable

from dcim.config import Config
from dcim.store.base import Store
from simulator.facility import FacilityTwin

BATCH_POINTS = 50_000  # points per store.write call

Progress = Callable[[int, int], None]  # (steps done, steps total)


def backfill(twin_or_config: FacilityTwin | Config, store: Store, days: float, step_s: float = 300.0,
             progress: Progress | None = None, *, end_ns: int | None = None, seed: int | None = None,
             gpu_step_s: float | None = 900.0, include_outlets: bool = False) -> FacilityTwin:
    """Write *days* of history at *step_s* spacing ending at *end_ns* (default: now) into *store*.

    With a Config, a new twin (seed from *seed*, else the config's simulator seed) starts at
    ``end_ns − days``. Per-GPU points are written every *gpu_step_s* (rounded to a multiple of
    *step_s*; None = every step) and always at the last step. With a twin, its clock must not be later than that start; it is moved
    there first without writing. Returns the twin, now at *end_ns*. Calls ``store.maintain()``
    at the end when the store has one (rollups, retention)."""
    if days < 0 or step_s <= 0:
        raise ValueError("days must be ≥ 0 and step_s > 0")
    end_ns = time.time_ns() if end_ns is None else int(end_ns)
    step_ns = int(round(step_s * 1e9))
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
    gpu_every = 1 if gpu_step_s is None else max(1, int(round(gpu_step_s / step_s)))
    batch = twin.points(include_outlets=include_outlets, include_gpus=steps % gpu_every == 0)
    for i in range(steps):
        twin.advance(step_s)
        # GPU points on a grid that ends exactly at end_ns.
        with_gpus = (steps - i - 1) % gpu_every == 0
        batch += twin.points(include_outlets=include_outlets, include_gpus=with_gpus)
        if len(batch) >= BATCH_POINTS:
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
