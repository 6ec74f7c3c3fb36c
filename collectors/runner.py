"""The runner: schedules every collector at its interval, bounds each cycle, writes, reports.

- Schedule: collector k runs at ``start + offset_k + n * interval`` where offset_k is a random
  jitter (``jitter_pct`` of the interval), so many collector processes do not hit the network
  and the store in the same instant. A cycle that overruns its slot skips the slots it missed
  (counted as missed cycles) instead of running back to back.
- Deadline: a cycle gets ``interval`` seconds, of which the poll gets 90 % (the rest is for the
  writes); the collector reports any target still unanswered as failed. The runner adds a small
  grace and cancels a collector that ignores it.
- Writes go through the StoreWriter (batching, spool, replay) in a worker thread so a slow
  store never stalls the event loop that polls the devices.
- Health: per target, a ``collector`` point (duration_s, ok, error, points, dropped) every
  cycle, and Prometheus text on ``/metrics`` (prometheus_client families on a registry passed in,
  rendered by its generate_latest; a tiny WSGI app on waitress in a thread, with the
  bounded connections and timeouts of :mod:`dcim.web`, so idle scrapers cannot exhaust the
  files the writer needs for its store and spool).
- A collector that raises is not fatal: it is backed off exponentially (interval x 2^k, up to
  ``max_backoff_s``) and logged, like Glances disabling a failing plugin; the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector as Collector_

from collectors.base import Collector, TargetResult
from dcim.metrics import Point
from dcim.web import Limits, WsgiServer

log = logging.getLogger(__name__)

GRACE_S = 0.5  # beyond the deadline, before the runner cancels a collector itself
# Share of the interval kept for writing a cycle's points and health after the poll: a poll given
# the whole interval (devices still discovering or timing out run to it) ends the cycle past its
# slot, and the next slot is skipped as missed.
WRITE_RESERVE = 0.1
# /metrics: a few scrapers, GET only.
METRICS_LIMITS = Limits(connection_limit=200, threads=2, max_body_bytes=64 * 1024)
# Counters a collector reports on its results (TargetResult.counters), summed on /metrics.
REPLY_COUNTERS = (("replies_unsolicited", ("Replies dropped unread: not from a polled address, or an unknown "
                                           "request id / msgID or community.")),
                  ("replies_garbled", ("Replies dropped because they are not an SNMP response of the version "
                                       "asked, or did not decode.")))


@dataclass
class CollectorState:
    collector: Collector
    cycles: int = 0
    missed: int = 0
    failures: int = 0            # consecutive cycles that raised
    errors_total: int = 0
    backoff_until: float = 0.0
    last_duration_s: float = 0.0
    points_total: int = 0
    targets: dict[str, TargetResult] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # TargetResult.counters summed since start


class Runner:
    def __init__(self, collectors: list[Collector], writer, *, jitter_pct: float = 10.0,
                 max_backoff_s: float = 600.0, rng: random.Random | None = None,
                 registry: CollectorRegistry | None = None):
        self.states = {c.name: CollectorState(c) for c in collectors}
        self.writer = writer
        self.jitter_pct = jitter_pct
        self.max_backoff_s = max_backoff_s
        self.rng = rng or random.Random()
        self._lock = threading.Lock()     # /metrics reads what the loop writes
        self._server: WsgiServer | None = None
        self._dropped_seen = 0
        # /metrics: the runner's health on this registry (a private one unless the caller passes its own)
        self.registry = CollectorRegistry() if registry is None else registry
        self.registry.register(RunnerMetrics(self))

    # --- one cycle ---------------------------------------------------------------------------

    async def run_cycle(self, name: str) -> list[TargetResult]:
        """Poll one collector once (bounded by its interval), write its points and its health."""
        state = self.states[name]
        collector = state.collector
        deadline = float(collector.interval_s) * (1.0 - WRITE_RESERVE)
        t0 = time.monotonic()
        try:
            results = await asyncio.wait_for(collector.poll(deadline), timeout=deadline + GRACE_S)
            state.failures = 0
        except Exception as exc:  # noqa: BLE001 - includes the runner's own timeout: never fatal
            state.failures += 1
            state.errors_total += 1
            backoff = min(self.max_backoff_s, collector.interval_s * 2 ** state.failures)
            state.backoff_until = time.monotonic() + backoff
            why = "cycle exceeded its deadline" if isinstance(exc, asyncio.TimeoutError) else \
                f"{type(exc).__name__}: {exc}"
            log.error("collector %s failed (%s); backing off %.0f s", name, why, backoff)
            results = [TargetResult(t, ok=False, error=f"collector failed: {why}") for t in collector.targets()]
        duration = time.monotonic() - t0
        points = [p for r in results for p in r.points]
        written = await self._write(points)
        dropped = self._dropped_delta()
        health = self.health_points(name, results, dropped)
        await self._write(health)
        with self._lock:
            state.cycles += 1
            state.last_duration_s = duration
            state.points_total += written
            state.targets = {r.target: r for r in results}
            for r in results:
                for key, n in r.counters.items():
                    state.counters[key] = state.counters.get(key, 0) + n
        return results

    async def _write(self, points: list[Point]) -> int:
        if not points or self.writer is None:
            return 0
        loop = asyncio.get_running_loop()
        try:
            accepted = await loop.run_in_executor(None, self.writer.write, points)
        except Exception:
            log.exception("writer refused %d points", len(points))
            return 0
        return len(points) if accepted is None else int(accepted)

    def _dropped_delta(self) -> int:
        stats = self._writer_stats()
        total = int(stats.get("dropped", 0))
        delta, self._dropped_seen = max(0, total - self._dropped_seen), total
        return delta

    def _writer_stats(self) -> dict:
        try:
            return dict(self.writer.stats()) if self.writer is not None else {}
        except Exception:  # noqa: BLE001 - a writer without stats must not fail a scrape or a cycle
            return {}

    @staticmethod
    def health_points(collector: str, results: list[TargetResult], dropped: int = 0) -> list[Point]:
        now = time.time_ns()
        out = []
        for r in results:
            fields: dict = {"duration_s": round(r.duration_s, 6), "ok": bool(r.ok), "points": len(r.points)}
            fields.update(r.counters)
            if r.error:
                fields["error"] = r.error[:500]
            out.append(Point("collector", {"collector": collector, "target": r.target}, fields, now))
        if dropped and out:
            out[0].fields["dropped"] = dropped
        return out

    # --- scheduling --------------------------------------------------------------------------

    async def run_once(self) -> dict[str, list[TargetResult]]:
        """Every collector once, concurrently (``dcim collect --once``)."""
        names = list(self.states)
        results = await asyncio.gather(*(self.run_cycle(n) for n in names))
        return dict(zip(names, results))

    async def _loop(self, name: str, stop: asyncio.Event) -> None:
        state = self.states[name]
        interval = float(state.collector.interval_s)
        start = time.monotonic() + self.rng.uniform(0, interval * self.jitter_pct / 100.0)
        slot = 0
        while not stop.is_set():
            due = start + slot * interval
            now = time.monotonic()
            if due > now:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=due - now)
                    return
                except TimeoutError:
                    pass
            if time.monotonic() < state.backoff_until:
                slot += 1
                continue
            await self.run_cycle(name)
            # Skip the slots the cycle overran rather than running back to back.
            behind = int((time.monotonic() - start) // interval) - slot
            if behind > 0:
                with self._lock:
                    state.missed += behind
                log.warning("collector %s: cycle took %.1f s, %d cycle(s) missed", name,
                            state.last_duration_s, behind)
            slot += 1 + max(0, behind)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run every collector until *stop* is set."""
        stop = stop or asyncio.Event()
        try:
            await asyncio.gather(*(self._loop(n, stop) for n in self.states))
        finally:
            for state in self.states.values():
                try:
                    await state.collector.close()
                except Exception:
                    log.exception("closing collector %s", state.collector.name)

    # --- Prometheus ----------------------------------------------------------------------------

    def metrics_text(self) -> str:
        """The runner's self-metrics in Prometheus' text format (its registry, generate_latest)."""
        return generate_latest(self.registry).decode()

    def serve_metrics(self, host: str = "127.0.0.1", port: int = 9108) -> int:
        """Serve /metrics in a daemon thread; returns the bound port (0 picks a free one)."""
        self._server = WsgiServer(self.metrics_wsgi, host, port, name="dcim-metrics", limits=METRICS_LIMITS).start()
        return self._server.port

    def metrics_wsgi(self, environ, start_response):
        """GET /metrics: Prometheus text. Scrapes every 15 s would flood the log: nothing logged."""
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        body = self.metrics_text().encode()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def stop_metrics(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class RunnerMetrics(Collector_):
    """The runner's health as prometheus_client families, read from its states at each scrape."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def describe(self) -> list:
        return []  # the collectors and targets are known only at scrape time

    def collect(self):
        runner = self.runner
        with runner._lock:
            states = list(runner.states.values())
            per_collector = (
                ("dcim_collector_cycles", CounterMetricFamily, "Cycles run.", lambda s: s.cycles),
                ("dcim_collector_missed_cycles", CounterMetricFamily, "Cycles skipped because a cycle overran.",
                 lambda s: s.missed),
                ("dcim_collector_errors", CounterMetricFamily, "Cycles in which the collector itself failed.",
                 lambda s: s.errors_total),
                ("dcim_collector_backoff", GaugeMetricFamily, "1 while the collector is backed off after failures.",
                 lambda s: int(time.monotonic() < s.backoff_until)),
                ("dcim_collector_cycle_duration_seconds", GaugeMetricFamily, "Duration of the last cycle.",
                 lambda s: round(s.last_duration_s, 6)),
                ("dcim_collector_points", CounterMetricFamily, "Points handed to the writer.",
                 lambda s: s.points_total),
            )
            for name, kind, help_, value in per_collector:
                family = kind(name, help_, labels=["collector"])
                for s in states:
                    family.add_metric([s.collector.name], value(s))
                yield family
            ok = GaugeMetricFamily("dcim_collector_target_ok", "1 if the target answered in the last cycle.",
                                   labels=["collector", "target"])
            took = GaugeMetricFamily("dcim_collector_target_duration_seconds",
                                     "Poll time of the target in the last cycle.", labels=["collector", "target"])
            for s in states:
                for t, r in sorted(s.targets.items()):
                    ok.add_metric([s.collector.name, t], int(r.ok))
                    took.add_metric([s.collector.name, t], round(r.duration_s, 6))
            yield ok
            yield took
            # per cycle on the ``collector`` points, as totals here
            for key, help_ in REPLY_COUNTERS:
                family = CounterMetricFamily(f"dcim_collector_{key}", help_, labels=["collector"])
                for s in states:
                    family.add_metric([s.collector.name], s.counters.get(key, 0))
                yield family
        yield from self._writer(runner._writer_stats())

    @staticmethod
    def _writer(stats: dict):
        for key, help_ in (("written", "Points written to the store."), ("spooled", "Points spooled to disk."),
                           ("dropped", "Points dropped past the spool bound."),
                           ("rejected", "Points rejected as invalid."), ("replayed", "Points replayed from the spool.")):
            if key in stats:
                yield CounterMetricFamily(f"dcim_writer_points_{key}", help_, value=stats[key])
        for key in ("buffered", "spool_points", "spool_bytes"):
            if key in stats:
                yield GaugeMetricFamily(f"dcim_writer_{key}", f"Writer {key.replace('_', ' ')}.", value=stats[key])


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n
