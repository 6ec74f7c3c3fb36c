"""The real GPU backend: NVIDIA GPUs over NVML (``pynvml`` from ``nvidia-ml-py``).

Modelled on zeus' ``zeus/device/gpu/nvidia.py``: every NVML error is mapped to a typed
``dcim.gpu_backend`` exception by its return code, units are in the names, and NVML's own
units (mW, mJ) never leave this module.

One ``sample()`` per GPU reads the ``gpu`` measurement's fields (``dcim.metrics``):

================================  =================================================  ========
field                             NVML call                                          NVML unit
================================  =================================================  ========
power_w                           field ``NVML_FI_DEV_POWER_INSTANT`` (GPU scope)    mW
power_avg_w                       ``nvmlDeviceGetPowerUsage`` (1 s average, Ampere+)  mW
energy_j                          ``nvmlDeviceGetTotalEnergyConsumption`` (raw)      mJ
power_limit_w                     ``nvmlDeviceGetEnforcedPowerLimit``                mW
power_limit_{default,min,max}_w   read once at init (static)                         mW
temp_c                            ``nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)``  °C
mem_temp_c                        field ``NVML_FI_DEV_MEMORY_TEMP``                  °C
util_pct, mem_util_pct            ``nvmlDeviceGetUtilizationRates``                  %
mem_used_bytes, mem_total_bytes   ``nvmlDeviceGetMemoryInfo`` (v2, else v1)          B
sm_clock_mhz, mem_clock_mhz       ``nvmlDeviceGetClockInfo``                         MHz
throttle_reasons                  ``nvmlDeviceGetCurrentClocksEventReasons``         bitmask
ecc_corrected, ecc_uncorrected    fields ``NVML_FI_DEV_ECC_{SBE,DBE}_VOL_TOTAL``     count
fan_pct                           ``nvmlDeviceGetFanSpeed``                          %
pstate                            ``nvmlDeviceGetPerformanceState``                  P-state
================================  =================================================  ========

The field-value reads go out as ONE ``nvmlDeviceGetFieldValues`` call per sample, with each
entry's ``nvmlReturn`` checked on its own. The blocking PCIe throughput call
(``nvmlDeviceGetPcieThroughput``, ~21 ms on an H100) is never made.

Error outcomes (DESIGN.md): NOT_SUPPORTED (and NO_PERMISSION or INVALID_ARGUMENT on a read)
drops the field for that GPU for good (remembered, never retried, never reported as 0);
GPU_IS_LOST raises ``GpuLost`` (the collector alarms and calls ``reinit`` with backoff);
UNINITIALIZED / DRIVER_NOT_LOADED / LIBRARY_NOT_FOUND / LIB_RM_VERSION_MISMATCH raise
``GpuUninitialized``; any other error on one reading (UNKNOWN, TIMEOUT, …) drops that field
for this sample only and is recorded in ``field_errors(index)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dcim.gpu_backend import (
    GpuBackend,
    GpuError,
    GpuIdentity,
    GpuInvalidArgument,
    GpuLost,
    GpuNoPermission,
    GpuNotSupported,
    GpuUninitialized,
    PowerConstraints,
)

log = logging.getLogger(__name__)

# NVML return codes (the values of pynvml's NVML_ERROR_* constants; fixed by the C API).
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

_UNINITIALIZED_CODES = frozenset({NVML_ERROR_UNINITIALIZED, NVML_ERROR_DRIVER_NOT_LOADED,
                                  NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_LIB_RM_VERSION_MISMATCH})

# Errors on a *read* that will not change while the driver stays loaded: the field is dropped
# for that GPU and not asked for again. FUNCTION_NOT_FOUND = the driver is older than the binding.
_STATIC_READ_ERRORS = (GpuNotSupported, GpuNoPermission, GpuInvalidArgument)


def map_nvml_error(exc: BaseException, what: str = "") -> GpuError:
    """The typed ``dcim.gpu_backend`` exception for an ``NVMLError`` (by its return code)."""
    code = getattr(exc, "value", None)
    msg = f"{what}: {exc}" if what else str(exc)
    if code == NVML_ERROR_NOT_SUPPORTED or code == NVML_ERROR_FUNCTION_NOT_FOUND:
        return GpuNotSupported(msg, code)
    if code == NVML_ERROR_GPU_IS_LOST:
        return GpuLost(msg, code)
    if code == NVML_ERROR_NO_PERMISSION:
        return GpuNoPermission(msg, code)
    if code == NVML_ERROR_INVALID_ARGUMENT:
        return GpuInvalidArgument(msg, code)
    if code in _UNINITIALIZED_CODES:
        return GpuUninitialized(msg, code)
    return GpuError(msg, code if isinstance(code, int) else None)


def _field_value(fv: Any) -> float | int:
    """The number in a ``c_nvmlFieldValue_t``, picked by its ``valueType``."""
    vt = fv.valueType
    v = fv.value
    if vt == 0:
        return float(v.dVal)
    if vt == 1:
        return int(v.uiVal)
    if vt == 2:
        return int(v.ulVal)
    if vt == 3:
        return int(v.ullVal)
    if vt == 4:
        return int(v.sllVal)
    if vt == 5:
        return int(v.siVal)
    if vt == 6:
        return int(v.usVal)
    return int(v.ullVal)


@dataclass
class _FieldRead:
    """One entry of the batched ``nvmlDeviceGetFieldValues`` call."""

    name: str  # metric field it feeds
    field_id: int
    scope: int | None  # power scope for power fields, else None
    convert: Callable[[float | int], float | int]


@dataclass
class _Gpu:
    identity: GpuIdentity
    handle: Any
    unsupported: set[str] = field(default_factory=set)  # metric fields / readings dropped for good
    static: dict[str, float] = field(default_factory=dict)  # power_limit_{default,min,max}_w
    constraints: PowerConstraints | None = None
    control_available: bool = True
    control_error: str | None = None
    lost: bool = False
    field_errors: dict[str, str] = field(default_factory=dict)  # last sample's transient errors


def _import_pynvml() -> ModuleType:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise GpuUninitialized(f"pynvml (nvidia-ml-py) is not installed: {exc}") from exc
    return pynvml


class NvmlBackend(GpuBackend):
    """This host's NVIDIA GPUs through NVML.

    ``nvml`` is the ``pynvml`` module (default: the real one, imported here); tests pass
    ``tests.fakes.fake_pynvml``. NVML is initialised once, on construction; handles are
    cached per index. Raises ``GpuUninitialized`` when there is no driver or library.
    """

    def __init__(self, nvml: ModuleType | Any | None = None):
        # Any: pynvml ships no type information, and tests pass a stand-in with the same names
        self.nvml: Any = nvml if nvml is not None else _import_pynvml()
        self._lock = threading.RLock()
        self._gpus: list[_Gpu] = []
        self._initialised = False
        self._field_reads = self._build_field_reads()
        self.driver_version: str | None = None
        self.nvml_version: str | None = None
        self._init()

    # ------------------------------------------------------------------ init
    def _build_field_reads(self) -> list[_FieldRead]:
        n = self.nvml
        mw_to_w = lambda v: float(v) / 1000.0  # noqa: E731
        reads = []
        if hasattr(n, "NVML_FI_DEV_POWER_INSTANT"):
            reads.append(_FieldRead("power_w", n.NVML_FI_DEV_POWER_INSTANT,
                                    getattr(n, "NVML_POWER_SCOPE_GPU", 0), mw_to_w))
        reads.append(_FieldRead("mem_temp_c", n.NVML_FI_DEV_MEMORY_TEMP, None, float))
        reads.append(_FieldRead("ecc_corrected", n.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, None, int))
        reads.append(_FieldRead("ecc_uncorrected", n.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, None, int))
        return reads

    def _call(self, what: str, fn: Callable, *args):
        try:
            return fn(*args)
        except self.nvml.NVMLError as exc:
            raise map_nvml_error(exc, what) from exc

    def _init(self, previous: dict[int, _Gpu] | None = None) -> None:
        """nvmlInit, then a handle, identity and static limits per GPU. A GPU that answers
        GPU_IS_LOST here is kept, marked lost (with its previous identity when known), so the
        others work on."""
        n = self.nvml
        previous = previous or {}
        with self._lock:
            self._call("nvmlInit", n.nvmlInit)
            self._initialised = True
            try:
                self.driver_version = _str(n.nvmlSystemGetDriverVersion())
            except n.NVMLError:
                self.driver_version = None
            try:
                self.nvml_version = _str(n.nvmlSystemGetNVMLVersion())
            except (n.NVMLError, AttributeError):
                self.nvml_version = None
            count = self._call("nvmlDeviceGetCount", n.nvmlDeviceGetCount)
            gpus = []
            for index in range(count):
                try:
                    handle = self._call(f"gpu {index}: nvmlDeviceGetHandleByIndex",
                                        n.nvmlDeviceGetHandleByIndex, index)
                    gpu = _Gpu(self._identify(index, handle), handle)
                    self._read_static(gpu)
                except GpuLost as exc:
                    log.error("gpu %d: lost at init: %s", index, exc)
                    prev = previous.get(index)
                    ident = prev.identity if prev is not None else GpuIdentity(index=index, uuid="", name="")
                    gpu = _Gpu(ident, None, lost=True)
                    if prev is not None:
                        gpu.static, gpu.constraints = prev.static, prev.constraints
                gpus.append(gpu)
            self._gpus = gpus

    def _identify(self, index: int, handle: Any) -> GpuIdentity:
        n = self.nvml
        uuid = _str(self._call(f"gpu {index}: nvmlDeviceGetUUID", n.nvmlDeviceGetUUID, handle))
        name = _str(self._call(f"gpu {index}: nvmlDeviceGetName", n.nvmlDeviceGetName, handle))
        serial = pci = None
        try:
            serial = _str(n.nvmlDeviceGetSerial(handle)) or None
        except n.NVMLError:
            pass
        try:
            pci = _str(n.nvmlDeviceGetPciInfo_v3(handle).busId) or None
        except (n.NVMLError, AttributeError):
            pass
        return GpuIdentity(index=index, uuid=uuid, name=name, serial=serial, pci_bus_id=pci)

    def _read_static(self, gpu: _Gpu) -> None:
        """Power-limit constraints and default: fixed while the driver is loaded, read once."""
        n, h = self.nvml, gpu.handle
        try:
            lo_mw, hi_mw = self._call("nvmlDeviceGetPowerManagementLimitConstraints",
                                      n.nvmlDeviceGetPowerManagementLimitConstraints, h)
            gpu.static["power_limit_min_w"] = lo_mw / 1000.0
            gpu.static["power_limit_max_w"] = hi_mw / 1000.0
        except GpuLost:
            raise
        except GpuError as exc:
            log.info("gpu %d: no power-limit constraints (%s)", gpu.identity.index, exc)
        try:
            gpu.static["power_limit_default_w"] = self._call(
                "nvmlDeviceGetPowerManagementDefaultLimit", n.nvmlDeviceGetPowerManagementDefaultLimit, h) / 1000.0
        except GpuLost:
            raise
        except GpuError as exc:
            log.info("gpu %d: no default power limit (%s)", gpu.identity.index, exc)
        s = gpu.static
        if {"power_limit_min_w", "power_limit_max_w", "power_limit_default_w"} <= s.keys():
            gpu.constraints = PowerConstraints(s["power_limit_min_w"], s["power_limit_max_w"],
                                               s["power_limit_default_w"])

    def reinit(self) -> None:
        """Shut NVML down and initialise it again, re-acquiring every handle (after GPU_IS_LOST).

        GPUs are matched by UUID, so per-GPU memory (unsupported fields, control state) survives
        when the GPU comes back, even at another index. A GPU still lost stays marked lost (its
        ``sample`` raises GpuLost); a failing nvmlInit raises the mapped error."""
        n = self.nvml
        with self._lock:
            old = {g.identity.uuid: g for g in self._gpus}
            if self._initialised:
                try:
                    n.nvmlShutdown()
                except n.NVMLError:
                    pass
                self._initialised = False
            previous = {g.identity.index: g for g in self._gpus}
            self._gpus = []
            self._init(previous)
            for g in self._gpus:
                prev = old.get(g.identity.uuid)
                if prev is not None:
                    g.unsupported = prev.unsupported
                    g.control_available = prev.control_available
                    g.control_error = prev.control_error

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                try:
                    self.nvml.nvmlShutdown()
                except self.nvml.NVMLError:
                    pass
                self._initialised = False

    # ------------------------------------------------------------------ reads
    def _gpu(self, index: int) -> _Gpu:
        if not self._initialised:
            raise GpuUninitialized("NVML is not initialised (closed, or re-init failed)")
        try:
            return self._gpus[index]
        except IndexError:
            raise GpuInvalidArgument(f"no GPU at index {index} (this host has {len(self._gpus)})") from None

    def devices(self) -> list[GpuIdentity]:
        with self._lock:
            return [g.identity for g in self._gpus]

    def unsupported_fields(self, index: int) -> frozenset[str]:
        """Readings found unsupported on GPU *index* (never asked for again)."""
        return frozenset(self._gpu(index).unsupported)

    def field_errors(self, index: int) -> dict[str, str]:
        """Transient errors of the last sample of GPU *index*: field → message."""
        return dict(self._gpu(index).field_errors)

    def control_available(self, index: int) -> bool:
        """False once setting the power limit failed with NO_PERMISSION (needs root)."""
        return self._gpu(index).control_available

    def _read(self, gpu: _Gpu, name: str, fn: Callable, *args):
        """One NVML read for reading *name*, or None when dropped (see module doc)."""
        if name in gpu.unsupported:
            return None
        try:
            return fn(*args)
        except self.nvml.NVMLError as exc:
            err = map_nvml_error(exc, f"gpu {gpu.identity.index}: {name}")
        return self._read_failed(gpu, name, err)

    def _read_failed(self, gpu: _Gpu, name: str, err: GpuError):
        if isinstance(err, (GpuLost, GpuUninitialized)):
            if isinstance(err, GpuLost):
                gpu.lost = True
            raise err
        if isinstance(err, _STATIC_READ_ERRORS):
            log.debug("gpu %d: %s dropped for good (%s)", gpu.identity.index, name, err)
            gpu.unsupported.add(name)
        else:
            gpu.field_errors[name] = str(err)
        return None

    def sample(self, index: int) -> dict[str, float | int]:
        """One reading of the ``gpu`` fields of GPU *index*, in metric-contract units.

        Unsupported readings are absent. Raises GpuLost when the GPU has fallen off the bus,
        GpuUninitialized when the driver is gone."""
        n = self.nvml
        with self._lock:
            gpu = self._gpu(index)
            if gpu.lost:
                raise GpuLost(f"gpu {index} is lost; call reinit()", NVML_ERROR_GPU_IS_LOST)
            h = gpu.handle
            gpu.field_errors = {}
            out: dict[str, float | int] = {}

            # 1. the batch: every field-value reading in ONE nvmlDeviceGetFieldValues call
            batch = [r for r in self._field_reads if r.name not in gpu.unsupported]
            if batch and "field_values" not in gpu.unsupported:
                ids = [(r.field_id, r.scope) if r.scope is not None else r.field_id for r in batch]
                values = self._read(gpu, "field_values", n.nvmlDeviceGetFieldValues, h, ids)
                if values is not None:
                    for r, fv in zip(batch, values):
                        ret = int(fv.nvmlReturn)
                        if ret == NVML_SUCCESS:
                            out[r.name] = r.convert(_field_value(fv))
                        else:
                            self._read_failed(gpu, r.name, map_nvml_error(
                                n.NVMLError(ret), f"gpu {index}: field {r.field_id} ({r.name})"))

            # 2. the plain getters (each ~µs, energy ~4 ms on an H100)
            v = self._read(gpu, "power_avg_w", n.nvmlDeviceGetPowerUsage, h)
            if v is not None:
                out["power_avg_w"] = v / 1000.0
                if "power_w" not in out and ({"power_w", "field_values"} & gpu.unsupported
                                             or not any(r.name == "power_w" for r in self._field_reads)):
                    # no instantaneous field (older driver/GPU): the driver's board power is
                    # the best there is (instantaneous on GA100 and older, per NVML's docs)
                    out["power_w"] = v / 1000.0
            v = self._read(gpu, "energy_j", n.nvmlDeviceGetTotalEnergyConsumption, h)
            if v is not None:
                out["energy_j"] = v / 1000.0  # raw counter: mJ → J, resets handled downstream
            v = self._read(gpu, "power_limit_w", n.nvmlDeviceGetEnforcedPowerLimit, h)
            if v is not None:
                out["power_limit_w"] = v / 1000.0
            out.update(gpu.static)
            v = self._read(gpu, "temp_c", n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU)
            if v is not None:
                out["temp_c"] = float(v)
            v = self._read(gpu, "utilization", n.nvmlDeviceGetUtilizationRates, h)
            if v is not None:
                out["util_pct"] = float(v.gpu)
                out["mem_util_pct"] = float(v.memory)
            v = None
            if "memory_v2" not in gpu.unsupported and hasattr(n, "nvmlMemory_v2"):
                # v2 reports "used" without the driver's reservation, as nvidia-smi does
                # (an idle H100: v1 says 480 MiB used, v2 and nvidia-smi 0 MiB [measured])
                v = self._read(gpu, "memory_v2", n.nvmlDeviceGetMemoryInfo, h, n.nvmlMemory_v2)
            if v is None:
                v = self._read(gpu, "memory", n.nvmlDeviceGetMemoryInfo, h)
            if v is not None:
                out["mem_used_bytes"] = int(v.used)
                out["mem_total_bytes"] = int(v.total)
            v = self._read(gpu, "sm_clock_mhz", n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM)
            if v is not None:
                out["sm_clock_mhz"] = float(v)
            v = self._read(gpu, "mem_clock_mhz", n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM)
            if v is not None:
                out["mem_clock_mhz"] = float(v)
            v = self._read(gpu, "throttle_reasons", n.nvmlDeviceGetCurrentClocksEventReasons, h)
            if v is not None:
                out["throttle_reasons"] = int(v)
            v = self._read(gpu, "fan_pct", n.nvmlDeviceGetFanSpeed, h)
            if v is not None:
                out["fan_pct"] = float(v)
            v = self._read(gpu, "pstate", n.nvmlDeviceGetPerformanceState, h)
            if v is not None:
                out["pstate"] = int(v)
            return out

    # ------------------------------------------------------------------ power limit
    def power_constraints(self, index: int) -> PowerConstraints:
        """Settable range and default, in watts (read once from NVML). GpuNotSupported if the
        GPU has no settable power limit."""
        with self._lock:
            gpu = self._gpu(index)
            if gpu.constraints is None:
                raise GpuNotSupported(f"gpu {index}: no power-limit constraints", NVML_ERROR_NOT_SUPPORTED)
            return gpu.constraints

    def power_limit_w(self, index: int) -> float:
        """The enforced power limit in watts (after every limiter, out-of-band caps included)."""
        with self._lock:
            gpu = self._gpu(index)
            return self._call(f"gpu {index}: nvmlDeviceGetEnforcedPowerLimit",
                              self.nvml.nvmlDeviceGetEnforcedPowerLimit, gpu.handle) / 1000.0

    def set_power_limit_w(self, index: int, limit_w: float) -> float:
        """Set GPU *index*'s power limit to *limit_w* watts and return the limit read back (W).

        Uses the v1 ``nvmlDeviceSetPowerManagementLimit`` (mW), which checks its return code
        (the ``_v2`` wrapper in nvidia-ml-py 13.615.71 drops it), then reads the limit back.
        Raises GpuInvalidArgument outside ``power_constraints`` (nothing is sent),
        GpuNoPermission without root (and marks the control unavailable: later calls fail at
        once without touching NVML), GpuError if the read-back differs from the request."""
        n = self.nvml
        with self._lock:
            gpu = self._gpu(index)
            if not gpu.control_available:
                raise GpuNoPermission(f"gpu {index}: power-limit control unavailable ({gpu.control_error})",
                                      NVML_ERROR_NO_PERMISSION)
            c = self.power_constraints(index)
            if not (c.min_w <= limit_w <= c.max_w):
                raise GpuInvalidArgument(
                    f"gpu {index}: power limit {limit_w:g} W outside [{c.min_w:g}, {c.max_w:g}] W",
                    NVML_ERROR_INVALID_ARGUMENT)
            limit_mw = int(round(limit_w * 1000.0))
            try:
                self._call(f"gpu {index}: nvmlDeviceSetPowerManagementLimit",
                           n.nvmlDeviceSetPowerManagementLimit, gpu.handle, limit_mw)
            except GpuNoPermission as exc:
                gpu.control_available = False
                gpu.control_error = str(exc)
                raise
            except GpuLost:
                gpu.lost = True
                raise
            back_mw = self._call(f"gpu {index}: nvmlDeviceGetPowerManagementLimit",
                                 n.nvmlDeviceGetPowerManagementLimit, gpu.handle)
            if abs(back_mw - limit_mw) > 1000:  # NVML may round to its own granularity (<1 W)
                raise GpuError(f"gpu {index}: set power limit {limit_mw} mW but read back {back_mw} mW")
            return back_mw / 1000.0


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
