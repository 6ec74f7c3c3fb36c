"""A fake of the ``pynvml`` module (nvidia-ml-py) for tests without an NVIDIA GPU.

It follows pynvml's API exactly where ``collectors.gpu.nvml_backend`` uses it: the same
function names and signatures (``tests/collectors/test_nvml_backend.py`` compares them with
``inspect.signature`` against the real module), the real ``NVMLError`` class hierarchy and
``NVML_*`` constants (imported from the installed ``pynvml``, so codes match), the real ctypes
result structures (``c_nvmlFieldValue_t``, ``c_nvmlUtilization_t``, ``c_nvmlMemory_t``,
``nvmlPciInfo_t``) and NVML's units (mW, mJ, °C, MHz, bytes).

Per-device behaviour is configurable through ``FakeDevice``: unsupported calls or field ids,
a GPU that falls off the bus (``lost``), setters refused without root (``no_permission``),
one-off errors. Every call is recorded in ``FakeNvml.calls`` as ``(function name, args)``.

Usage::

    nvml = FakeNvml([FakeDevice(), FakeDevice(fan_pct=None)])
    backend = NvmlBackend(nvml)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pynvml as _real

# The error hierarchy and every constant are the real module's: a code means the same here.
NVMLError = _real.NVMLError
_EXPORTED = {name: getattr(_real, name) for name in dir(_real)
             if name.startswith(("NVML_", "NVMLError", "nvmlMemory_v", "nvmlPowerValue_v"))}
globals().update(_EXPORTED)


def _err(code: int) -> NVMLError:
    return _real.NVMLError(code)  # becomes the matching NVMLError_* subclass, .value == code


@dataclass
class FakeDevice:
    """One fake GPU, in NVML's units. A field set to None is NOT_SUPPORTED on this GPU."""

    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    name: str = "NVIDIA H100 80GB HBM3"
    serial: str | None = "1650000000000"
    pci_bus_id: str = "00000000:18:00.0"
    power_instant_mw: int | None = 312_500
    power_avg_mw: int | None = 305_000
    energy_mj: int | None = 123_456_789_000
    limit_mw: int | None = 700_000
    enforced_limit_mw: int | None = None  # None → same as limit_mw
    default_limit_mw: int | None = 700_000
    min_limit_mw: int = 200_000
    max_limit_mw: int = 700_000
    temp_c: int | None = 41
    mem_temp_c: int | None = 38
    util_gpu_pct: int | None = 87
    util_mem_pct: int | None = 45
    mem_total_bytes: int = 85_520_809_984
    mem_used_bytes: int = 20_000_000_000  # as v2 / nvidia-smi count it
    mem_reserved_bytes: int = 503_316_480  # the driver's reservation (v1 adds it to "used")
    memory_v2: bool = True  # nvmlDeviceGetMemoryInfo(handle, nvmlMemory_v2) supported
    sm_clock_mhz: int | None = 1980
    mem_clock_mhz: int | None = 2619
    clocks_event_reasons: int | None = 0x4
    ecc_sbe_vol: int | None = 0
    ecc_dbe_vol: int | None = 0
    fan_pct: int | None = None  # H100 SXM: NOT_SUPPORTED
    pstate: int | None = 0
    # behaviour
    lost: bool = False  # every call on this GPU → GPU_IS_LOST
    no_permission: bool = False  # setters → NO_PERMISSION (not root)
    unsupported: set[str] = field(default_factory=set)  # function names → NOT_SUPPORTED
    errors: dict[str, int] = field(default_factory=dict)  # function name → NVML code, raised once
    field_errors: dict[int, int] = field(default_factory=dict)  # field id → nvmlReturn (every call)


class _Handle:
    """Stands for ``c_nvmlDevice_t``: an opaque pointer the caller passes back."""

    __slots__ = ("index", "generation")

    def __init__(self, index: int, generation: int):
        self.index = index
        self.generation = generation

    def __repr__(self) -> str:
        return f"<fake nvmlDevice {self.index} gen {self.generation}>"


class FakeNvml:
    """An object that stands in for the ``pynvml`` module (attribute access matches)."""

    NVMLError = _real.NVMLError

    def __init__(self, devices: list[FakeDevice] | None = None, *, driver_loaded: bool = True,
                 init_error: int | None = None, driver_version: str = "580.159.04"):
        self.devices = devices if devices is not None else [FakeDevice()]
        for i, d in enumerate(self.devices):  # distinct UUIDs unless the test set them
            if d.uuid == FakeDevice.uuid:
                d.uuid = f"GPU-{i:08x}-0000-0000-0000-{i:012x}"
        self.driver_loaded = driver_loaded
        self.init_error = init_error
        self.driver_version = driver_version
        self.init_count = 0  # NVML's init is reference counted
        self.generation = 0  # bumps on every nvmlInit from zero: old handles go stale
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str) -> Any:
        if name in _EXPORTED:
            return _EXPORTED[name]
        raise AttributeError(f"fake pynvml has no {name!r} (the backend must not call it)")

    # ------------------------------------------------------------------ plumbing
    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def _enter(self, fn: str, args: tuple, handle: _Handle | None = None) -> FakeDevice | None:
        self.calls.append((fn, args))
        if self.init_count <= 0 and fn not in ("nvmlInit", "nvmlInitWithFlags"):
            raise _err(_real.NVML_ERROR_UNINITIALIZED)
        if handle is None:
            return None
        if not isinstance(handle, _Handle) or handle.generation != self.generation:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)  # stale or foreign handle
        dev = self.devices[handle.index]
        if dev.lost:
            raise _err(_real.NVML_ERROR_GPU_IS_LOST)
        if fn in dev.errors:
            raise _err(dev.errors.pop(fn))
        if fn in dev.unsupported:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return dev

    @staticmethod
    def _value(v: int | None) -> int:
        if v is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return v

    # ------------------------------------------------------------------ library
    def nvmlInit(self):
        self.calls.append(("nvmlInit", ()))
        if not self.driver_loaded:
            raise _err(_real.NVML_ERROR_LIBRARY_NOT_FOUND)
        if self.init_error is not None:
            raise _err(self.init_error)
        if self.init_count == 0:
            self.generation += 1
        self.init_count += 1
        return None

    def nvmlShutdown(self):
        self._enter("nvmlShutdown", ())
        self.init_count -= 1
        return None

    def nvmlSystemGetDriverVersion(self):
        self._enter("nvmlSystemGetDriverVersion", ())
        return self.driver_version  # str (pynvml's @convertStrBytes)

    def nvmlSystemGetNVMLVersion(self):
        self._enter("nvmlSystemGetNVMLVersion", ())
        return b"13.580.159.04"  # bytes: this one is not wrapped in pynvml

    def nvmlDeviceGetCount(self):
        self._enter("nvmlDeviceGetCount", ())
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._enter("nvmlDeviceGetHandleByIndex", (index,))
        if not 0 <= index < len(self.devices):
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        if self.devices[index].lost:
            raise _err(_real.NVML_ERROR_GPU_IS_LOST)
        return _Handle(index, self.generation)

    # ------------------------------------------------------------------ identity
    def nvmlDeviceGetUUID(self, handle):
        return self._enter("nvmlDeviceGetUUID", (handle,), handle).uuid

    def nvmlDeviceGetName(self, handle):
        return self._enter("nvmlDeviceGetName", (handle,), handle).name

    def nvmlDeviceGetSerial(self, handle):
        return self._value(self._enter("nvmlDeviceGetSerial", (handle,), handle).serial)

    def nvmlDeviceGetPciInfo_v3(self, handle):
        dev = self._enter("nvmlDeviceGetPciInfo_v3", (handle,), handle)
        info = _real.nvmlPciInfo_t()
        info.busId = dev.pci_bus_id.encode()
        info.busIdLegacy = dev.pci_bus_id[4:].encode()
        return info

    # ------------------------------------------------------------------ readings
    def nvmlDeviceGetFieldValues(self, handle, fieldIds):
        dev = self._enter("nvmlDeviceGetFieldValues", (handle, list(fieldIds)), handle)
        values = (_real.c_nvmlFieldValue_t * len(fieldIds))()
        for i, fid in enumerate(fieldIds):
            try:
                values[i].fieldId, values[i].scopeId = fid
            except TypeError:
                values[i].fieldId = fid
            fv = values[i]
            raw = self._field(dev, fv.fieldId, fv.scopeId)
            if fv.fieldId in dev.field_errors:
                fv.nvmlReturn = dev.field_errors[fv.fieldId]
            elif raw is None:
                fv.nvmlReturn = _real.NVML_ERROR_NOT_SUPPORTED
            else:
                fv.nvmlReturn = _real.NVML_SUCCESS
                kind, val = raw
                fv.valueType = kind
                if kind == _real.NVML_VALUE_TYPE_UNSIGNED_INT:
                    fv.value.uiVal = val
                elif kind == _real.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
                    fv.value.ullVal = val
                else:
                    fv.value.dVal = val
        return values

    @staticmethod
    def _field(dev: FakeDevice, field_id: int, scope: int) -> tuple[int, int | float] | None:
        u32, u64 = _real.NVML_VALUE_TYPE_UNSIGNED_INT, _real.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
        if field_id == _real.NVML_FI_DEV_POWER_INSTANT and scope == _real.NVML_POWER_SCOPE_GPU:
            return None if dev.power_instant_mw is None else (u32, dev.power_instant_mw)
        if field_id == _real.NVML_FI_DEV_POWER_AVERAGE and scope == _real.NVML_POWER_SCOPE_GPU:
            return None if dev.power_avg_mw is None else (u32, dev.power_avg_mw)
        if field_id == _real.NVML_FI_DEV_MEMORY_TEMP:
            return None if dev.mem_temp_c is None else (u32, dev.mem_temp_c)
        if field_id == _real.NVML_FI_DEV_ECC_SBE_VOL_TOTAL:
            return None if dev.ecc_sbe_vol is None else (u64, dev.ecc_sbe_vol)
        if field_id == _real.NVML_FI_DEV_ECC_DBE_VOL_TOTAL:
            return None if dev.ecc_dbe_vol is None else (u64, dev.ecc_dbe_vol)
        if field_id == _real.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
            return None if dev.energy_mj is None else (u64, dev.energy_mj)
        return None

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._value(self._enter("nvmlDeviceGetPowerUsage", (handle,), handle).power_avg_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self._value(self._enter("nvmlDeviceGetTotalEnergyConsumption", (handle,), handle).energy_mj)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        dev = self._enter("nvmlDeviceGetEnforcedPowerLimit", (handle,), handle)
        return self._value(dev.enforced_limit_mw if dev.enforced_limit_mw is not None else dev.limit_mw)

    def nvmlDeviceGetPowerManagementLimit(self, handle):
        return self._value(self._enter("nvmlDeviceGetPowerManagementLimit", (handle,), handle).limit_mw)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle):
        return self._value(self._enter("nvmlDeviceGetPowerManagementDefaultLimit", (handle,), handle)
                           .default_limit_mw)

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle):
        dev = self._enter("nvmlDeviceGetPowerManagementLimitConstraints", (handle,), handle)
        if dev.limit_mw is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return [dev.min_limit_mw, dev.max_limit_mw]

    def nvmlDeviceGetTemperature(self, handle, sensor):
        dev = self._enter("nvmlDeviceGetTemperature", (handle, sensor), handle)
        if sensor != _real.NVML_TEMPERATURE_GPU:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return self._value(dev.temp_c)

    def nvmlDeviceGetUtilizationRates(self, handle):
        dev = self._enter("nvmlDeviceGetUtilizationRates", (handle,), handle)
        if dev.util_gpu_pct is None or dev.util_mem_pct is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        u = _real.c_nvmlUtilization_t()
        u.gpu, u.memory = dev.util_gpu_pct, dev.util_mem_pct
        return u

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        dev = self._enter("nvmlDeviceGetMemoryInfo", (handle, version), handle)
        if version:
            if version != _real.nvmlMemory_v2 or not dev.memory_v2:
                raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
            m = _real.c_nvmlMemory_v2_t()
            m.version = version
            m.reserved = dev.mem_reserved_bytes
            m.total, m.used = dev.mem_total_bytes, dev.mem_used_bytes
            m.free = dev.mem_total_bytes - dev.mem_reserved_bytes - dev.mem_used_bytes
            return m
        m = _real.c_nvmlMemory_t()  # v1: "used" includes the driver's reservation
        m.total, m.used = dev.mem_total_bytes, dev.mem_used_bytes + dev.mem_reserved_bytes
        m.free = dev.mem_total_bytes - m.used
        return m

    def nvmlDeviceGetClockInfo(self, handle, type):  # noqa: A002 - pynvml's parameter name
        dev = self._enter("nvmlDeviceGetClockInfo", (handle, type), handle)
        if type == _real.NVML_CLOCK_SM:
            return self._value(dev.sm_clock_mhz)
        if type == _real.NVML_CLOCK_MEM:
            return self._value(dev.mem_clock_mhz)
        raise _err(_real.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._value(self._enter("nvmlDeviceGetCurrentClocksEventReasons", (handle,), handle)
                           .clocks_event_reasons)

    def nvmlDeviceGetFanSpeed(self, handle):
        return self._value(self._enter("nvmlDeviceGetFanSpeed", (handle,), handle).fan_pct)

    def nvmlDeviceGetPerformanceState(self, handle):
        return self._value(self._enter("nvmlDeviceGetPerformanceState", (handle,), handle).pstate)

    def nvmlDeviceGetPcieThroughput(self, device, counter):
        """Present (as in pynvml) so a call would be recorded; the backend must never make it."""
        self._enter("nvmlDeviceGetPcieThroughput", (device, counter), device)
        return 0

    # ------------------------------------------------------------------ control
    def nvmlDeviceSetPowerManagementLimit(self, handle, limit):
        dev = self._enter("nvmlDeviceSetPowerManagementLimit", (handle, limit), handle)
        if dev.no_permission:
            raise _err(_real.NVML_ERROR_NO_PERMISSION)
        if dev.limit_mw is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        if not dev.min_limit_mw <= limit <= dev.max_limit_mw:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        dev.limit_mw = int(limit)
        return None


# The functions of pynvml this fake stands in for (checked against the real signatures).
FAKED_FUNCTIONS = tuple(name for name in vars(FakeNvml) if name.startswith("nvml"))
