"""dcim latest: the latest value of each series of a measurement, from the configured store."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from dcim.cli.options import add_config_option, config_from, parse_where
from dcim.cli.store_errors import one_line
from dcim.metrics import MEASUREMENTS
from dcim.store import StoreError, open_store

NAME = "latest"
HELP = "print the latest value of each series of a measurement"
DESCRIPTION = ("Read the newest value of every field of every series of MEASUREMENT from the store the "
               "config names. JSON output is one object per line: "
               '{"measurement": ..., "tags": {...}, "fields": {...}, "time": ISO-8601}.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("measurement", choices=sorted(MEASUREMENTS), metavar="MEASUREMENT",
                        help=f"one of: {', '.join(sorted(MEASUREMENTS))}")
    parser.add_argument("--where", action="append", metavar="TAG=VALUE", help="keep series with this tag value (repeatable)")
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output format (default table)")


def run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    where: dict[str, str | Sequence[str]] = {**parse_where(args.where)}  # the store's type: a tag or its choices
    spec = MEASUREMENTS[args.measurement]
    unknown = sorted(set(where) - set(spec.tags))
    if unknown:
        print(f"error: --where: {args.measurement} has no tag {unknown[0]!r} (tags: {', '.join(spec.tags)})", file=sys.stderr)
        return 2
    try:
        with open_store(cfg, readonly=True) as store:
            points = store.latest(args.measurement, where=where or None)
    except StoreError as exc:  # the store down or unreadable: say which and why, no traceback
        print(f"error: cannot read {args.measurement} from the store: {one_line(exc)}", file=sys.stderr)
        return 1
    points.sort(key=lambda p: tuple(p.tags.get(t, "") for t in spec.tags))
    if args.format == "json":
        for p in points:
            print(json.dumps(p.to_json(), ensure_ascii=False))
        return 0
    fields = [f for f in spec.fields if any(f in p.fields for p in points)]
    header = ["time"] + list(spec.tags) + fields
    rows = []
    for p in points:
        ts = datetime.fromtimestamp(p.time_ns / 1e9, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        rows.append([ts] + [p.tags.get(t, "") for t in spec.tags] + [_fmt(p.fields.get(f)) for f in fields])
    if args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(header)
        for p, row in zip(points, rows):
            w.writerow(row[:1] + [_csv_cell(p.tags.get(t, "")) for t in spec.tags]
                       + [_csv_cell(p.fields.get(f)) for f in fields])
        return 0
    if not rows:
        print(f"no {args.measurement} data in the store")
        return 0
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _csv_cell(value) -> str:
    """A CSV cell: tags and text fields come from devices and agents, so text that a spreadsheet
    would read as a formula is neutralised; numbers stay numbers (-3.2 is not a formula)."""
    from dcim.report import neutralise_cell

    return _fmt(value) if isinstance(value, int | float) else neutralise_cell(_fmt(value))


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
