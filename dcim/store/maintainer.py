"""Store upkeep on a timer, for a store that does not keep it up by itself.

SQLite rolls up inside its own write(). InfluxDB's daily rollups (``dcim.store.influx.rollup``)
are computed by whichever one process runs this: ``dcim collect`` does, unless it is a shard
other than 0 (several processes rolling the same days would only repeat each other's work).
A failed run is logged and tried again at the next tick; until the days are rolled, reads of
them go to the raw points (same answers, slower).

*after*, where given, runs after each ``maintain()`` on the same thread: the steps derived from
the rolled-up data (``dcim collect`` passes the report's job days, ``dcim.report.job_days``).
It is given a function that says whether upkeep is stopping, to end a long first run early.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dcim.store.base import Store

log = logging.getLogger(__name__)

MAINTAIN_EVERY_S = 600.0


class Maintainer:
    """Calls ``store.maintain()`` at start and then every *every_s* seconds on a daemon thread."""

    def __init__(self, store: Store, every_s: float = MAINTAIN_EVERY_S,
                 after: Callable[[Callable[[], bool]], object] | None = None):
        self.store = store
        self.every_s = every_s
        self.after = after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dcim-store-maintain", daemon=True)

    def start(self) -> Maintainer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.maintain()
            except Exception:  # noqa: BLE001 — a store outage must not end upkeep; tried again next tick
                log.exception("store upkeep (rollups) failed; trying again in %.0f s", self.every_s)
            if self.after is not None and not self._stop.is_set():
                try:
                    self.after(self._stop.is_set)
                except Exception:  # noqa: BLE001 — same: the next tick tries again
                    log.exception("store upkeep after the rollups failed; trying again in %.0f s", self.every_s)
            self._stop.wait(self.every_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
