"""Render /metrics ahead of the scrape: a background thread renders on a schedule and a scrape is
answered with the last rendering.

For 32,000 GPUs one rendering costs ~1 s of CPU (the store's latest() of every measurement, then
~117 MB of text), longer than a scrape should wait. Rendered ahead, a scrape costs the hand-over
of the bytes; the values are at most ``every_s`` (plus one rendering) older than at the scrape,
and ``dcim_exporter_render_age_seconds`` says how old. The thread renders only while someone
scrapes (a scrape within ``idle_after_s``), so an exporter nobody reads costs nothing; the first
scrape, or one after a pause, renders in place and waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendering:
    body: bytes
    done_at: float      # monotonic clock, when the rendering finished
    wall_s: float       # how long it took
    cpu_s: float        # CPU time of the rendering thread


class RenderAhead:
    """Keeps a rendering of *render()* no older than ``every_s`` while it is being scraped."""

    def __init__(self, render: Callable[[], bytes], *, every_s: float = 15.0, idle_after_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        if every_s <= 0:
            raise ValueError("every_s must be > 0")
        if idle_after_s < every_s:
            raise ValueError("idle_after_s must be >= every_s")
        self._render = render
        self.every_s = every_s
        self.idle_after_s = idle_after_s
        self._clock = clock
        self._last: Rendering | None = None
        self._last_scrape = -float("inf")
        self._lock = threading.Lock()          # one rendering at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RenderAhead:
        self._thread = threading.Thread(target=self._loop, name="dcim-exporter-render", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def get(self) -> Rendering:
        """The last rendering, rendered now if there is none or it is older than twice
        ``every_s`` (the thread idled, or fell behind)."""
        self._last_scrape = self._clock()
        last = self._last
        if last is not None and self._clock() - last.done_at <= 2 * self.every_s:
            return last
        with self._lock:
            last = self._last   # another scrape may have rendered while this one waited
            if last is not None and self._clock() - last.done_at <= 2 * self.every_s:
                return last
            return self._render_now()

    def age_s(self, rendering: Rendering) -> float:
        return max(0.0, self._clock() - rendering.done_at)

    def _render_now(self) -> Rendering:
        t0, c0 = time.perf_counter(), time.thread_time()
        body = self._render()
        self._last = Rendering(body, self._clock(), time.perf_counter() - t0, time.thread_time() - c0)
        return self._last

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            if self._clock() - self._last_scrape > self.idle_after_s:
                continue   # nobody scrapes: render at the next scrape
            try:
                with self._lock:
                    self._render_now()
            except Exception:  # keep serving the last rendering; the next scrape renders in place
                log.exception("rendering /metrics failed")
