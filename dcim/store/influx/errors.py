"""What InfluxDB's refusals mean for a writer: the server's state (spool, retry), a batch too
large (split it), or points dropped (count them)."""

from __future__ import annotations

import logging
import re

from dcim.store.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

class InfluxRefused(StoreError):
    """A 4xx answer; *status* is its HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class StoreRefusing(StoreUnavailable):
    """The server is up but takes no writes for a reason of its own (401 authentication,
    403 permission, 404 no such database): an operator must act; the points wait in the spool."""

    operator_action = True


class WriteTooLarge(StoreError):
    """413: the body is larger than the server takes (``max-body-size``). Split and retry."""

    too_large = True


class PartialWrite(StoreError):
    """400 ``partial write``: the server stored the batch except *rejected_points* of it (None
    when the server did not say how many)."""

    def __init__(self, message: str, rejected_points: int | None):
        super().__init__(message)
        self.rejected_points = rejected_points


_DROPPED_RE = re.compile(r"dropped=(\d+)")


def write_error(exc: InfluxRefused) -> StoreError:
    """What a 4xx answer to /write means for the points (see the module docstring)."""
    text = str(exc)
    if exc.status in (401, 403, 404):
        what = {401: "authentication failed (check [store.influxdb] auth, username, password, token)",
                403: "permission denied (the user or token may not write to this database)",
                404: "database not found (create it, or set [store.influxdb] create_database = true)"}[exc.status]
        return StoreRefusing(f"{text}; {what}; points wait in the spool until it accepts them")
    if exc.status == 413:
        return WriteTooLarge(text)
    if "partial write" in text:
        found = _DROPPED_RE.search(text)
        return PartialWrite(text, int(found.group(1)) if found else None)
    return exc

