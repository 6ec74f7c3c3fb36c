"""A store that is opened on first use and re-tried until it opens: a wall screen started before
its store exists (nothing collected yet, InfluxDB still starting) shows "no data yet" and
recovers by itself when the store appears, instead of exiting with a traceback.

Every call goes to the opened store; until it opens, calls raise ``StoreUnavailable`` naming why
(at most one open attempt per ``retry_s``, so a hundred screens do not hammer a missing file).
"""

from __future__ import annotations

import logging
import threading
import time

from dcim.store.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)


class LazyStore:
    def __init__(self, opener, retry_s: float = 2.0, clock=time.monotonic):
        self._opener = opener
        self._retry_s = retry_s
        self._clock = clock
        self._store = None
        self._why = "not opened yet"
        self._next_try = 0.0
        self._lock = threading.Lock()
        self._logged = False

    @property
    def opened(self) -> bool:
        return self._store is not None

    def _get(self):
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._clock() < self._next_try:
                raise StoreUnavailable(self._why)
            try:
                self._store = self._opener()
            except (StoreError, OSError) as exc:
                self._why = f"store not available yet: {exc}"
                self._next_try = self._clock() + self._retry_s
                if not self._logged:  # once, not every tick of every screen
                    log.warning("%s (retrying every %gs; screens show 'no data yet')", self._why, self._retry_s)
                    self._logged = True
                raise StoreUnavailable(self._why) from None
            if self._logged:
                log.info("store is available now")
            return self._store

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
