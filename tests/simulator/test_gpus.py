"""SimulatedGpus behaves like NVML where a caller can tell."""

from __future__ import annotations

import re

import pytest

from dcim.gpu_backend import GpuError, GpuInvalidArgument, GpuLost, GpuNoPermission, GpuNotSupported, PowerConstraints
from dcim.metrics import MEASUREMENTS
from simulator.facility import FacilityTwin
from tests.simulator.conftest import JAN_NS

HOST = "A01-n01"


def test_devices_have_stable_nvml_style_uuids(twin, demo_config):
    devs = twin.gpu_backend(HOST).devices()
    assert [d.index for d in devs] == list(range(8))
    assert all(re.fullmatch(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", d.uuid) for d in devs)
    assert devs[0].name == "NVIDIA H100 80GB HBM3"
    again = FacilityTwin(demo_config, seed=42, start_ns=JAN_NS).gpu_backend(HOST).devices()
    assert [d.uuid for d in devs] == [d.uuid for d in again]
    other_seed = FacilityTwin(demo_config, seed=43, start_ns=JAN_NS).gpu_backend(HOST).devices()
    assert devs[0].uuid != other_seed[0].uuid
    assert len({u for u in twin.uuids}) == 512


def test_sample_has_contract_fields_and_an_mj_energy_counter(twin):
    gpus = twin.gpu_backend(HOST)
    s0 = gpus.sample(0)
    assert set(s0) <= MEASUREMENTS["gpu"].field_names()
    assert "fan_pct" not in s0  # H100 SXM has no fan: absent, never 0
    assert s0["power_limit_min_w"] == 200 and s0["power_limit_max_w"] == 700
    assert s0["power_limit_default_w"] == 700
    twin.step(10.0)
    s1 = gpus.sample(0)
    # Counter in J from an integer mJ counter; it grows by ~power × dt.
    assert (s1["energy_j"] * 1000) == pytest.approx(round(s1["energy_j"] * 1000), abs=1e-6)
    # The power in force over the 10 s step is what was reported before it.
    assert s1["energy_j"] - s0["energy_j"] == pytest.approx(s0["power_avg_w"] * 10, abs=0.01)


def test_power_constraints_invalid_argument_and_read_back(twin):
    gpus = twin.gpu_backend(HOST)
    assert gpus.power_constraints(0) == PowerConstraints(200.0, 700.0, 700.0)
    for bad in (199.9, 700.5, 0, -5):
        with pytest.raises(GpuInvalidArgument):
            gpus.set_power_limit_w(0, bad)
    assert gpus.power_limit_w(0) == 700.0
    assert gpus.set_power_limit_w(0, 450.0004) == 450.0  # whole mW, like NVML
    assert gpus.power_limit_w(0) == 450.0
    assert gpus.sample(0)["power_limit_w"] == 450.0
    assert twin.set_power_limit(HOST, 1, 200) == 200.0
    twin.step(10.0)
    assert gpus.sample(0)["power_avg_w"] <= 450.0
    assert gpus.sample(1)["power_avg_w"] <= 200.0
    assert gpus.reset_power_limit_w(0) == 700.0


def test_lost_gpu_raises_on_every_call(twin):
    gpus = twin.gpu_backend(HOST)
    gpus.lose(3)
    for call in (lambda: gpus.sample(3), lambda: gpus.power_limit_w(3), lambda: gpus.power_constraints(3),
                 lambda: gpus.set_power_limit_w(3, 500), lambda: gpus.uuid(3)):
        with pytest.raises(GpuLost):
            call()
    gpus.sample(2)  # the others keep answering
    assert twin.gpu_backend(HOST) is gpus  # fault state persists per host
    gpus.recover(3)
    gpus.sample(3)


def test_unsupported_fields_fail_next_set_and_no_permission(twin):
    gpus = twin.gpu_backend(HOST)
    gpus.unsupported_fields.add("mem_temp_c")
    assert "mem_temp_c" not in gpus.sample(0)
    gpus.fail_next_set = True
    with pytest.raises(GpuError):
        gpus.set_power_limit_w(0, 500)
    assert gpus.power_limit_w(0) == 700.0  # nothing changed
    assert gpus.set_power_limit_w(0, 500) == 500.0  # only the next one failed
    gpus.fail_next_set = GpuNoPermission("injected")
    with pytest.raises(GpuNoPermission):
        gpus.set_power_limit_w(0, 600)
    gpus.no_permission = True
    with pytest.raises(GpuNoPermission):
        gpus.set_power_limit_w(0, 600)
    gpus.no_permission = False
    gpus.unsupported_fields.add("power_limit")
    with pytest.raises(GpuNotSupported):
        gpus.set_power_limit_w(0, 600)
    assert "power_limit_w" not in gpus.sample(0)
    with pytest.raises(GpuInvalidArgument):
        gpus.sample(8)
