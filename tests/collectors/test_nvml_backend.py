"""NvmlBackend over the pynvml fake: field mapping and units, error classes, power limits."""

from __future__ import annotations

import inspect
import io
import json

import pynvml
import pytest

from collectors.gpu.nvml_backend import NvmlBackend, map_nvml_error
from collectors.gpu.probe import probe_nvml
from dcim.gpu_backend import (
    GpuError,
    GpuInvalidArgument,
    GpuLost,
    GpuNoPermission,
    GpuNotSupported,
    GpuUninitialized,
)
from dcim.metrics import MEASUREMENTS, Point, validate_point
from tests.fakes.fake_pynvml import FAKED_FUNCTIONS, FakeDevice, FakeNvml

GPU_FIELDS = MEASUREMENTS["gpu"].field_names()


def make(*devices: FakeDevice, **kw) -> tuple[FakeNvml, NvmlBackend]:
    nvml = FakeNvml(list(devices) or [FakeDevice()], **kw)
    return nvml, NvmlBackend(nvml)


# --------------------------------------------------------------------------- the fake itself
@pytest.mark.parametrize("name", FAKED_FUNCTIONS)
def test_fake_matches_real_pynvml_signatures(name):
    real = getattr(pynvml, name)
    fake = getattr(FakeNvml, name)
    real_params = list(inspect.signature(real).parameters.values())
    fake_params = list(inspect.signature(fake).parameters.values())[1:]  # drop self
    assert [(p.name, p.default) for p in fake_params] == [(p.name, p.default) for p in real_params]


def test_fake_shares_real_error_classes_and_codes():
    nvml = FakeNvml([FakeDevice(lost=True)])
    nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_GpuIsLost) as e:
        nvml.nvmlDeviceGetHandleByIndex(0)
    assert e.value.value == pynvml.NVML_ERROR_GPU_IS_LOST == 15
    assert nvml.NVML_FI_DEV_POWER_INSTANT == pynvml.NVML_FI_DEV_POWER_INSTANT == 186


# --------------------------------------------------------------------------- sampling
def test_sample_maps_every_field_with_si_units():
    dev = FakeDevice(power_instant_mw=312_500, power_avg_mw=305_250, energy_mj=123_456_789_012,
                     limit_mw=650_000, default_limit_mw=700_000, min_limit_mw=200_000, max_limit_mw=700_000,
                     temp_c=41, mem_temp_c=38, util_gpu_pct=87, util_mem_pct=45,
                     mem_total_bytes=85_520_809_984, mem_used_bytes=20_000_000_000, sm_clock_mhz=1980,
                     mem_clock_mhz=2619, clocks_event_reasons=0x24, ecc_sbe_vol=7, ecc_dbe_vol=1,
                     fan_pct=55, pstate=2)
    _, b = make(dev)
    s = b.sample(0)
    assert s == {
        "power_w": 312.5, "power_avg_w": 305.25, "energy_j": 123_456_789.012,
        "power_limit_w": 650.0, "power_limit_default_w": 700.0, "power_limit_min_w": 200.0,
        "power_limit_max_w": 700.0, "temp_c": 41.0, "mem_temp_c": 38.0, "util_pct": 87.0,
        "mem_util_pct": 45.0, "mem_used_bytes": 20_000_000_000, "mem_total_bytes": 85_520_809_984,
        "sm_clock_mhz": 1980.0, "mem_clock_mhz": 2619.0, "throttle_reasons": 0x24,
        "ecc_corrected": 7, "ecc_uncorrected": 1, "fan_pct": 55.0, "pstate": 2,
    }
    assert set(s) <= GPU_FIELDS
    validate_point(Point("gpu", {"host": "h", "gpu": "0", "uuid": "u"}, s))  # kinds match the contract


def test_field_values_batched_into_one_call_with_gpu_power_scope():
    nvml, b = make()
    nvml.calls.clear()
    b.sample(0)
    fv_calls = [args for name, args in nvml.calls if name == "nvmlDeviceGetFieldValues"]
    assert len(fv_calls) == 1
    ids = fv_calls[0][1]
    assert (pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_POWER_SCOPE_GPU) in ids
    assert {pynvml.NVML_FI_DEV_MEMORY_TEMP, pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL,
            pynvml.NVML_FI_DEV_ECC_DBE_VOL_TOTAL} <= set(ids)
    # static limits are read once at init, not per sample
    assert "nvmlDeviceGetPowerManagementLimitConstraints" not in nvml.call_names()
    assert "nvmlDeviceGetPowerManagementDefaultLimit" not in nvml.call_names()


def test_pcie_throughput_never_called():
    nvml, b = make(FakeDevice(), FakeDevice())
    for _ in range(3):
        for i in range(2):
            b.sample(i)
    b.power_limit_w(0)
    b.set_power_limit_w(0, 400)
    assert "nvmlDeviceGetPcieThroughput" not in nvml.call_names()
    assert not any("Pcie" in n for n in nvml.call_names())


def test_not_supported_getter_is_absent_and_never_retried():
    nvml, b = make(FakeDevice(fan_pct=None, unsupported={"nvmlDeviceGetTotalEnergyConsumption"}))
    s = b.sample(0)
    assert "fan_pct" not in s and "energy_j" not in s  # absent, never 0
    assert {"fan_pct", "energy_j"} <= b.unsupported_fields(0)
    nvml.calls.clear()
    s2 = b.sample(0)
    assert "fan_pct" not in s2 and "energy_j" not in s2
    assert "nvmlDeviceGetFanSpeed" not in nvml.call_names()
    assert "nvmlDeviceGetTotalEnergyConsumption" not in nvml.call_names()


def test_not_supported_field_value_dropped_from_the_batch():
    nvml, b = make(FakeDevice(mem_temp_c=None, ecc_sbe_vol=None, ecc_dbe_vol=None))
    s = b.sample(0)
    assert not {"mem_temp_c", "ecc_corrected", "ecc_uncorrected"} & set(s)
    assert s["power_w"] == 312.5
    nvml.calls.clear()
    b.sample(0)
    (ids,) = [a[1] for n, a in nvml.calls if n == "nvmlDeviceGetFieldValues"]
    assert ids == [(pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_POWER_SCOPE_GPU)]


def test_memory_used_as_nvidia_smi_counts_it_v1_fallback():
    nvml, b = make(FakeDevice(mem_used_bytes=1_000, mem_reserved_bytes=500))
    assert b.sample(0)["mem_used_bytes"] == 1_000  # v2: reservation not counted as used
    nvml, b = make(FakeDevice(mem_used_bytes=1_000, mem_reserved_bytes=500, memory_v2=False))
    assert b.sample(0)["mem_used_bytes"] == 1_500  # older driver: v1, once
    nvml.calls.clear()
    b.sample(0)
    assert [a[1] for n, a in nvml.calls if n == "nvmlDeviceGetMemoryInfo"] == [None]


def test_no_instant_power_falls_back_to_driver_power():
    _, b = make(FakeDevice(power_instant_mw=None, power_avg_mw=250_000))
    s = b.sample(0)
    assert s["power_w"] == 250.0 and s["power_avg_w"] == 250.0


def test_transient_field_error_drops_it_this_sample_only():
    nvml, b = make(FakeDevice(errors={"nvmlDeviceGetTemperature": pynvml.NVML_ERROR_UNKNOWN},
                              field_errors={pynvml.NVML_FI_DEV_MEMORY_TEMP: pynvml.NVML_ERROR_TIMEOUT}))
    s = b.sample(0)
    assert "temp_c" not in s and "mem_temp_c" not in s
    assert set(b.field_errors(0)) == {"temp_c", "mem_temp_c"}
    nvml.devices[0].field_errors.clear()
    s = b.sample(0)
    assert s["temp_c"] == 41.0 and s["mem_temp_c"] == 38.0 and b.field_errors(0) == {}


def test_lost_gpu_raises_gpu_lost_then_reinit_recovers_by_uuid():
    nvml, b = make(FakeDevice(), FakeDevice(fan_pct=None))
    b.sample(1)
    nvml.devices[1].lost = True
    with pytest.raises(GpuLost):
        b.sample(1)
    assert b.sample(0)["power_w"] == 312.5  # the other GPU keeps going
    b.reinit()  # still gone: re-init succeeds for the others, this one stays lost
    assert b.sample(0)["power_w"] == 312.5
    with pytest.raises(GpuLost):
        b.sample(1)
    assert b.devices()[1].uuid == nvml.devices[1].uuid  # identity kept while lost
    nvml.devices[1].lost = False
    b.reinit()
    assert b.sample(1)["power_w"] == 312.5
    assert "fan_pct" in b.unsupported_fields(1)  # memory kept across re-init
    assert nvml.init_count == 1  # init/shutdown balanced


@pytest.mark.parametrize("code,exc", [
    (pynvml.NVML_ERROR_NOT_SUPPORTED, GpuNotSupported),
    (pynvml.NVML_ERROR_GPU_IS_LOST, GpuLost),
    (pynvml.NVML_ERROR_NO_PERMISSION, GpuNoPermission),
    (pynvml.NVML_ERROR_INVALID_ARGUMENT, GpuInvalidArgument),
    (pynvml.NVML_ERROR_UNINITIALIZED, GpuUninitialized),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, GpuUninitialized),
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, GpuUninitialized),
    (pynvml.NVML_ERROR_UNKNOWN, GpuError),
    (pynvml.NVML_ERROR_TIMEOUT, GpuError),
])
def test_error_mapping_by_return_code(code, exc):
    mapped = map_nvml_error(pynvml.NVMLError(code), "x")
    assert type(mapped) is exc and mapped.code == code


def test_no_driver_raises_uninitialized():
    with pytest.raises(GpuUninitialized):
        NvmlBackend(FakeNvml(driver_loaded=False))
    with pytest.raises(GpuUninitialized):
        NvmlBackend(FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED))


# --------------------------------------------------------------------------- power limits
def test_constraints_and_limit_in_watts():
    _, b = make(FakeDevice(limit_mw=500_000, enforced_limit_mw=450_000))
    c = b.power_constraints(0)
    assert (c.min_w, c.max_w, c.default_w) == (200.0, 700.0, 700.0)
    assert b.power_limit_w(0) == 450.0  # the enforced one


def test_set_power_limit_sends_mw_and_reads_back():
    nvml, b = make()
    assert b.set_power_limit_w(0, 412.5) == 412.5
    assert nvml.calls[-2][0] == "nvmlDeviceSetPowerManagementLimit"
    assert nvml.calls[-2][1][1] == 412_500
    assert nvml.calls[-1][0] == "nvmlDeviceGetPowerManagementLimit"  # read back
    assert nvml.devices[0].limit_mw == 412_500
    assert b.sample(0)["power_limit_w"] == 412.5
    assert b.set_power_limit_w(0, 200) == 200.0 and b.set_power_limit_w(0, 700) == 700.0  # bounds inclusive


@pytest.mark.parametrize("limit_w", [199.999, 700.5, 0, -5])
def test_set_power_limit_outside_constraints_sends_nothing(limit_w):
    nvml, b = make()
    nvml.calls.clear()
    with pytest.raises(GpuInvalidArgument):
        b.set_power_limit_w(0, limit_w)
    assert "nvmlDeviceSetPowerManagementLimit" not in nvml.call_names()
    assert nvml.devices[0].limit_mw == 700_000


def test_set_power_limit_without_root_marks_control_unavailable():
    nvml, b = make(FakeDevice(no_permission=True))
    assert b.control_available(0)
    with pytest.raises(GpuNoPermission):
        b.set_power_limit_w(0, 400)
    assert not b.control_available(0)
    nvml.calls.clear()
    with pytest.raises(GpuNoPermission):
        b.set_power_limit_w(0, 400)
    assert nvml.calls == []  # not retried against NVML
    assert "power_limit_w" in b.sample(0)  # reads still work


def test_set_power_limit_read_back_mismatch_is_an_error():
    class Sticky(FakeNvml):  # a driver that accepts the call but keeps the old limit
        def nvmlDeviceSetPowerManagementLimit(self, handle, limit):
            self._enter("nvmlDeviceSetPowerManagementLimit", (handle, limit), handle)

    b = NvmlBackend(Sticky())
    with pytest.raises(GpuError, match="read back"):
        b.set_power_limit_w(0, 400)


def test_unsupported_power_limit():
    _, b = make(FakeDevice(limit_mw=None, default_limit_mw=None, enforced_limit_mw=None))
    with pytest.raises(GpuNotSupported):
        b.power_constraints(0)
    s = b.sample(0)
    assert not {"power_limit_w", "power_limit_min_w", "power_limit_default_w"} & set(s)


# --------------------------------------------------------------------------- probe
def test_probe_json_one_object_per_gpu():
    out, err = io.StringIO(), io.StringIO()
    rc = probe_nvml("json", nvml=FakeNvml([FakeDevice(), FakeDevice()]), out=out, err=err,
                    host_tags={"host": "node01"})
    assert rc == 0, err.getvalue()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == 2
    for i, obj in enumerate(lines):
        assert set(obj) == {"measurement", "tags", "fields"}
        assert obj["measurement"] == "gpu"
        assert obj["tags"]["gpu"] == str(i) and obj["tags"]["host"] == "node01"
        assert obj["tags"]["uuid"].startswith("GPU-") and obj["tags"]["model"] == "NVIDIA H100 80GB HBM3"
        assert obj["fields"]["power_w"] == 312.5 and "fan_pct" not in obj["fields"]


def test_probe_table_shows_units():
    out = io.StringIO()
    assert probe_nvml("table", nvml=FakeNvml(), out=out, err=io.StringIO()) == 0
    text = out.getvalue()
    assert "580.159.04" in text
    assert any(line.split()[:1] == ["power_w"] and line.rstrip().endswith("W") for line in text.splitlines())
    assert "°C" in text and "not supported: fan_pct" in text


def test_probe_without_driver_one_line_exit_1():
    out, err = io.StringIO(), io.StringIO()
    assert probe_nvml("json", nvml=FakeNvml(driver_loaded=False), out=out, err=err) == 1
    assert out.getvalue() == ""
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in lines[0]
