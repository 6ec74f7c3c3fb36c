"""Cached store queries turned into plain dicts and lists, shared by every open screen.

One :class:`QueryCache` per app, keyed by (query, refresh tick): every screen that refreshes in
the same tick gets the same result, and concurrent requests for a key that is being computed wait
for that one computation (single flight). So N screens cost one set of store queries per tick, not
N. Long-range queries (24 h / 30 d PUE, energy saved today) use a longer tick.

Nothing here imports Dash; pages format the dicts.
"""

from __future__ import annotations

import gc
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dashboards import alarms as alarm_rules
from dashboards import snapshot
from dashboards.alarms import AlarmBackend, NoAlarms
from dcim.config import Config
from dcim.inventory import Inventory, build_inventory
from dcim.metrics import OPTIMIZER_CYCLE_ACTION, Point
from dcim.store.base import Store, StoreError
from dcim.store.gpu_summary import GpuSummary

NS = 1_000_000_000


class CountingStore:
    """A read-only view of a store that counts the queries it forwards (for the benchmark and tests)."""

    def __init__(self, store: Store):
        self.inner = store
        self.calls = 0
        self.seconds = 0.0  # time spent inside the store
        self._lock = threading.Lock()

    def _timed(self, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.calls += 1
                self.seconds += time.perf_counter() - t

    def query(self, *args, **kwargs):
        return self._timed(self.inner.query, *args, **kwargs)

    def latest(self, *args, **kwargs):
        return self._timed(self.inner.latest, *args, **kwargs)

    def gpu_summary(self, *args, **kwargs):
        return self._timed(self.inner.gpu_summary, *args, **kwargs)


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = True


@contextmanager
def gc_paused():
    """The cyclic garbage collector off while a tick's data is built. A build allocates some
    100k dicts and tuples, nearly all kept (they are the snapshot) or freed by reference counting;
    with the collector on, those allocations trigger full passes over the whole heap (0.1-0.5 s
    per cold build at 32k GPUs). Nested and concurrent builds share one pause; the collector is
    back on (if it was on) when the last one ends, and its next young-generation pass sees what
    was allocated meanwhile."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def freeze_heap() -> None:
    """Move everything alive now (modules, the app, the inventory) out of the collector's reach:
    call once, after the app is built, in a long-running server process. Later full passes then
    scan only what was allocated since."""
    gc.collect()
    gc.freeze()


# glibc keeps freed heap pages: a tick's snapshot (~100k small objects) is built by whichever of
# the server's threads gets there, in that thread's arena, and freed a tick later; the pages stay
# with the process and RSS creeps up by ~1 MiB a minute with 20 screens although the Python heap
# is flat (bench/dashboard_memory.py; tracemalloc and gc show no growth). Fewer arenas and a
# periodic malloc_trim hand them back.
TRIM_EVERY_S = 60.0
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def _libc():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_arenas(n: int = 2) -> bool:
    """At most *n* glibc malloc arenas for threads started from now on (a no-op off glibc)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, n))


def trim_heap() -> bool:
    """Give the free pages at the top and inside glibc's arenas back to the system."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))


class QueryCache:
    """(key, tick) → value, newest tick per key only, with single-flight computation."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict = {}
        self._inflight: dict = {}
        self.hits = 0
        self.misses = 0
        self.stale_hits = 0

    def get(self, key, tick: int, compute, stale_ok: bool = False):
        """The value of *key* for *tick*, computed once whatever the number of callers. With
        *stale_ok*, a caller that would have to wait for another thread's computation gets the
        previous tick's value instead (stale-while-revalidate: screens never block on the warmer)."""
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == tick:
                    self.hits += 1
                    return entry[1]
                event = self._inflight.get((key, tick))
                if event is not None and stale_ok and entry is not None and entry[0] >= tick - 2:
                    self.stale_hits += 1
                    return entry[1]
                if event is None:
                    event = threading.Event()
                    self._inflight[(key, tick)] = event
                    self.misses += 1
                    break
            event.wait(60)
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == tick:
                    self.hits += 1
                    return entry[1]
                if (key, tick) in self._inflight:
                    continue
            # the computing thread failed: compute ourselves
            return compute()
        try:
            value = compute()
            with self._lock:
                old = self._entries.get(key)
                if old is None or old[0] <= tick:
                    self._entries[key] = (tick, value)
            return value
        finally:
            with self._lock:
                self._inflight.pop((key, tick), None)
            event.set()

    def clear(self):
        with self._lock:
            self._entries.clear()

    def forget(self, *prefixes: tuple) -> None:
        """Drop every entry whose key starts with one of *prefixes* (after a change the screen made
        itself, e.g. an acknowledgement, so the next read shows it)."""
        with self._lock:
            for key in list(self._entries):
                if any(isinstance(key, tuple) and key[:len(p)] == p for p in prefixes):
                    del self._entries[key]


NO_JOB = {"job": "", "tenant": "", "job_class": ""}


def _fields(p: Point) -> dict:
    return p.fields


class DataSource:
    """Everything the pages read, as cached plain data."""

    def __init__(self, config: Config, store: Store, *, clock=time.time, alarms: AlarmBackend | None = None):
        self.config = config
        self.alarm_backend: AlarmBackend = alarms if alarms is not None else NoAlarms()
        # why the store could not be read on the last try (None: it answered): the screens then
        # say "no data yet" and keep polling; nothing here raises for a store that is not there
        self.store_error: str | None = None
        self.inventory: Inventory = build_inventory(config)
        self.store = CountingStore(store)
        self.cache = QueryCache()
        self.clock = clock
        self.refresh_s = float(config.dashboard.refresh_s)
        # Screens poll and the snapshot is rebuilt every half refresh: a reading that lands just
        # after a rebuild is in the next one half a refresh later, and every screen fetches it
        # within the following half, so it shows within one refresh (plus one build). The store
        # sees one set of queries per half refresh, whatever the number of screens.
        self.tick_s = self.refresh_s / 2
        self.tz = config.site.timezone
        self.derate = float(config.optimizer.breaker_derate)
        c = config.collectors
        self.intervals = {
            # the twin writes workload with its GPU samples; a real site's source every [workload] interval_s
            "gpu": c.gpu_interval_s,
            "workload": config.workload.interval_s if config.workload.source != "none" else c.gpu_interval_s,
            "pdu": c.snmp_interval_s, "pdu_phase": c.snmp_interval_s, "pdu_outlet": c.snmp_interval_s,
            "pdu_breaker": c.snmp_interval_s, "cooling": c.snmp_interval_s, "ups": c.snmp_interval_s,
            "meter": c.snmp_interval_s, "env": c.snmp_interval_s, "facility": c.snmp_interval_s,
            "optimizer": config.optimizer.interval_s, "collector": max(c.snmp_interval_s, c.gpu_interval_s),
        }
        self._pdu_cfg = {p.name: p for p in config.pdus}

    # -- ticks and staleness ------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def tick(self, period_s: float | None = None, now: float | None = None) -> int:
        period = period_s or self.tick_s
        return int((self.now() if now is None else now) // period)

    def stale(self, measurement: str, time_ns: int | None, now_ns: int) -> bool:
        """A value is stale when older than twice its poll interval (or absent)."""
        if not time_ns:
            return True
        return (now_ns - time_ns) > 2 * self.intervals.get(measurement, 10.0) * NS

    # -- cached raw queries -------------------------------------------------------------------

    def _guarded(self, read, empty):
        """*read*'s answer, or *empty* when the store is missing or down (recorded in
        ``store_error`` for the stamp); the next tick tries again."""
        try:
            value = read()
        except (StoreError, OSError) as exc:
            self.store_error = f"{type(exc).__name__}: {exc}"[:300]
            return empty
        self.store_error = None
        return value

    def latest(self, measurement: str) -> list[Point]:
        return self.cache.get(("latest", measurement), self.tick(),
                              lambda: self._guarded(lambda: self.store.latest(measurement), []))

    def gpu_summary(self) -> GpuSummary:
        return self.cache.get(("gpu_summary",), self.tick(),
                              lambda: self._guarded(lambda: self.store.gpu_summary(alarm_rules.THROTTLE_MASK),
                                                    GpuSummary()))

    def alarms(self) -> list[dict]:
        """The engine's active alarms (shelved ones included, marked), most severe first."""
        def build():
            return alarm_rules.active_only(self._guarded(self.alarm_backend.active, []), int(self.now() * NS))
        return self.cache.get(("alarms",), self.tick(), build)

    def alarm_history(self, seconds: float = 7 * 86400) -> list[dict]:
        """Every alarm transition of the last *seconds*, newest first (refreshed each minute)."""
        def build():
            end = int(self.now() * NS) + NS
            rows = self._guarded(lambda: self.alarm_backend.history(end - int(seconds * NS), end), [])
            return sorted(rows, key=lambda a: (a.get("time_ns") or 0, a.get("id") or ""), reverse=True)
        return self.cache.get(("alarm_history", seconds), self.tick(max(60.0, self.refresh_s)), build)

    def _window(self, seconds: float, period_s: float) -> tuple[int, int, int]:
        """(start_ns, end_ns, tick) for a window of *seconds* ending at the current tick's end."""
        tick = self.tick(period_s)
        end = int((tick + 1) * period_s * NS)
        return end - int(seconds * NS), end, tick

    def series(self, measurement: str, fields: tuple[str, ...], seconds: float, every_s: float | None,
               agg: str = "mean", group_by: tuple[str, ...] = (), where: dict | None = None,
               period_s: float | None = None):
        period = max(self.refresh_s, period_s or self.refresh_s)
        start, end, tick = self._window(seconds, period)
        key = ("query", measurement, fields, seconds, every_s, agg, group_by,
               tuple(sorted((where or {}).items())))
        return self.cache.get(key, tick, lambda: self._guarded(lambda: self.store.query(
            measurement, list(fields), start, end, every_s=every_s, agg=agg, group_by=list(group_by),
            where=where), []))

    # -- derived ------------------------------------------------------------------------------

    def pue_period(self, seconds: float) -> float | None:
        """Energy-based PUE over the last *seconds*: Σ facility energy / Σ IT energy from hourly
        rollups (bucket mean power × the part of the bucket inside the window)."""
        period = 60.0 if seconds <= 86400 else 300.0
        series = self.series("facility", ("total_power_w", "it_power_w"), seconds, 3600.0, "mean",
                             period_s=period)
        now_ns = int(self.now() * NS)
        start_ns = now_ns - int(seconds * NS)
        return energy_ratio(series, start_ns, now_ns, 3600)

    def hours_with_data(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """(hours of [start_ns, min(end_ns, now)) that hold facility readings, hours elapsed), from
        the hourly rollup; refreshed hourly. What the energy page's coverage says."""
        end_ns = min(end_ns, int(self.now() * NS))
        hours = max(0, -(-(end_ns - start_ns) // (3600 * NS)))
        if hours == 0:
            return 0, 0

        def build():
            series = self._guarded(lambda: self.store.query("facility", ["total_power_w"], start_ns, end_ns,
                                                            every_s=3600.0, agg="count"), [])
            seen = {t for s in series for t, v in zip(s.times_ns, s.values.get("total_power_w", [])) if v}
            return len(seen)

        # one entry per window start; the window's end moves with the hour, so the key holds the start only
        return self.cache.get(("hours_with_data", start_ns), int(self.now() // 3600), build), hours

    def saved_today_kwh(self) -> float | None:
        """Energy the optimizer estimates it saved since local midnight: per decision interval,
        the summed est_saving_w of the decisions in force × the interval."""
        every = float(self.config.optimizer.interval_s)
        tz = ZoneInfo(self.tz)
        now = datetime.fromtimestamp(self.now(), tz)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        seconds = max(every, (now - midnight).total_seconds())
        key_day = midnight.date().isoformat()
        tick = self.tick(max(60.0, self.refresh_s))

        def compute():
            start = int(midnight.timestamp() * NS)
            end = int((self.now() + every) * NS)
            try:
                res = self.store.query("optimizer", ["est_saving_w"], start, end, every_s=every, agg="sum",
                                       group_by=["action"])
            except StoreError:
                return None
            # The daemon's cycle rows carry the whole facility's saving each interval; its
            # decision rows repeat a share of it when a cap changes. Cycles alone, where present.
            cycles = [s for s in res if s.tags.get("action") == OPTIMIZER_CYCLE_ACTION]
            total = 0.0
            seen = False
            for s in cycles or res:
                for v in s.values.get("est_saving_w", []):
                    if v is not None:
                        total += v * every
                        seen = True
            return total / 3.6e6 if seen else None

        del seconds
        return self.cache.get(("saved_today", key_day), tick, compute)

    def snapshot(self) -> dict:
        """Latest values of the whole facility, as plain dicts, built once per tick."""
        return self.cache.get(("snapshot",), self.tick(), self._build_snapshot_paused, stale_ok=True)

    def _build_snapshot_paused(self) -> dict:
        with gc_paused():
            return self._build_snapshot()

    # -- warmer -------------------------------------------------------------------------------

    def start_warmer(self, warm=None) -> threading.Thread:
        """A daemon thread that rebuilds the snapshot (and whatever *warm* computes, e.g. the
        overview) right after every tick boundary, so screens find it ready; while it runs, screens
        get the previous tick's values instead of waiting (see ``QueryCache.get(stale_ok=True)``)."""
        self._stop = threading.Event()
        next_trim = time.monotonic() + TRIM_EVERY_S

        def loop():
            nonlocal next_trim
            while not self._stop.is_set():
                try:
                    self.snapshot()
                    if warm is not None:
                        warm()
                except Exception:  # the store is down: the screens show the data age
                    pass
                if time.monotonic() >= next_trim:
                    trim_heap()
                    next_trim = time.monotonic() + TRIM_EVERY_S
                now = self.now()
                wait = (self.tick(now=now) + 1) * self.tick_s - now + 0.005
                self._stop.wait(max(0.01, min(wait, self.tick_s)))

        thread = threading.Thread(target=loop, name="dashboard-warmer", daemon=True)
        thread.start()
        self._warmer = thread
        return thread

    def stop_warmer(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._warmer.join(timeout=5)

    def _build_snapshot(self) -> dict:
        return snapshot.build_snapshot(self)


    def _gpu_row(self, p: Point, now_ns: int) -> dict:
        f, tg = p.fields, p.tags
        return {"uuid": tg.get("uuid", ""), "host": tg.get("host", ""), "gpu": tg.get("gpu", ""),
                "rack": tg.get("rack", ""), "room": tg.get("room", ""), "model": tg.get("model", ""),
                "power_w": f.get("power_w"), "power_limit_w": f.get("power_limit_w"),
                "power_limit_default_w": f.get("power_limit_default_w"), "temp_c": f.get("temp_c"),
                "util_pct": f.get("util_pct"), "throttle_reasons": f.get("throttle_reasons"),
                "t": p.time_ns, "stale": (now_ns - p.time_ns) > 2 * self.intervals["gpu"] * NS}

    def gpus(self) -> list[dict]:
        """Every GPU's latest values as rows, with the job that holds it (built once per tick, for
        the GPU, rack and tenant pages)."""
        def build():
            now_ns = int(self.now() * NS)
            jobs = self.jobs_by_gpu(now_ns)
            with gc_paused():
                rows = [self._gpu_row(p, now_ns) for p in self.latest("gpu")]
            for row in rows:
                row.update(jobs.get(row["uuid"], NO_JOB))
            return rows
        return self.cache.get(("gpus",), self.tick(), build)

    def jobs_by_gpu(self, now_ns: int) -> dict[str, dict]:
        """UUID → the job holding the GPU (job, tenant, job_class), from the workload source's
        latest point; a point older than twice the source's interval says nothing any more."""
        out = {}
        for p in self.latest("workload"):
            if self.stale("workload", p.time_ns, now_ns):
                continue
            f = p.fields
            job = f.get("job") or ""
            if not job:
                out[p.tags.get("uuid", "")] = NO_JOB
                continue
            out[p.tags.get("uuid", "")] = {"job": str(job), "tenant": str(f.get("tenant") or ""),
                                           "job_class": str(f.get("job_class") or "")}
        return out

    def tenants_month(self) -> list[dict]:
        """This month's energy per tenant so far, as the energy report bills it (its tenant rows,
        from the start of the month in the site's zone to the last whole hour); rebuilt hourly."""
        from dcim.report import build_report
        from dcim.report.periods import Period

        tz = ZoneInfo(self.tz)
        now = datetime.fromtimestamp(self.now(), tz)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = now.replace(minute=0, second=0, microsecond=0)
        if end <= start:
            return []
        key = ("tenants_month", start.isoformat())

        def build():
            period = Period(f"{start:%Y-%m} to {end:%d %H:00}", start, end)
            return [r for r in build_report(self.store.inner, self.config, period, "tenant") if r["level"] == "tenant"]

        return self.cache.get(key, int(self.now() // 3600), build, stale_ok=True)

    def _optimizer_state(self, capped: int, now_ns: int) -> dict:
        points = self.latest("optimizer")
        lease_default = float(self.config.optimizer.lease_s)
        mode = None
        mode_t = -1
        newest = None
        saving_now = 0.0
        live_decisions = 0
        # The newest cycle row states the whole facility's saving; without one (a daemon that
        # writes no cycle rows), the decisions still in force are added up.
        cycles = any(p.tags.get("action") == OPTIMIZER_CYCLE_ACTION for p in points)
        for p in points:
            f = p.fields
            if f.get("mode") and p.time_ns > mode_t:
                mode, mode_t = f["mode"], p.time_ns
            newest = max(newest or 0, p.time_ns)
            lease = float(f.get("lease_s") or lease_default)
            counts = not cycles or p.tags.get("action") == OPTIMIZER_CYCLE_ACTION
            if counts and now_ns - p.time_ns <= lease * NS and f.get("est_saving_w") is not None:
                saving_now += float(f["est_saving_w"])
                live_decisions += 1
        return {"mode": mode or (self.config.optimizer.mode if not points else None),
                "mode_from_store": bool(mode), "gpus_capped": capped,
                "saving_now_w": saving_now if live_decisions else (0.0 if points else None),
                "saved_today_kwh": self.saved_today_kwh(), "t": newest,
                "stale": self.stale("optimizer", newest, now_ns)}


def energy_ratio(series, start_ns: int, end_ns: int, every_s: float) -> float | None:
    """Σ total energy / Σ IT energy from bucketed mean powers: each bucket's mean × the seconds of
    the bucket that lie inside [start_ns, end_ns). Buckets lacking either field are left out of
    both sums, so the ratio compares like with like."""
    fac = it = 0.0
    step = int(every_s * NS)
    for s in series:
        tot = s.values.get("total_power_w", [])
        itv = s.values.get("it_power_w", [])
        for i, b in enumerate(s.times_ns):
            if i >= len(tot) or i >= len(itv) or tot[i] is None or itv[i] is None:
                continue
            covered = (min(b + step, end_ns) - max(b, start_ns)) / NS
            if covered <= 0:
                continue
            fac += tot[i] * covered
            it += itv[i] * covered
    return fac / it if it > 0 else None


def quarter_of(now_ts: float, tz: str, offset: int = 0) -> str:
    """'2026Q3' for the quarter containing *now_ts* in the site's zone, shifted by *offset* quarters."""
    dt = datetime.fromtimestamp(now_ts, ZoneInfo(tz))
    q = (dt.month - 1) // 3 + offset
    year = dt.year + q // 4
    return f"{year}Q{q % 4 + 1}"


def local_midnight_ns(now_ts: float, tz: str) -> int:
    dt = datetime.fromtimestamp(now_ts, ZoneInfo(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(dt.timestamp() * NS)


def utc(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / NS, tz=UTC)


__all__ = ["CountingStore", "QueryCache", "DataSource", "freeze_heap", "gc_paused", "limit_arenas", "trim_heap",
           "energy_ratio", "quarter_of", "timedelta"]
