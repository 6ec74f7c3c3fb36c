"""Shared helpers for the fault-injection and security suite (tests/faults/).

Counts in these tests come from two independent sides: what the test generated (it keeps its
own tally) and what the store holds afterwards (queried back), checked against the writer's
own ``stats()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcim.metrics import Point

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z


def gpu_point(i: int, t0: int = T0, n_gpus: int = 64) -> Point:
    """Point number *i* of a generated stream: GPU ``i % n_gpus``, one second per round."""
    g = i % n_gpus
    tags = {"site": "s", "room": "r", "rack": f"R{g // 8:02d}", "host": f"h{g // 8}", "gpu": str(g % 8),
            "uuid": f"GPU-{g:04d}", "model": "NVIDIA H100 80GB HBM3"}
    return Point("gpu", tags, {"power_w": float(300 + i % 400), "mem_used_bytes": i}, t0 + (i // n_gpus) * 10**9 + g)


def dcim_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_dcim(*args: str, env: dict | None = None, timeout: float = 120, cwd: str | Path | None = None):
    return subprocess.run([PY, "-m", "dcim.cli.main", *args], capture_output=True, text=True,
                          env=env or dcim_env(), timeout=timeout, cwd=cwd)


def wait_for(pred, timeout_s: float, what: str, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


@pytest.fixture
def no_traceback():
    def check(text: str):
        assert "Traceback (most recent call last)" not in text, text[-3000:]
    return check
