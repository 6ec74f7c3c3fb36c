"""Under load, on a real GPU: do our readings move as they should? (READ-ONLY on the GPU.)

Runs a bf16 matrix-product loop with PyTorch in a child process for ``--load-s`` seconds and
samples GPU 0 through ``NvmlBackend`` every ``--every-s`` seconds, before, during and after.
Prints power_w (instant) vs power_avg_w vs the power derived from the energy counter, util,
SM clock, temperature and the clock-event-reason bits. Not a unit test: a record for the report.

    python tests/gpu/load_check.py [--load-s 20] [--every-s 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collectors.gpu.nvml_backend import NvmlBackend  # noqa: E402

LOAD = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
t_end = time.time() + float(sys.argv[1])
n = 0
while time.time() < t_end:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    n += 20
print(f"load: {n} matmuls, {n * 2 * 8192**3 / float(sys.argv[1]) / 1e12:.0f} TFLOP/s", flush=True)
"""

REASONS = {0x1: "GpuIdle", 0x2: "AppClocks", 0x4: "SwPowerCap", 0x8: "HwSlowdown", 0x10: "SyncBoost",
           0x20: "SwThermal", 0x40: "HwThermal", 0x80: "HwPowerBrake"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load-s", type=float, default=20.0)
    ap.add_argument("--every-s", type=float, default=0.5)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    b = NvmlBackend()
    rows = []
    t0 = time.monotonic()
    prev = None

    def take(phase: str) -> None:
        nonlocal prev
        s = b.sample(0)
        t = time.monotonic() - t0
        e_w = None
        if prev is not None and "energy_j" in s and t > prev[0]:
            e_w = (s["energy_j"] - prev[1]) / (t - prev[0])
        prev = (t, s.get("energy_j", 0.0))
        rows.append({"t_s": round(t, 2), "phase": phase, "energy_power_w": e_w, **s})
        bits = "|".join(v for k, v in REASONS.items() if s.get("throttle_reasons", 0) & k) or "-"
        print(f"{t:6.1f} {phase:<6} inst {s.get('power_w', float('nan')):7.1f} W  "
              f"avg {s.get('power_avg_w', float('nan')):7.1f} W  "
              f"dE/dt {e_w if e_w is not None else float('nan'):7.1f} W  util {s.get('util_pct', -1):5.0f} %  "
              f"sm {s.get('sm_clock_mhz', -1):6.0f} MHz  {s.get('temp_c', -1):4.0f} °C  mem {s.get('mem_temp_c', -1):4.0f} °C  "
              f"p{s.get('pstate', -1)}  {bits}", flush=True)

    for _ in range(4):
        take("idle")
        time.sleep(args.every_s)
    proc = subprocess.Popen([sys.executable, "-c", LOAD, str(args.load_s)])
    while proc.poll() is None:
        take("load")
        time.sleep(args.every_s)
    for _ in range(6):
        take("after")
        time.sleep(args.every_s)
    b.close()
    # steady state: busy samples only (CUDA start-up and the ramp are idle or partial)
    load = [r for r in rows if r["phase"] == "load" and r["energy_power_w"] is not None
            and r.get("util_pct", 0) >= 95]
    if load:
        mean = lambda k: sum(r[k] for r in load) / len(load)  # noqa: E731
        print(f"steady load ({len(load)} samples): mean inst {mean('power_w'):.1f} W, avg {mean('power_avg_w'):.1f} W, "
              f"energy-derived {mean('energy_power_w'):.1f} W")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return proc.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
