"""The quarterly energy report, produced by the optimizer daemon's scheduler.

On the first day of each quarter (01:00 in the site's time zone) the previous quarter's report
is written to ``[optimizer] report_dir`` as ``energy-<site>-<quarter>-by-<level>.csv``. The job
is idempotent: a report that exists is left alone, so a restart, a second daemon or a catch-up
run at start never rewrites what accounting may already have taken.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from dcim.config import Config
from dcim.report import build_report, previous_quarter, write_csv

log = logging.getLogger(__name__)

LEVELS = ("rack", "tenant")


def report_paths(config: Config, quarter_label: str) -> dict[str, Path]:
    folder = Path(config.optimizer.report_dir)
    return {by: folder / f"energy-{config.site.name}-{quarter_label}-by-{by}.csv" for by in LEVELS}


def write_quarterly_reports(config: Config, store, now: datetime | None = None) -> list[Path]:
    """Write the last complete quarter's reports that do not exist yet; returns what it wrote."""
    period = previous_quarter(now or datetime.now(UTC), config.site.timezone)
    written = []
    for by, path in report_paths(config, period.label).items():
        if path.exists():
            continue
        rows = build_report(store, config, period, by=by)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary file and rename, so nobody ever reads half a report.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".csv")
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as f:
            write_csv(rows, f)
        os.replace(tmp, path)
        log.info("wrote the %s energy report by %s: %s", period.label, by, path)
        written.append(path)
    return written


def schedule(scheduler, config: Config, open_store) -> None:
    """Add the quarterly job to an APScheduler 3.x scheduler, and catch up once at start.
    *open_store()* gives the job its own store handle (jobs run on the scheduler's threads)."""
    def job() -> None:
        try:
            with open_store() as store:
                write_quarterly_reports(config, store)
        except Exception:  # the daemon's control loop must not suffer from a report failure
            log.exception("quarterly energy report failed")

    # One job whose first run is now (the catch-up at start), then the cron: a separate one-off
    # "date" job raced with the scheduler's removal of it when the daemon stopped right after
    # starting (JobLookupError tracebacks in the log).
    scheduler.add_job(job, "cron", month="1,4,7,10", day=1, hour=1, timezone=config.site.timezone,
                      id="quarterly-report", coalesce=True, max_instances=1, misfire_grace_time=86400,
                      next_run_time=datetime.now(UTC))
