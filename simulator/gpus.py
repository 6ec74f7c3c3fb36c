"""Simulated GPUs: one host's GPUs of the twin behind the same GpuBackend interface as NVML.

Behaves like NVML where callers can tell: the energy counter is an integer in mJ (reported in
J), power limits are set in whole mW and read back, limits outside the constraints raise
GpuInvalidArgument, a lost GPU raises GpuLost on every call, and unsupported fields are absent
from samples. Fault injection for tests: :meth:`lose`, :attr:`unsupported_fields`,
:attr:`fail_next_set`, :attr:`no_permission`.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from typing import TYPE_CHECKING

import numpy as np

from dcim.gpu_backend import (
    GpuBackend,
    GpuError,
    GpuIdentity,
    GpuInvalidArgument,
    GpuLost,
    GpuNoPermission,
    GpuNotSupported,
    PowerConstraints,
)
from simulator import physics

if TYPE_CHECKING:
    from simulator.facility import FacilityTwin

# NVML return codes carried on the typed errors (ref §2.3).
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
# Plausible PCI bus numbers of an 8-GPU HGX board [assumption].
_BUS_IDS = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)


def fake_uuid(seed: int, host: str, index: int) -> str:
    """Stable NVML-style UUID (``GPU-xxxxxxxx-…``) from seed, host and index."""
    digest = hashlib.sha256(f"dcim-twin/{seed}/{host}/{index}".encode()).digest()
    return "GPU-" + str(uuidlib.UUID(bytes=digest[:16]))


def fake_serial(seed: int, host: str, index: int) -> str:
    digest = hashlib.sha256(f"dcim-serial/{seed}/{host}/{index}".encode()).digest()
    return str(1650000000000 + int.from_bytes(digest[:6], "big") % 10**11)


class SimulatedGpus(GpuBackend):
    """The GPUs of one host of a :class:`~simulator.facility.FacilityTwin`.

    Fault injection: ``lose(i)`` / ``recover(i)``; ``unsupported_fields`` (names of ``gpu``
    fields to drop; ``"power_limit"`` also makes limit control unsupported); ``fail_next_set``
    (the next set_power_limit_w raises GpuError and changes nothing; set it to an exception
    instance to raise that instead); ``no_permission`` (setters raise GpuNoPermission)."""

    def __init__(self, twin: FacilityTwin, host: str):
        self._twin = twin
        self.host = host
        self._pos = twin.gpu_positions(host)  # global GPU index per local index
        self._lost: set[int] = set()
        self.unsupported_fields: set[str] = {"fan_pct"}  # H100 SXM has no fan (ref §2.2 [measured])
        self.fail_next_set: bool | BaseException = False
        self.no_permission = False
        self._rng = np.random.default_rng([twin.seed & 0xFFFFFFFF, 0x69, len(host), *host.encode()[:16]])

    # --- fault injection -------------------------------------------------------------------------

    def lose(self, index: int) -> None:
        """GPU *index* falls off the bus: every call about it raises GpuLost."""
        self._check_index(index)
        self._lost.add(index)

    def recover(self, index: int) -> None:
        self._lost.discard(index)

    # --- GpuBackend ------------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self._pos):
            raise GpuInvalidArgument(f"{self.host}: no GPU {index}", NVML_ERROR_INVALID_ARGUMENT)
        return self._pos[index]

    def _gpu(self, index: int) -> int:
        pos = self._check_index(index)
        if index in self._lost:
            raise GpuLost(f"{self.host} GPU {index}: GPU is lost", NVML_ERROR_GPU_IS_LOST)
        return pos

    def devices(self) -> list[GpuIdentity]:
        out = []
        for i, pos in enumerate(self._pos):
            slot = self._twin.slots[pos]
            out.append(GpuIdentity(index=i, uuid=self._twin.uuids[pos], name=slot.model,
                                   serial=fake_serial(self._twin.seed, self.host, i),
                                   pci_bus_id=f"00000000:{_BUS_IDS[i % 8] + i // 8:02X}:00.0"))
        return out

    def uuid(self, index: int) -> str:
        return self._twin.uuids[self._gpu(index)]

    def sample(self, index: int) -> dict[str, float | int]:
        g = self._gpu(index)
        t = self._twin.gpu_state
        avg_w = float(t.power_w[g])
        # Instantaneous power ripples around the 1-s average (±5 W accuracy, ref §3.1).
        instant_w = max(0.0, avg_w + float(self._rng.normal(0.0, 3.0)))
        cons = self._twin.constraints
        fields: dict[str, float | int] = {
            "power_w": round(instant_w, 3),
            "power_avg_w": round(avg_w, 3),
            "energy_j": int(t.energy_mj[g]) / 1000.0,
            "power_limit_w": float(t.cap_w[g]),
            "power_limit_default_w": cons.default_w,
            "power_limit_min_w": cons.min_w,
            "power_limit_max_w": cons.max_w,
            "temp_c": float(round(t.temp_c[g])),  # NVML reports whole degrees
            "mem_temp_c": float(round(t.mem_temp_c[g])),
            "util_pct": float(round(t.util[g] * 100.0)),
            "mem_util_pct": float(round(t.mem_util[g] * 100.0)),
            "mem_used_bytes": int(t.mem_used_bytes[g]),
            "mem_total_bytes": physics.GPU_MEM_TOTAL_BYTES,
            "sm_clock_mhz": float(round(t.sm_clock_mhz[g])),
            "mem_clock_mhz": physics.GPU_MEM_CLOCK_MHZ,
            "throttle_reasons": int(t.throttle[g]),
            "ecc_uncorrected": 0,
            "ecc_corrected": int(t.ecc_corrected[g]),
            "fan_pct": 0.0,
            "pstate": 0,
        }
        for name in self.unsupported_fields:
            fields.pop(name, None)
            if name == "power_limit":
                for key in ("power_limit_w", "power_limit_default_w", "power_limit_min_w", "power_limit_max_w"):
                    fields.pop(key, None)
        return fields

    def power_constraints(self, index: int) -> PowerConstraints:
        self._gpu(index)
        if "power_limit" in self.unsupported_fields:
            raise GpuNotSupported("power limit constraints not supported", NVML_ERROR_NOT_SUPPORTED)
        return self._twin.constraints

    def power_limit_w(self, index: int) -> float:
        g = self._gpu(index)
        if "power_limit" in self.unsupported_fields:
            raise GpuNotSupported("power limit not supported", NVML_ERROR_NOT_SUPPORTED)
        return float(self._twin.gpu_state.cap_w[g])

    def set_power_limit_w(self, index: int, limit_w: float) -> float:
        g = self._gpu(index)
        if "power_limit" in self.unsupported_fields:
            raise GpuNotSupported("setting the power limit is not supported", NVML_ERROR_NOT_SUPPORTED)
        if self.no_permission:
            raise GpuNoPermission("setting the power limit needs root", NVML_ERROR_NO_PERMISSION)
        if self.fail_next_set:
            exc = self.fail_next_set
            self.fail_next_set = False
            if isinstance(exc, BaseException):
                raise exc
            raise GpuError("injected failure setting the power limit", NVML_ERROR_UNKNOWN)
        # NVML takes an unsigned integer in mW and checks it against the constraints.
        limit_mw = int(round(float(limit_w) * 1000.0))
        cons = self._twin.constraints
        if not (cons.min_w * 1000 <= limit_mw <= cons.max_w * 1000):
            raise GpuInvalidArgument(
                f"{self.host} GPU {index}: power limit {limit_w} W outside [{cons.min_w}, {cons.max_w}] W",
                NVML_ERROR_INVALID_ARGUMENT)
        self._twin.gpu_state.cap_w[g] = limit_mw / 1000.0
        return float(self._twin.gpu_state.cap_w[g])

    def reset_power_limit_w(self, index: int) -> float:
        """Back to the default limit (what a driver reload or lease expiry does)."""
        return self.set_power_limit_w(index, self._twin.constraints.default_w)
