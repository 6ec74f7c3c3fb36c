"""Benchmark: one NvmlBackend.sample() per GPU against its anchors (run on a GPU machine).

Anchors:
1. the sum of the raw NVML calls that one sample makes, each timed on its own (median of
   N runs each) — our overhead over bare pynvml; target ratio <= 1.2;
2. one ``nvidia-smi --query-gpu=... --format=csv`` process for the same readings.

Read-only: it never calls a setter. Prints a table; ``--json FILE`` also writes the numbers.

    python bench/nvml_sample.py [--runs 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.gpu.nvml_backend import NvmlBackend  # noqa: E402
from dcim.gpu_backend import GpuError  # noqa: E402

SMI_QUERY = ("index,uuid,power.draw,power.draw.instant,enforced.power.limit,power.default_limit,"
             "power.min_limit,power.max_limit,temperature.gpu,temperature.memory,utilization.gpu,"
             "utilization.memory,memory.used,memory.total,clocks.sm,clocks.mem,clocks_event_reasons.active,"
             "ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total,fan.speed,pstate")
SMI_QUERY_FALLBACK = ("index,uuid,power.draw,enforced.power.limit,temperature.gpu,utilization.gpu,"
                      "utilization.memory,memory.used,clocks.sm,clocks.mem,fan.speed,pstate")
FORBIDDEN = ("nvmlDeviceSet", "nvmlDeviceReset", "nvmlDeviceClear", "nvmlSystemSet", "nvmlDeviceGetPcieThroughput")


class Recorder:
    """Wraps the pynvml module: records (name, args) of each call; refuses setters."""

    def __init__(self, nvml):
        self._nvml = nvml
        self.calls: list[tuple[str, tuple]] = []
        self.recording = False

    def __getattr__(self, name):
        attr = getattr(self._nvml, name)
        if not name.startswith("nvml") or not callable(attr):
            return attr
        if name.startswith(FORBIDDEN):
            raise RuntimeError(f"bench is read-only: refused {name}")

        def call(*args):
            if self.recording:
                self.calls.append((name, args))
            return attr(*args)

        return call


def median_us(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t0)
    return statistics.median(ts) / 1000.0


def smi_ms(runs: int) -> tuple[float | None, str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None, "nvidia-smi not found"
    for query in (SMI_QUERY, SMI_QUERY_FALLBACK):
        cmd = [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"]
        probe = subprocess.run(cmd, capture_output=True, text=True)
        if probe.returncode == 0:
            break
    else:
        return None, f"nvidia-smi failed: {probe.stdout.strip() or probe.stderr.strip()}"
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        ts.append(time.perf_counter() - t0)
    fields = len(query.split(","))
    return statistics.median(ts) * 1000.0, f"{fields} fields: {probe.stdout.strip()[:160]}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed runs per measurement (default 200)")
    ap.add_argument("--smi-runs", type=int, default=10, help="nvidia-smi runs (default 10)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    import pynvml

    rec = Recorder(pynvml)
    try:
        backend = NvmlBackend(rec)  # records which raw calls one sample makes
        timed = NvmlBackend(pynvml)  # the same code on the bare module: what we time
    except GpuError as exc:
        print(f"error: NVML unavailable (needs an NVIDIA GPU and driver): {exc}", file=sys.stderr)
        return 1
    report: dict = {"driver": backend.driver_version, "nvml": backend.nvml_version, "gpus": []}
    print(f"driver {backend.driver_version}, NVML {backend.nvml_version}, runs {args.runs}")
    rows = []
    for ident in backend.devices():
        i = ident.index
        for _ in range(5):  # warm-up; also settles the NOT_SUPPORTED memory
            backend.sample(i)
        rec.calls.clear()
        rec.recording = True
        fields = backend.sample(i)
        rec.recording = False
        calls = list(rec.calls)
        for _ in range(5):
            timed.sample(i)
        ours_us = median_us(lambda i=i: timed.sample(i), args.runs)
        per_call = []
        for name, cargs in calls:
            fn = getattr(pynvml, name)
            per_call.append((name, cargs, median_us(lambda fn=fn, cargs=cargs: fn(*cargs), args.runs)))
        raw_sum_us = sum(t for _, _, t in per_call)
        # batched field values vs one call per field id
        fv = [c for c in calls if c[0] == "nvmlDeviceGetFieldValues"]
        batch_note = None
        if fv:
            h, ids = fv[0][1]
            one_each = sum(median_us(lambda fid=fid, h=h: pynvml.nvmlDeviceGetFieldValues(h, [fid]), args.runs)
                           for fid in ids)
            batch_note = (len(ids), next(t for n, _, t in per_call if n == "nvmlDeviceGetFieldValues"), one_each)
        gpu = {"index": i, "uuid": ident.uuid, "name": ident.name, "fields": sorted(fields),
               "unsupported": sorted(backend.unsupported_fields(i)), "sample_us": ours_us,
               "raw_sum_us": raw_sum_us, "ratio": ours_us / raw_sum_us if raw_sum_us else None,
               "calls": [{"call": n, "us": t} for n, _, t in per_call]}
        if batch_note:
            gpu["field_batch"] = {"ids": batch_note[0], "batched_us": batch_note[1], "one_per_call_us": batch_note[2]}
        report["gpus"].append(gpu)
        rows.append(gpu)
        print(f"\nGPU {i} {ident.name} {ident.uuid}")
        print(f"  fields ({len(fields)}): {', '.join(sorted(fields))}")
        print(f"  unsupported: {', '.join(sorted(backend.unsupported_fields(i))) or '-'}")
        print(f"  {'raw NVML call (median)':<52} {'µs':>10}")
        for n, cargs, t in per_call:
            extra = f"[{len(cargs[1])} ids]" if n == "nvmlDeviceGetFieldValues" else ""
            print(f"  {n + extra:<52} {t:>10.1f}")
        if batch_note:
            print(f"  field values: {batch_note[0]} ids in one call {batch_note[1]:.1f} µs vs one call "
                  f"per id {batch_note[2]:.1f} µs")
    smi, smi_note = smi_ms(args.smi_runs)
    report["nvidia_smi_ms"] = smi
    report["nvidia_smi_note"] = smi_note
    print(f"\n{'GPU':<4} {'sample() µs':>12} {'Σ raw calls µs':>15} {'ratio':>7} {'target':>7} "
          f"{'nvidia-smi ms':>14} {'smi/sample':>11}")
    for g in rows:
        vs_smi = f"{smi * 1000.0 / g['sample_us']:.0f}x" if smi else "n/a"
        print(f"{g['index']:<4} {g['sample_us']:>12.1f} {g['raw_sum_us']:>15.1f} {g['ratio']:>7.3f} "
              f"{'<=1.2':>7} {(f'{smi:.1f}' if smi else 'n/a'):>14} {vs_smi:>11}")
    print(f"nvidia-smi: {smi_note}")
    backend.close()
    timed.close()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = all(g["ratio"] is not None and g["ratio"] <= 1.2 for g in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
