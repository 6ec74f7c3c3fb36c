"""dcim report: the energy report (quarter, month or date range) as CSV."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dcim.cli.options import add_config_option, config_from
from dcim.cli.store_errors import one_line
from dcim.report import (
    LEVELS,
    ReportPathError,
    build_report,
    check_output_path,
    date_range,
    month,
    quarter,
    write_csv,
    write_csv_file,
)
from dcim.store import StoreError, open_store

NAME = "report"
HELP = "write the energy report (kWh, PUE, peak demand, CO2e, chargeback) as CSV"
DESCRIPTION = ("Energy by site/room/rack/tenant/GPU/job for a quarter, month or date range, in the site's time zone, "
               "from the store: counters where devices have them (reset-aware), else integrated power, with "
               "the method and data coverage stated. Columns are documented in the README.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--quarter", metavar="YYYYQN", help="calendar quarter, e.g. 2026Q3")
    when.add_argument("--month", metavar="YYYY-MM", help="calendar month, e.g. 2026-07")
    when.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (with --to)")
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="day after the last day (with --from)")
    parser.add_argument("--by", choices=LEVELS, default="rack",
                        help="one row per this entity (default rack); job: HPC accounting rows, and the tenant "
                             "level bills by job where a workload source ran")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    tz = cfg.site.timezone
    try:
        if args.quarter:
            period = quarter(args.quarter, tz)
        elif args.month:
            period = month(args.month, tz)
        else:
            if not args.date_to:
                print("error: --from needs --to", file=sys.stderr)
                return 2
            period = date_range(args.date_from, args.date_to, tz)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = Path(args.output) if args.output else None
    if path is not None:
        # refuse a bad -o before spending minutes on the report
        try:
            check_output_path(path)
        except ReportPathError as exc:
            print(f"error: -o: {exc}", file=sys.stderr)
            return 2
    started = time.monotonic()

    def progress(step: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:6.1f} s] {step}…", file=sys.stderr)

    try:
        with open_store(cfg, readonly=True) as store:
            rows = build_report(store, cfg, period, by=args.by, progress=progress)
    except StoreError as exc:  # no store yet, or it is down: say which, no traceback
        print(f"error: cannot read the store: {one_line(exc)}", file=sys.stderr)
        return 1
    if path is None:
        write_csv(rows, sys.stdout)
        return 0
    try:
        write_csv_file(rows, path)
    except ReportPathError as exc:
        print(f"error: -o: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: -o: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"wrote {len(rows)} rows for {period.label} ({period.start:%Y-%m-%d %H:%M %Z} to "
              f"{period.end:%Y-%m-%d %H:%M %Z}) to {path}", file=sys.stderr)
    return 0
