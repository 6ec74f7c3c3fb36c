"""The quarterly (or monthly, or any range) energy report: arithmetic in ``energy``, periods in
``periods``, rows from the store in ``build``, CSV here."""

from __future__ import annotations

import csv
from typing import IO

from dcim.report.build import COLUMN_NAMES, COLUMNS, LEVELS, build_report, site_totals
from dcim.report.periods import Period, date_range, month, previous_quarter, quarter

__all__ = ["COLUMNS", "COLUMN_NAMES", "LEVELS", "Period", "build_report", "date_range", "month",
           "previous_quarter", "quarter", "site_totals", "write_csv"]


def write_csv(rows: list[dict], out: IO[str]) -> None:
    """Write rows as CSV with a stable column order and no index column. Open *out* with
    ``encoding="utf-8-sig", newline=""`` so spreadsheets read Korean names correctly."""
    writer = csv.DictWriter(out, fieldnames=COLUMN_NAMES, extrasaction="raise", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
