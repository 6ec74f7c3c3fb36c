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
# The fill's pace is the store's maintain(): every 30 s some writer rolls up the rows written
# since, in one write transaction, at ~5,000 rows/s on a loaded 2-core box. Written faster than
# ~1,000 points/s, that transaction outgrows SQLite's 10 s busy timeout and the live collectors'
# points spool until the fill is done (measured: 15,000 points/s unpaced locked them out for
# minutes). So: at most POINTS_PER_S (a demo day, 28,800 points, every ~30 s), each write followed
# by a pause at least as long as it took, and a store locked by another writer waited out.
POINTS_PER_S = 1_000.0
DUTY_PAUSE_FACTOR = 1.0
LOCKED_RETRY_S = (1.0, 30.0)      # backoff, doubling from the first to the second
LOCKED_GIVE_UP_S = 900.0


class PacedStore:
    """The store as the fill uses it: writes paced to *points_per_s*, StoreUnavailable (a lock)
    retried with backoff."""

    def __init__(self, store, *, points_per_s: float = POINTS_PER_S, sleep=time.sleep, clock=time.monotonic):
        self.store = store
        self.points_per_s = points_per_s
        self.sleep, self.clock = sleep, clock
        self.waited_s = 0.0

    def _patient(self, call):
        from dcim.store.base import StoreUnavailable

        delay_s, started = LOCKED_RETRY_S[0], self.clock()
        while True:
            try:
                return call()
            except StoreUnavailable as exc:
                if self.clock() - started > LOCKED_GIVE_UP_S:
                    raise
                log.info("quarter backfill: the store is busy (%s); again in %.0f s", exc, delay_s)
                self.sleep(delay_s)
                self.waited_s += delay_s
                delay_s = min(2 * delay_s, LOCKED_RETRY_S[1])

    def write(self, points) -> None:
        t0 = self.clock()
        self._patient(lambda: self.store.write(points))
        took_s = self.clock() - t0
        self.sleep(max(DUTY_PAUSE_FACTOR * took_s, len(points) / self.points_per_s - took_s))

    def flush(self) -> None:
        self._patient(self.store.flush)

    def maintain(self) -> None:
        maintain = getattr(self.store, "maintain", None)
        if callable(maintain):
            self._patient(maintain)


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
            paced = PacedStore(store)
            fill_early(cfg, paced, part, progress)  # type: ignore[arg-type]  # the Store calls backfill makes
    except StoreError as exc:
        print(f"error: quarter backfill: the store failed: {exc}", file=sys.stderr)
        return 1
    log.info("quarter backfill: done, %.1f days in %.0f s (%.0f s waiting for a busy store)", part.days,
             time.monotonic() - started, paced.waited_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
