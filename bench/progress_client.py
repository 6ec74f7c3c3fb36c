#!/usr/bin/env python3
"""What dcim.progress.Reporter adds to a training loop: 1e6 steps with and without add().

Three conditions for dcim, each with the reporter posting every 10 ms (a thousand times more often
than its 10 s default, so that posting, failing and backing off all happen inside the loop):

- up: the real optimizer API (waitress, progress checks, a store writer into SQLite) in another
  process on loopback;
- down: a loopback port where nothing listens (connection refused);
- black-holed: a socket that accepts connections and never answers (each post waits out its
  timeout, 0.5 s here).

Printed per condition: the loop's time per step without and with add(), the difference (what the
client adds per step; target <= 50 us, ratio = target / added), the slowest single step with
add() (over a tenth as many steps, each timed), and the reporter's posts and failures meanwhile.
Best of --repeat runs each.
Usage: .venv/bin/python bench/progress_client.py [--steps 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcim.progress import Reporter  # noqa: E402

TARGET_US = 50.0
TOKEN = "bench-client-token"
SERVER = f"""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from optimizer.api import OptimizerApi
from optimizer.desired_state import DesiredState
from optimizer.progress import ProgressBook
tmp = Path(tempfile.mkdtemp(prefix="dcim-bench-client-"))
store = SqliteStore(tmp / "dcim.sqlite")
writer = StoreWriter(store, tmp / "spool")
api = OptimizerApi(DesiredState(), token={TOKEN!r}, progress=ProgressBook("bench"), write_points=writer.write).start()
print(api.port, flush=True)
sys.stdin.read()
"""


def loop(steps: int, reporter: Reporter | None) -> float:
    """Seconds for *steps* steps of a little arithmetic (the "training step"), with add() or not."""
    x = 0.0
    add = reporter.add if reporter is not None else None
    started = time.perf_counter()
    if add is None:
        for i in range(steps):
            x += i * 0.5
    else:
        for i in range(steps):
            x += i * 0.5
            add(1)
    return time.perf_counter() - started


def slowest_single_step(steps: int, reporter: Reporter) -> float:
    worst = 0.0
    for _ in range(steps):
        t = time.perf_counter()
        reporter.add(1)
        worst = max(worst, time.perf_counter() - t)
    return worst


def black_hole() -> tuple[socket.socket, threading.Event]:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    hole.settimeout(0.1)
    stop = threading.Event()
    held = []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(hole.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    return hole, stop


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measure(name: str, url: str, steps: int, repeat: int) -> None:
    base = min(loop(steps, None) for _ in range(repeat))
    runs = []
    for _ in range(repeat):
        reporter = Reporter(url, TOKEN, "bench-job", unit="steps", interval_s=0.01, timeout_s=0.5,
                            max_backoff_s=0.08, exit_deadline_s=0.2)
        took = loop(steps, reporter)
        worst = slowest_single_step(steps // 10, reporter)
        runs.append((took, worst, reporter.posts, reporter.failures))
        reporter.close()
    took, worst, posts, failures = min(runs)
    added_us = max(0.0, (took - base) / steps * 1e6)
    ratio = TARGET_US / added_us if added_us else float("inf")
    print(f"dcim {name:11s} loop {base / steps * 1e6:6.3f} us/step bare, {took / steps * 1e6:6.3f} with add(): "
          f"+{added_us:6.3f} us/step (target <= {TARGET_US:g}, ratio {ratio:7.1f}); slowest add() "
          f"{worst * 1e3:6.2f} ms; {posts} posts, {failures} failed meanwhile")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    hole, stop = black_hole()
    try:
        port = int(server.stdout.readline())
        measure("up", f"http://127.0.0.1:{port}", args.steps, args.repeat)
        measure("down", f"http://127.0.0.1:{closed_port()}", args.steps, args.repeat)
        measure("black-holed", f"http://127.0.0.1:{hole.getsockname()[1]}", args.steps, args.repeat)
    finally:
        stop.set()
        hole.close()
        server.stdin.close()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
