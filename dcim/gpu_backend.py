"""The GPU backend interface: what the NVML collector, the optimizer's actuator and the
twin's simulated GPUs all speak.

Modelled on zeus' ``zeus/device/gpu``: units in the names and docstrings, and NVML's error
classes mapped to typed exceptions so callers decide per class (DESIGN.md):

- ``GpuNotSupported`` → the field is dropped for that GPU (absent, never 0);
- ``GpuLost`` → health alarm, re-initialise with backoff;
- ``GpuNoPermission`` → the control is marked unavailable;
- ``GpuInvalidArgument`` → a caller bug (e.g. a limit outside the constraints);
- ``GpuError`` → anything else (``UNKNOWN``, driver not loaded, timeouts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


class GpuError(Exception):
    """A GPU call failed. ``code`` is the NVML return code where there is one."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class GpuNotSupported(GpuError):
    """The GPU or driver does not offer this reading or control."""


class GpuLost(GpuError):
    """The GPU fell off the bus or stopped answering."""


class GpuNoPermission(GpuError):
    """The caller lacks the privilege for this control (setting power limits needs root/CAP_SYS_ADMIN)."""


class GpuInvalidArgument(GpuError):
    """A bad argument, e.g. a power limit outside the constraints."""


class GpuUninitialized(GpuError):
    """The library was not initialised, or the driver is not loaded."""


@dataclass(frozen=True)
class GpuIdentity:
    index: int
    uuid: str
    name: str  # model, e.g. "NVIDIA H100 80GB HBM3"
    serial: str | None = None
    pci_bus_id: str | None = None


@dataclass(frozen=True)
class PowerConstraints:
    """Settable power-limit range and the default, in watts."""

    min_w: float
    max_w: float
    default_w: float

    def clamp(self, limit_w: float) -> float:
        return min(self.max_w, max(self.min_w, limit_w))


class GpuBackend(ABC):
    """One host's GPUs. Implementations: ``collectors.gpu.nvml_backend.NvmlBackend`` (real),
    ``simulator.gpus.SimulatedGpus`` (the twin)."""

    @abstractmethod
    def devices(self) -> list[GpuIdentity]:
        """Every GPU visible on this host, in index order."""

    @abstractmethod
    def sample(self, index: int) -> dict[str, float | int]:
        """One reading of the ``gpu`` measurement's fields for GPU *index* (metric-contract
        names and units: power_w in W, energy_j in J, temp_c in °C, …). Fields the GPU does
        not support are absent. Raises GpuLost if the GPU is gone."""

    @abstractmethod
    def power_constraints(self, index: int) -> PowerConstraints:
        """The settable power-limit range and the default, in watts."""

    @abstractmethod
    def power_limit_w(self, index: int) -> float:
        """The power limit in force, in watts."""

    @abstractmethod
    def set_power_limit_w(self, index: int, limit_w: float) -> float:
        """Set the power limit (watts) and return the value read back afterwards.

        Raises GpuInvalidArgument when *limit_w* is outside ``power_constraints`` (callers
        clamp first), GpuNoPermission without the privilege."""

    def close(self) -> None:  # noqa: B027 (optional hook: a backend holding nothing keeps the no-op)
        """Release the library (nvmlShutdown)."""
