"""Against a real NVIDIA GPU (``pytest -m gpu``; skipped, with the reason, where there is none).

READ-ONLY: NVML is wrapped so that any setter, reset or clear call fails the test before it
reaches the driver; no power limit, clock, persistence or MIG setting is ever written.

``DCIM_GPU_SOAK_S`` (default 10) sets how long the collector runs into the SQLite store;
``DCIM_GPU_REPORT`` names a JSON file to write what was seen (fields, counts, timings).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time

import pytest

from collectors.gpu.gpu_collector import GpuCollector
from collectors.gpu.nvml_backend import NvmlBackend
from collectors.gpu.probe import probe_nvml
from dcim.metrics import MEASUREMENTS, validate_point


def _find_gpu() -> tuple[bool, str]:
    try:
        import pynvml
    except ImportError as exc:
        return False, f"pynvml (nvidia-ml-py) not installed: {exc}"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # no driver / no libnvidia-ml
        return False, f"no NVIDIA driver: {exc}"
    try:
        n = pynvml.nvmlDeviceGetCount()
        return (n > 0), f"{n} NVIDIA GPU(s)"
    finally:
        pynvml.nvmlShutdown()


HAVE_GPU, WHY = _find_gpu()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAVE_GPU, reason=f"needs a real NVIDIA GPU: {WHY}")]

FORBIDDEN = ("nvmlDeviceSet", "nvmlDeviceReset", "nvmlDeviceClear", "nvmlSystemSet", "nvmlDeviceGetPcieThroughput",
             "nvmlGpuInstance", "nvmlDeviceCreate")
REPORT: dict = {}


class ReadOnlyNvml:
    """The real pynvml module, minus every call that writes to the GPU (and the blocking PCIe
    throughput read). Records call names."""

    def __init__(self):
        import pynvml

        self._nvml = pynvml
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._nvml, name)
        if not name.startswith("nvml") or not callable(attr):
            return attr
        if name.startswith(FORBIDDEN):
            raise AssertionError(f"read-only test: refused {name}")

        def call(*args):
            self.calls.append(name)
            return attr(*args)

        return call


@pytest.fixture(scope="module")
def backend():
    nvml = ReadOnlyNvml()
    b = NvmlBackend(nvml)
    yield b
    b.close()
    assert not any(c.startswith(FORBIDDEN) for c in nvml.calls)
    path = os.environ.get("DCIM_GPU_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(REPORT, f, indent=2)


def test_real_probe_json():
    out, err = io.StringIO(), io.StringIO()
    rc = probe_nvml("json", nvml=ReadOnlyNvml(), out=out, err=err)
    assert rc == 0, err.getvalue()
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert objs and all(o["measurement"] == "gpu" for o in objs)
    for o in objs:
        assert o["tags"]["uuid"].startswith(("GPU-", "MIG-"))
        assert {"power_w", "temp_c", "util_pct", "mem_used_bytes"} <= set(o["fields"])
    REPORT["probe"] = objs
    print(out.getvalue())


def test_real_sample_fields_units_and_energy_counter(backend):
    idents = backend.devices()
    REPORT["driver"], REPORT["nvml"] = backend.driver_version, backend.nvml_version
    REPORT["devices"] = [vars(i) if hasattr(i, "__dict__") else str(i) for i in idents]
    allowed = MEASUREMENTS["gpu"].field_names()
    for ident in idents:
        s1 = backend.sample(ident.index)
        time.sleep(0.35)  # the energy counter updates ~every 100 ms
        s2 = backend.sample(ident.index)
        assert set(s1) <= allowed
        from dcim.metrics import Point

        validate_point(Point("gpu", {"uuid": ident.uuid}, s2))
        assert 0 < s2["power_w"] < 2000 and 0 < s2["power_avg_w"] < 2000
        assert 0 <= s2["temp_c"] < 120
        assert 0 <= s2["util_pct"] <= 100
        # v2 "used" excludes the driver's reservation: an idle H100 reads 0 B, as nvidia-smi does
        assert 0 <= s2["mem_used_bytes"] <= s2["mem_total_bytes"]
        if "energy_j" in s1:
            assert s2["energy_j"] > s1["energy_j"]  # a raw, monotonic counter
        if "power_limit_min_w" in s2:
            assert s2["power_limit_min_w"] <= s2["power_limit_w"] <= s2["power_limit_max_w"]
            c = backend.power_constraints(ident.index)
            assert c.min_w <= c.default_w <= c.max_w
        REPORT.setdefault("samples", {})[ident.uuid] = {
            "fields": s2, "unsupported": sorted(backend.unsupported_fields(ident.index)),
            "transient_errors": backend.field_errors(ident.index)}
        print(ident, "\n  fields:", sorted(s2), "\n  unsupported:", sorted(backend.unsupported_fields(ident.index)))


def test_real_sample_time(backend):
    for ident in backend.devices():
        for _ in range(5):
            backend.sample(ident.index)
        ts = []
        for _ in range(50):
            t0 = time.perf_counter()
            backend.sample(ident.index)
            ts.append(time.perf_counter() - t0)
        ts.sort()
        REPORT.setdefault("sample_ms", {})[ident.uuid] = {"median": ts[25] * 1e3, "max": ts[-1] * 1e3}
        assert ts[25] < 0.05  # far inside any collection interval (the energy read is ~4 ms)


def _store(tmp_path):
    try:
        from dcim.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / "dcim.sqlite"), "sqlite"
    except Exception as exc:  # the store not there yet: keep the points in a list
        print(f"SqliteStore unavailable ({exc}); using a list")
        return [], "list"


def test_real_collector_into_sqlite(backend, tmp_path):
    soak_s = float(os.environ.get("DCIM_GPU_SOAK_S", "10"))
    interval_s = 1.0
    col = GpuCollector(backend, host_tags={"site": "gpu-test", "room": "r", "rack": "R1"}, interval_s=interval_s)
    store, kind = _store(tmp_path)
    cycles = written = 0
    durations = []
    t_end = time.monotonic() + soak_s
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        results = asyncio.run(col.poll(deadline_s=interval_s))
        cycles += 1
        points = [p for r in results for p in r.points]
        assert all(r.ok for r in results), [r.error for r in results]
        durations += [r.duration_s for r in results]
        if kind == "sqlite":
            store.write(points)
        else:
            store.extend(points)
        written += len(points)
        time.sleep(max(0.0, interval_s - (time.monotonic() - t0)))
    n_gpus = len(backend.devices())
    assert written == cycles * n_gpus
    seen = {}
    if kind == "sqlite":
        store.flush()
        end = time.time_ns() + 1
        series = store.query("gpu", ["power_w"], end - int((soak_s + 60) * 1e9), end, agg="count",
                             group_by=["uuid"])
        stored = sum(int(v or 0) for s in series for v in s.values["power_w"])
        latest = store.latest("gpu")
        for p in latest:
            seen[p.tags["uuid"]] = sorted(p.fields)
            assert {"power_w", "energy_j", "temp_c", "util_pct", "mem_used_bytes", "power_limit_w"} <= set(p.fields)
        store.close()
    else:
        stored = len(store)
        for p in store:
            seen[p.tags["uuid"]] = sorted(p.fields)
    assert stored == written
    durations.sort()
    REPORT["collector"] = {"store": kind, "soak_s": soak_s, "cycles": cycles, "points": written, "stored": stored,
                           "fields": seen, "poll_ms_median": durations[len(durations) // 2] * 1e3,
                           "poll_ms_max": durations[-1] * 1e3}
    print(REPORT["collector"])
