"""The demo's quarter-to-date history written after ``dcim up`` serves, in a process of its own.

``dcim up`` backfills the recent days before it starts anything and leaves the rest of the
quarter (simulator.backfill.EarlyPart) to this process, started at low priority once the
dashboard serves: the hourly writing is ~2.6 s of CPU per day (minutes in a quarter's last
month), which in the dcim up process would hold the GIL against the live services. Progress is
logged; the dashboard and report show the older days as they arrive.

    python -m simulator.quarter_fill --start-ns NS --end-ns NS --seed N [--config FILE]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from simulator.backfill import EarlyPart

log = logging.getLogger("dcim.quarter_fill")

LOG_EVERY_FRACTION = 0.1


def command(part: EarlyPart, config_path: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "simulator.quarter_fill", "--start-ns", str(part.start_ns),
           "--end-ns", str(part.end_ns), "--seed", str(part.seed)]
    return cmd + (["--config", config_path] if config_path else [])


def start(part: EarlyPart, config_path: str | None, *, niceness: int = 10) -> subprocess.Popen:
    """The filling process, at *niceness* (its output goes to this process' stderr)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}

    def in_child() -> None:
        os.nice(niceness)
        # Ctrl-C reaches the whole process group: the parent stops this process itself (SIGTERM),
        # after its own parts, so an interrupted import here never prints a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(command(part, config_path), env=env, stdout=sys.stderr, stderr=sys.stderr,
                            preexec_fn=in_child)  # noqa: PLW1509 - no threads in the child yet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.quarter_fill", description=__doc__.splitlines()[0])
    ap.add_argument("--config", metavar="FILE")
    ap.add_argument("--start-ns", type=int, required=True)
    ap.add_argument("--end-ns", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.end_ns <= args.start_ns:
        print("error: --end-ns must be after --start-ns", file=sys.stderr)
        return 2
    from dcim.config import ConfigError, load_config
    from dcim.store import open_store
    from dcim.store.base import StoreError
    from simulator.backfill import fill_early

    part = EarlyPart(args.start_ns, args.end_ns, args.seed)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    next_log = [LOG_EVERY_FRACTION]

    def progress(done: int, total: int) -> None:
        if total and done / total >= next_log[0]:
            next_log[0] += LOG_EVERY_FRACTION
            log.info("quarter backfill: %.0f of %.0f days before the recent ones (%d %%), %.0f s",
                     part.days * done / total, part.days, 100 * done // total, time.monotonic() - started)

    log.info("quarter backfill: writing %.1f days of hourly history in the background", part.days)
    try:
        with open_store(cfg) as store:
            fill_early(cfg, store, part, progress)
    except StoreError as exc:
        print(f"error: quarter backfill: the store failed: {exc}", file=sys.stderr)
        return 1
    log.info("quarter backfill: done, %.1f days in %.0f s", part.days, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
