"""The quarterly (or monthly, or any range) energy report: arithmetic in ``energy``, periods in
``periods``, rows from the store in ``build``, CSV here."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import IO

from dcim.report.build import COLUMN_NAMES, COLUMNS, LEVELS, build_report, site_totals
from dcim.report.periods import Period, date_range, month, previous_quarter, quarter

__all__ = ["COLUMNS", "COLUMN_NAMES", "LEVELS", "Period", "build_report", "date_range", "month",
           "ReportPathError", "check_output_path", "neutralise_cell", "previous_quarter", "quarter", "site_totals",
           "write_csv", "write_csv_file"]


# A spreadsheet reads a cell that starts with one of these as a formula (OWASP "CSV injection"):
# "=HYPERLINK(...)" in a host name from the store would run when the energy manager opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    """A string cell that a spreadsheet would read as a formula, prefixed with a single quote so it
    shows as text. Numbers pass unchanged: -3.2 in a numeric column must stay a number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(rows: list[dict], out: IO[str]) -> None:
    """Write rows as CSV with a stable column order and no index column. Open *out* with
    ``encoding="utf-8-sig", newline=""`` so spreadsheets read Korean names correctly.

    Every string cell is neutralised (:func:`neutralise_cell`) and quoted; numbers stay bare so
    spreadsheets read them as numbers. The header (fixed column names) is written plain."""
    header = csv.writer(out, lineterminator="\r\n")
    header.writerow(COLUMN_NAMES)
    writer = csv.DictWriter(out, fieldnames=COLUMN_NAMES, extrasaction="raise", lineterminator="\r\n",
                            quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        writer.writerow({key: neutralise_cell(value) for key, value in row.items()})


class ReportPathError(Exception):
    """An output path the report will not write: a directory, or a symbolic link."""


def check_output_path(path: Path) -> None:
    """Refuse an output path that is a directory or a symbolic link (writing through a link would
    overwrite whatever it points at). Checked before the report is built, and again when written."""
    if path.is_symlink():
        raise ReportPathError(f"{path} is a symbolic link; refusing to write through it (give the real path)")
    if path.is_dir():
        raise ReportPathError(f"{path} is a directory; give a file name such as {path / 'report.csv'}")


def write_csv_file(rows: list[dict], path: Path) -> None:
    """Write the CSV to *path* atomically: a temporary file in the same directory, renamed over
    *path*, so a reader never sees half a report. The rename replaces a link put there meanwhile
    instead of following it. Mode 0666 less the umask, as an ordinary file would get."""
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as f:
            write_csv(rows, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
