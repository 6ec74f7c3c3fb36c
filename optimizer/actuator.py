"""Actuators: how a decided cap reaches a GPU, with leases, read-back and rollback.

- :class:`BackendActuator` sets limits directly through ``GpuBackend`` objects (NVML on the
  node, or the twin's simulated GPUs under ``dcim up``). It reads every write back; a write
  that fails or reads back wrong is rolled back to the previous limit.
- :class:`DesiredStatePublisher` only records leases in a :class:`DesiredState`; GPU-node
  agents (``optimizer.agent``) fetch them over the API and apply them locally.

Both keep every lease in a :class:`DesiredState`, so the same expiry rule holds either way:
:meth:`Actuator.expire` reverts lapsed leases, :meth:`Actuator.revert_all` reverts everything
the optimizer set (mode ``off``, daemon stop). The backend actuator's book can be enforced
by a separate :class:`~optimizer.agent.NodeAgent` too, so caps lapse even if this process dies.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from dcim.gpu_backend import GpuBackend, GpuError
from optimizer.desired_state import DesiredState, Lease

log = logging.getLogger(__name__)

READBACK_TOLERANCE_W = 1.0


@dataclass
class ApplyResult:
    host: str
    index: int
    uuid: str
    action: str  # "set", "renew", "revert", "rollback", "failed"
    requested_w: float
    applied_w: float | None  # limit in force afterwards (None = unknown)
    previous_w: float | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("set", "renew", "revert")


class Actuator(ABC):
    def __init__(self, desired: DesiredState | None = None):
        self.desired = desired or DesiredState()

    @abstractmethod
    def apply(self, host: str, index: int, uuid: str, limit_w: float, *, default_w: float, lease_s: float,
              now_ns: int, reason: str) -> ApplyResult:
        """Put *limit_w* in force under a lease of *lease_s* seconds from *now_ns*."""

    @abstractmethod
    def revert(self, host: str, index: int, *, reason: str) -> ApplyResult | None:
        """Return one GPU to its default limit and forget its lease (None if it had none)."""

    def renew(self, host: str, index: int, *, lease_s: float, now_ns: int) -> bool:
        return self.desired.renew(host, index, now_ns + int(lease_s * 1e9))

    def expire(self, now_ns: int) -> list[ApplyResult]:
        """Revert every lease that lapsed at *now_ns*."""
        out = []
        with self.desired.deferred():
            for lease in self.desired.expired(now_ns):
                res = self.revert(lease.host, lease.index, reason="lease lapsed")
                if res is not None:
                    out.append(res)
        return out

    def revert_all(self, reason: str) -> list[ApplyResult]:
        out = []
        with self.desired.deferred():
            for lease in self.desired.leases():
                res = self.revert(lease.host, lease.index, reason=reason)
                if res is not None:
                    out.append(res)
        return out

    def leased(self, host: str, index: int) -> bool:
        return self.desired.get(host, index) is not None


class BackendActuator(Actuator):
    """Direct actuation through one :class:`GpuBackend` per host."""

    def __init__(self, backends: dict[str, GpuBackend], desired: DesiredState | None = None):
        super().__init__(desired)
        self.backends = backends
        self._lock = threading.Lock()  # one writer per process; NVML calls are not re-entrant per GPU

    def apply(self, host, index, uuid, limit_w, *, default_w, lease_s, now_ns, reason) -> ApplyResult:
        backend = self.backends.get(host)
        if backend is None:
            return ApplyResult(host, index, uuid, "failed", limit_w, None, None, f"no backend for host {host}")
        with self._lock:
            try:
                previous = backend.power_limit_w(index)
                cons = backend.power_constraints(index)
                target = cons.clamp(limit_w)
            except GpuError as exc:
                return ApplyResult(host, index, uuid, "failed", limit_w, None, None, f"read failed: {exc}")
            try:
                readback = backend.set_power_limit_w(index, target)
                if abs(readback - target) > READBACK_TOLERANCE_W:
                    raise GpuError(f"read back {readback:.0f} W after setting {target:.0f} W")
            except GpuError as exc:
                restored = self._rollback(backend, index, previous)
                log.warning("cap %s/%d → %.0f W failed (%s); rolled back to %s W", host, index, target, exc, restored)
                return ApplyResult(host, index, uuid, "rollback", target, restored, previous, f"apply failed: {exc}")
        old = self.desired.get(host, index)
        self.desired.put(Lease(host, index, uuid, readback, cons.default_w,
                               old.previous_w if old else previous, now_ns + int(lease_s * 1e9), now_ns, reason))
        return ApplyResult(host, index, uuid, "set", target, readback, previous, reason)

    @staticmethod
    def _rollback(backend: GpuBackend, index: int, previous_w: float) -> float | None:
        try:
            return backend.set_power_limit_w(index, previous_w)
        except GpuError as exc:  # the GPU is in an unknown state: the lease book does not own it
            log.error("rollback of GPU %d to %.0f W failed: %s", index, previous_w, exc)
            try:
                return backend.power_limit_w(index)
            except GpuError:
                return None

    def revert(self, host, index, *, reason) -> ApplyResult | None:
        lease = self.desired.get(host, index)
        if lease is None:
            return None
        backend = self.backends.get(host)
        if backend is None:
            self.desired.drop(host, index)
            return ApplyResult(host, index, lease.uuid, "failed", lease.default_w, None, lease.power_limit_w,
                               f"{reason}; no backend for host")
        with self._lock:
            try:
                previous = backend.power_limit_w(index)
                default = backend.power_constraints(index).default_w
                applied = backend.set_power_limit_w(index, default)
            except GpuError as exc:
                # keep the lease record: the next cycle (or the node agent) retries the revert
                return ApplyResult(host, index, lease.uuid, "failed", lease.default_w, None, lease.power_limit_w,
                                   f"{reason}; revert failed: {exc}")
        self.desired.drop(host, index)
        return ApplyResult(host, index, lease.uuid, "revert", default, applied, previous, reason)


class DesiredStatePublisher(Actuator):
    """Publishes leases for GPU-node agents; applies nothing itself. Results are unconfirmed
    until the agents' next telemetry shows the new limit (the daemon compares on its next cycle)."""

    def apply(self, host, index, uuid, limit_w, *, default_w, lease_s, now_ns, reason) -> ApplyResult:
        old = self.desired.get(host, index)
        previous = old.power_limit_w if old else default_w
        self.desired.put(Lease(host, index, uuid, float(limit_w), float(default_w),
                               old.previous_w if old else default_w, now_ns + int(lease_s * 1e9), now_ns, reason))
        return ApplyResult(host, index, uuid, "set", limit_w, None, previous, reason)

    def revert(self, host, index, *, reason) -> ApplyResult | None:
        lease = self.desired.drop(host, index)
        if lease is None:
            return None
        return ApplyResult(host, index, lease.uuid, "revert", lease.default_w, None, lease.power_limit_w, reason)
