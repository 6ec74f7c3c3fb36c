"""The GPU collector: one ``gpu`` point per GPU per interval, over any ``GpuBackend``.

The backend is the real ``NvmlBackend`` on a GPU server, or the twin's
``simulator.gpus.SimulatedGpus``; both speak ``dcim.gpu_backend.GpuBackend``. The host's
inventory gives the location tags (site, room, rack, host); the backend gives the GPU index,
UUID and model.

Outcomes per GPU (DESIGN.md):

- a field the GPU does not support is absent from its point (the backend drops it);
- ``GpuLost`` → that GPU's ``TargetResult`` is ``ok=False`` with a health alarm (a
  ``collector`` point, ``error="gpu lost"``), and it is re-initialised with exponential
  backoff (``backoff_initial_s`` doubling up to ``backoff_max_s``: tenacity's
  ``wait_exponential``) while the other GPUs keep being sampled; the first good sample after
  that clears the alarm. The wait is tenacity's, the loop is the collector's own cycle: a
  re-init is tried at most once per poll, after its wait, never by sleeping in the poll;
- ``GpuNoPermission`` on a control (power limit) → ``control_available(index)`` is False
  (reported by the backend; the optimizer's actuator reads it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collectors.base import Collector, TargetResult, exponential_backoff
from dcim.gpu_backend import (
    GpuBackend,
    GpuError,
    GpuIdentity,
    GpuLost,
    GpuUninitialized,
)
from dcim.metrics import FieldValue, Point

if TYPE_CHECKING:  # the inventory pulls in the config (pydantic); only its types are needed
    from dcim.inventory import GpuSlot

log = logging.getLogger(__name__)

LOST_ERROR = "gpu lost"


@dataclass
class _Health:
    lost: bool = False
    failures: int = 0  # consecutive failed attempts since the GPU was lost
    next_try_s: float = 0.0  # monotonic time of the next re-init attempt
    error: str | None = None


class GpuCollector(Collector):
    """Samples every GPU of one host through *backend*.

    *slots* are this host's ``GpuSlot`` records from the inventory (their location tags are
    used; the backend's identity supplies uuid and model); without them, *host_tags* (site,
    room, rack, host) are used, the host defaulting to this machine's name. *clock* is a
    monotonic clock in seconds (tests pass their own to step through backoff).
    """

    name = "nvml"

    def __init__(self, backend: GpuBackend, slots: list[GpuSlot] | None = None, *,
                 host_tags: dict[str, str] | None = None, interval_s: float = 10.0,
                 name: str = "nvml", backoff_initial_s: float = 1.0, backoff_max_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, owns_backend: bool = True):
        self.backend = backend
        # The agent shares its backend with the cap reconciler, which must still reach the GPUs
        # after collection stops (to revert them): then the agent, not this collector, closes it.
        self.owns_backend = owns_backend
        self.name = name
        self.interval_s = interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._reinit_wait_s = exponential_backoff(backoff_initial_s, backoff_max_s)
        self._clock = clock
        self._slots = {s.index: s for s in (slots or [])}
        base = dict(host_tags or {})
        if self._slots and not base:
            s = next(iter(self._slots.values()))
            base = {"site": s.site, "room": s.room, "rack": s.rack, "host": s.host}
        base.setdefault("host", socket.gethostname())
        self._base_tags = {k: v for k, v in base.items() if k in ("site", "room", "rack", "host") and v}
        self._identities: list[GpuIdentity] = []
        self._health: dict[int, _Health] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvml")
        self._refresh_identities()

    # ------------------------------------------------------------------ identity
    def _refresh_identities(self) -> None:
        try:
            self._identities = list(self.backend.devices())
        except GpuError as exc:
            log.warning("%s: cannot list GPUs: %s", self.name, exc)
            if not self._identities:
                self._identities = []

    def _indices(self) -> list[int]:
        known = {g.index for g in self._identities}
        return sorted(known | set(self._slots))

    def _identity(self, index: int) -> GpuIdentity | None:
        for g in self._identities:
            if g.index == index:
                return g
        return None

    def target_name(self, index: int) -> str:
        """The GPU's UUID when known, else ``host/gpuN``."""
        ident = self._identity(index)
        return ident.uuid if ident and ident.uuid else f"{self._base_tags['host']}/gpu{index}"

    def tags(self, index: int) -> dict[str, str]:
        """The ``gpu`` measurement's tags for GPU *index*."""
        slot = self._slots.get(index)
        tags = dict(slot.tags) if slot is not None else {**self._base_tags, "gpu": str(index)}
        tags.pop("tenant", None)
        ident = self._identity(index)
        if ident is not None:
            tags["uuid"] = ident.uuid
            if ident.name:
                tags["model"] = ident.name
        return tags

    def targets(self) -> list[str]:
        return [self.target_name(i) for i in self._indices()]

    def is_lost(self, index: int) -> bool:
        h = self._health.get(index)
        return bool(h and h.lost)

    def control_available(self, index: int) -> bool:
        """False once the backend refused a control (power limit) with NO_PERMISSION."""
        probe = getattr(self.backend, "control_available", None)
        return bool(probe(index)) if probe is not None else True

    # ------------------------------------------------------------------ sampling
    def _alarm(self, index: int, target: str, error: str, duration_s: float, now_ns: int) -> Point:
        return Point("collector", {"collector": self.name, "target": target},
                     {"ok": False, "error": error, "duration_s": duration_s, "points": 0}, now_ns)

    def _reinit(self) -> None:
        reinit = getattr(self.backend, "reinit", None)
        if reinit is not None:
            reinit()
        self._refresh_identities()

    def poll_gpu(self, index: int) -> TargetResult:
        """Sample GPU *index* once (blocking; ``poll`` runs it in a worker thread)."""
        t0 = time.perf_counter()
        target = self.target_name(index)
        health = self._health.setdefault(index, _Health())
        now = self._clock()
        if health.lost:
            if now < health.next_try_s:
                err = f"{LOST_ERROR} (next re-init in {health.next_try_s - now:.0f} s)"
                dur = time.perf_counter() - t0
                return TargetResult(target, [self._alarm(index, target, LOST_ERROR, dur, time.time_ns())],
                                    ok=False, error=err, duration_s=dur)
            try:
                self._reinit()
                target = self.target_name(index)
            except GpuError as exc:
                return self._lost(index, target, health, f"re-init failed: {exc}", t0)
        try:
            fields = self.backend.sample(index)
        except GpuLost as exc:
            return self._lost(index, target, health, str(exc), t0)
        except GpuUninitialized as exc:
            # the driver went away under us: same handling as a lost GPU (re-init with backoff)
            return self._lost(index, target, health, str(exc), t0)
        except GpuError as exc:
            dur = time.perf_counter() - t0
            return TargetResult(target, [], ok=False, error=f"{type(exc).__name__}: {exc}", duration_s=dur)
        if health.lost:
            log.warning("%s: GPU %d (%s) is back after %d failed attempt(s)", self.name, index, target,
                        health.failures)
        health.lost, health.failures, health.error = False, 0, None
        dur = time.perf_counter() - t0
        if not fields:
            return TargetResult(target, [], ok=False, error="no supported readings", duration_s=dur)
        errors = getattr(self.backend, "field_errors", None)
        partial = errors(index) if errors is not None else {}
        error = ("; ".join(f"{k}: {v}" for k, v in sorted(partial.items()))) if partial else None
        point_fields: dict[str, FieldValue] = dict(fields)  # the point's own dict, typed as Point takes it
        return TargetResult(target, [Point("gpu", self.tags(index), point_fields)], ok=True, error=error,
                            duration_s=dur)

    def _lost(self, index: int, target: str, health: _Health, why: str, t0: float) -> TargetResult:
        if not health.lost:
            log.error("%s: GPU %d (%s) lost: %s", self.name, index, target, why)
        health.lost = True
        health.failures += 1
        delay = self._reinit_wait_s(health.failures)
        health.next_try_s = self._clock() + delay
        health.error = why
        dur = time.perf_counter() - t0
        return TargetResult(target, [self._alarm(index, target, LOST_ERROR, dur, time.time_ns())],
                            ok=False, error=f"{LOST_ERROR}: {why}", duration_s=dur)

    def poll_sync(self) -> list[TargetResult]:
        """Every GPU once, in index order (blocking)."""
        return [self.poll_gpu(i) for i in self._indices()]

    async def poll(self, deadline_s: float) -> list[TargetResult]:
        """Every GPU once; a GPU not sampled within *deadline_s* is reported ok=False."""
        loop = asyncio.get_running_loop()
        indices = self._indices()
        done: dict[int, TargetResult] = {}

        def run_all() -> None:
            for i in indices:
                try:
                    done[i] = self.poll_gpu(i)
                except Exception as exc:  # a collector never raises: report, keep going
                    log.exception("%s: GPU %d: unexpected error", self.name, i)
                    done[i] = TargetResult(self.target_name(i), [], ok=False,
                                           error=f"{type(exc).__name__}: {exc}")

        fut = loop.run_in_executor(self._executor, run_all)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=deadline_s)
        except TimeoutError:
            pass
        return [done.get(i) or TargetResult(self.target_name(i), [], ok=False,
                                            error=f"timeout after {deadline_s:g} s", duration_s=deadline_s)
                for i in indices]

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.owns_backend:
            self.backend.close()
