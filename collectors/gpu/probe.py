"""``dcim probe --nvml``: read every local GPU once over NVML and print what came back.

Read-only: nothing is ever written to a GPU. ``--format json`` prints one object per line,
``{"measurement": "gpu", "tags": {...}, "fields": {...}}``; ``--format table`` prints each
GPU's fields with their units from ``dcim.metrics``. With no NVIDIA driver (or no
``pynvml``) it prints one line of error on stderr and returns 1, without a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from dcim.gpu_backend import GpuError
from dcim.metrics import MEASUREMENTS, field_unit


def probe_nvml(fmt: str = "table", *, nvml: Any = None, out: TextIO | None = None,
               err: TextIO | None = None, host_tags: dict[str, str] | None = None) -> int:
    """Sample every local GPU once; print as *fmt* (``table`` or ``json``). Returns the exit
    code: 0 when every GPU answered, 1 when NVML is unavailable or any GPU failed.

    *nvml* is the pynvml module (default: the real one); *out*/*err* default to stdout/stderr."""
    out = out or sys.stdout
    err = err or sys.stderr
    if fmt not in ("table", "json"):
        print(f"error: unknown format {fmt!r} (table or json)", file=err)
        return 2
    try:
        from collectors.gpu.gpu_collector import GpuCollector
        from collectors.gpu.nvml_backend import NvmlBackend

        backend = NvmlBackend(nvml)
    except GpuError as exc:
        print(f"error: NVML unavailable (no NVIDIA driver?): {exc}", file=err)
        return 1
    except Exception as exc:  # a missing libnvidia-ml, a broken binding: one line, no traceback
        print(f"error: NVML unavailable: {type(exc).__name__}: {exc}", file=err)
        return 1
    try:
        collector = GpuCollector(backend, host_tags=host_tags, name="probe")
        results = collector.poll_sync()
        if not results:
            print("error: NVML found no GPU on this host", file=err)
            return 1
        rc = 0
        if fmt == "table":
            print(f"NVML driver {backend.driver_version or '?'}, NVML {backend.nvml_version or '?'}, "
                  f"{len(results)} GPU(s)", file=out)
        for index, res in zip(collector._indices(), results):
            gpu_points = [p for p in res.points if p.measurement == "gpu"]
            if not res.ok:
                rc = 1
                print(f"error: {res.target}: {res.error}", file=err)
            if fmt == "json":
                for p in gpu_points:
                    print(json.dumps({"measurement": p.measurement, "tags": p.tags, "fields": p.fields},
                                     sort_keys=False), file=out)
                continue
            _print_table(out, index, collector.tags(index), gpu_points[0].fields if gpu_points else {},
                         sorted(_unsupported(backend, index)), res.error)
        return rc
    finally:
        backend.close()


def _unsupported(backend: Any, index: int) -> set[str]:
    try:
        return set(backend.unsupported_fields(index))
    except (GpuError, AttributeError):
        return set()


def _print_table(out: TextIO, index: int, tags: dict[str, str], fields: dict[str, Any],
                 unsupported: list[str], error: str | None) -> None:
    print(f"\nGPU {index}  {tags.get('model', '?')}  {tags.get('uuid', '?')}  host {tags.get('host', '?')}",
          file=out)
    order = list(MEASUREMENTS["gpu"].fields)  # the contract's order
    width = max(len(n) for n in order)
    for name in order:
        if name not in fields:
            continue
        value = fields[name]
        unit = field_unit("gpu", name)
        if name == "throttle_reasons":
            text = f"0x{value:x}"
        elif isinstance(value, float):
            text = f"{value:.3f}".rstrip("0").rstrip(".") if name == "energy_j" else f"{value:g}"
        else:
            text = str(value)
        print(f"  {name:<{width}}  {text:>16}  {unit}", file=out)
    if unsupported:
        print(f"  not supported: {', '.join(unsupported)}", file=out)
    if error:
        print(f"  error: {error}", file=out)
