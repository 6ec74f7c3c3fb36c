"""The one way collectors and the optimizer write: validate, batch, write, spool, replay.

``StoreWriter.write(points)`` buffers points and returns at once; the background thread
validates each against the metric contract (and, where the store offers ``check_point``,
against what the store can represent; strict mode validates in write() and raises), writes
full batches, and everything buffered every *flush_interval_s*. When the store raises
StoreUnavailable the batch, and everything after
it, goes to the on-disk :class:`~dcim.store.spool.Spool`; the spool is replayed **in order
before new data** once the store answers again. StoreUnavailable includes a store that is up
but refuses writes for its own state (InfluxDB 401, 403, 404 database not found) and one that
gives no answer within its timeout. A StoreError (bad data) is not retried: its points are
counted as rejected and logged loudly, except that a StoreError may say more:
``too_large`` (InfluxDB 413: the batch is split in halves and written again) or
``rejected_points`` (a partial write: only that many points were refused, the rest count as
written).

A slow or hung store never holds up write() for long: write() waits at most *max_block_s*
for room in the buffer, then moves the buffer and its own points to the spool itself. (A
batch that was on the wire to the hung store then follows them in the spool: the order of
replay is the order of arrival in the spool.)

Nothing is lost uncounted. What the spool cannot take (a full or read-only disk) and what the
store fails on with anything but a StoreError (e.g. an sqlite3 error from a bug or a damaged
file) is counted as dropped and logged at ERROR with the reason, like drops past the spool's
bound; ``dropped`` is what the runner puts in the ``collector`` measurement and /metrics.

Counters (points, cumulative): accepted (valid; counted when validated), written (to the
store, replays included), spooled, replayed, dropped (spool over its bound, spool or store
failure), rejected (invalid, or refused by the store as bad data). Once flushed, every
accepted point is written, dropped, rejected by the store, or still in the spool
(``stats()['spool_points']``). Points spooled by an earlier writer on the same directory count
as replayed/written only.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn, cast

import tenacity

from dcim.metrics import Point, PointError, validate_point
from dcim.store.base import Store, StoreError, StoreUnavailable
from dcim.store.spool import Spool

log = logging.getLogger(__name__)

COUNTERS = ("accepted", "written", "spooled", "replayed", "dropped", "rejected")


class StoreWriter:
    """Thread-safe buffered writer over a Store with an on-disk spool in *spool_dir*.

    *max_spool_bytes* bounds the spool on disk; *batch_size* is points per store write;
    *flush_interval_s* is the longest a point waits in memory; *strict* makes write() raise
    PointError on an invalid point instead of counting and logging it. *max_buffer_points*
    bounds memory: write() waits while the background thread catches up, at most *max_block_s*,
    then spools what is buffered (see the module docstring).
    """

    def __init__(self, store: Store, spool_dir: str | Path, max_spool_bytes: int = 256 << 20,
                 batch_size: int = 5000, flush_interval_s: float = 1.0, strict: bool = False, *,
                 max_buffer_points: int | None = None, max_retry_interval_s: float = 30.0,
                 max_block_s: float = 0.5):
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.strict = strict
        self.max_buffer_points = max_buffer_points or max(10 * batch_size, 10_000)
        self.max_retry_interval_s = max_retry_interval_s
        self.max_block_s = max_block_s
        self.spool = Spool(spool_dir, max_spool_bytes)
        self._spool_lock = threading.Lock()  # the spool: the drainer, and write() past max_block_s
        self.accepted = self.written = self.spooled = self.replayed = self.dropped = self.rejected = 0
        self._check = getattr(store, "check_point", None)
        self._buffer: list[Point] = []
        self._lock = threading.Lock()  # buffer and counters
        self._room = threading.Condition(self._lock)  # signalled when the buffer shrinks
        self._drain_lock = threading.Lock()  # one drainer at a time keeps the order
        self._wake = threading.Event()
        self._closed = False
        self._in_flight: tuple[list[Point], Callable[[], object]] | None = None  # (batch, finish()) being sent
        self._retry_at = 0.0  # monotonic time of the next replay attempt after a failure
        # The pause after the n-th failure in a row: flush_interval_s doubled per failure, at most
        # max_retry_interval_s. Only the pause is tenacity's: the drainer never blocks on a retry
        # (it keeps spooling), it skips replays until _retry_at.
        self._retry_wait = tenacity.wait_exponential(multiplier=flush_interval_s, max=max_retry_interval_s)
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="dcim-store-writer", daemon=True)
        self._thread.start()

    # --- accepting ------------------------------------------------------------------------

    def write(self, points: Iterable[Point]) -> None:
        """Queue *points*. In strict mode an invalid point raises PointError here and nothing
        of the call is queued; otherwise points are validated by the background thread (so
        validation overlaps the store's work instead of competing with it for the GIL) and
        invalid ones are counted as rejected and logged."""
        points = list(points)
        if self.strict:
            good, _ = self._validate(points)  # raises on the first invalid point
        overflow: list[Point] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("StoreWriter is closed")
            if self.strict:
                self.accepted += len(good)
            self._buffer.extend(points)
            full = len(self._buffer) >= self.batch_size
            deadline = time.monotonic() + self.max_block_s
            while len(self._buffer) > self.max_buffer_points and not self._closed:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    # The drainer is stuck on a slow or hung store: the buffer goes to disk here
                    # rather than hold up the caller (a collector's cycle).
                    overflow, self._buffer = self._buffer, []
                    break
                self._wake.set()
                self._room.wait(min(left_s, 1.0))
        if overflow:
            log.warning("store writer: the store has taken nothing for %.1f s; spooling %d buffered point(s)",
                        self.max_block_s, len(overflow))
            self._spool(self._split(self._checked(overflow)))
        if full:
            self._wake.set()

    def _validate(self, points: list[Point], store_check: bool = True) -> tuple[list[Point], int]:
        """(valid points, number invalid); raises PointError instead in strict mode.
        *store_check* adds the store's own check_point()."""
        good: list[Point] = []
        bad = 0
        first_error = None
        check = self._check if store_check else None
        for point in points:
            try:
                validate_point(point)
                if check is not None:
                    check(point)
            except PointError as exc:
                if self.strict:
                    raise
                bad += 1
                first_error = first_error or exc
                continue
            good.append(point)
        if bad:
            log.warning("rejected %d invalid point(s), first: %s", bad, first_error)
        return good, bad

    # --- draining -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything buffered now, replaying the spool first; what the store will not
        take stays spooled on disk. Returns when done (not when the store is back)."""
        self._drain(force=True)

    def _take(self) -> list[Point]:
        """Everything buffered, not yet validated (unless strict mode did it in write())."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._room.notify_all()
        return batch

    def _checked(self, points: list[Point], store_check: bool = True) -> list[Point]:
        """The valid ones among *points* just taken from the buffer; counts them."""
        if self.strict or not points:
            return points
        good, bad = self._validate(points, store_check)
        self._count(accepted=len(good), rejected=bad)
        return good

    def _split(self, points: list[Point]) -> list[list[Point]]:
        return [points[i:i + self.batch_size] for i in range(0, len(points), self.batch_size)]

    def _drain(self, force: bool = False, replay: bool | None = None) -> None:
        """Write or spool what is buffered. *force*: replay the spool now whatever the backoff
        (*replay* overrides that) and wait for the last batch's answer."""
        # Invariant that keeps the order: everything in the spool is older than everything in
        # the buffer. So the buffer is taken only once the spool is empty, or appended to it.
        replay = force if replay is None else replay
        with self._drain_lock:
            # (A batch still on the wire is settled by _write_direct once the next is encoded.)
            if self._spool_waiting() and self._settle_in_flight():
                if replay or time.monotonic() >= self._retry_at:
                    self._replay()
            if self._spool_waiting():  # still a backlog: new data queues behind it, on disk
                self._spool(self._split(self._checked(self._take())))
                return
            self._write_direct(self._split(self._take()), finish=force)

    def _spool_waiting(self) -> bool:
        with self._spool_lock:
            return bool(self.spool)

    def _write_direct(self, chunks: list[list[Point]], finish: bool) -> None:
        """Validate and write *chunks* (straight from the buffer) in order. Where the store can
        send a batch and read the answer later (InfluxStore.encode/begin_write), batch k+1 is
        validated and encoded while the server works on batch k, in this one thread; the last
        batch may stay in flight until the next drain (*finish* waits for it)."""
        encode = getattr(self.store, "encode", None)
        begin = getattr(self.store, "begin_write", None)
        if encode is None or begin is None:
            def encode(batch):
                return batch
            begin = self._write_now
        # Encoding checks what check_point() would, so the happy path skips it (~15 % of the
        # CPU per point) and only a batch that fails to encode is sifted point by point.
        sift = self._check is not None and begin != self._write_now
        for i, chunk in enumerate(chunks):
            batch = self._checked(chunk, store_check=not sift)
            if not batch:
                continue
            try:
                payload, error = encode(batch), None
            except StoreError as exc:  # nothing sent for this batch
                payload, error = None, exc
                if sift and not self.strict:
                    batch = self._sift(batch)
                    try:
                        payload, error = (encode(batch), None) if batch else (None, None)
                    except StoreError as exc2:
                        error = exc2
                    if payload is None and error is None:
                        continue
            if not self._settle_in_flight([batch], chunks[i + 1:]):
                return
            if error is not None:  # payload is None
                self._reject(batch, error)
            elif payload is not None:
                try:
                    self._in_flight = (batch, begin(payload))
                except Exception as exc:  # noqa: BLE001 - e.g. unreachable before anything was sent
                    self._in_flight = (batch, _raiser(exc))
        if finish or not chunks:
            self._settle_in_flight()

    def _sift(self, batch: list[Point]) -> list[Point]:
        """Drop (and count as rejected) the points the store's check_point() refuses."""
        good, bad = self._validate(batch, store_check=True)
        self._count(accepted=-bad, rejected=bad)
        return good

    def _write_now(self, batch: list[Point]) -> Callable[[], object]:
        """begin_write() for stores without one: write now, report at finish()."""
        try:
            self.store.write(batch)
        except Exception as exc:  # noqa: BLE001 - reported by finish(), counted by the caller
            return _raiser(exc)
        return lambda: None

    def _settle_in_flight(self, rest: Sequence[list[Point]] = (), raw: Sequence[list[Point]] = ()) -> bool:
        """Account for the batch on the wire. If the store was down, spool it, then *rest*
        (validated batches after it) and *raw* (chunks after those, validated here), and
        return False."""
        if self._in_flight is None:
            return True
        batch, finish = self._in_flight
        self._in_flight = None
        unwritten: list[Point] = []
        why: StoreUnavailable | None = None
        try:
            finish()
        except StoreUnavailable as exc:
            unwritten, why = batch, exc
        except StoreError as exc:
            unwritten, why = self._refused(batch, exc)
        except Exception as exc:  # noqa: BLE001 - a store bug must not lose the batch uncounted
            self._store_failed(batch, exc)
        else:
            self._count(written=len(batch))
        if not unwritten:
            return True
        behind = [unwritten, *rest, *(self._checked(c) for c in raw)]
        _log_unavailable(why, "store unavailable, spooling %d point(s): %s", sum(map(len, behind)))
        self._spool(behind)
        self._backoff()
        return False

    def _refused(self, batch: list[Point], exc: StoreError, replay: bool = False
                 ) -> tuple[list[Point], StoreUnavailable | None]:
        """Account for a batch the store refused with *exc*: split it and write the halves if
        it was too large; count a partial write's refused points as rejected and the rest as
        written; else reject it all. Returns the points left unwritten because the store became
        unavailable meanwhile (to spool), with that error."""
        if getattr(exc, "too_large", False) and len(batch) > 1:
            return self._write_halves(batch, exc, replay)
        refused = getattr(exc, "rejected_points", None)
        if refused is not None and 0 <= refused < len(batch):
            stored = len(batch) - refused
            self._count(written=stored, rejected=refused, replayed=stored if replay else 0)
            log.error("store stored %d of a batch of %d point(s) and refused %d (not retrying): %s",
                      stored, len(batch), refused, exc)
        else:
            self._reject(batch, exc)
        return [], None

    def _write_halves(self, batch: list[Point], exc: StoreError, replay: bool
                      ) -> tuple[list[Point], StoreUnavailable | None]:
        """The store said *batch* is too large: write it in halves (halved again while still
        too large), and send later batches no larger than what it took."""
        half = (len(batch) + 1) // 2
        if half < self.batch_size:
            log.warning("store refused a batch of %d point(s) as too large (%s); batches are now %d point(s)",
                        len(batch), exc, half)
            self.batch_size = half
        parts = [batch[:half], batch[half:]]
        while parts:
            part = parts.pop(0)
            try:
                self.store.write(part)
            except StoreUnavailable as down:
                return [p for rest in [part, *parts] for p in rest], down
            except StoreError as refused:
                if getattr(refused, "too_large", False) and len(part) > 1:
                    mid = (len(part) + 1) // 2
                    self.batch_size = min(self.batch_size, mid)
                    parts[:0] = [part[:mid], part[mid:]]
                    continue
                left, why = self._refused(part, refused, replay)
                if left:
                    return [p for rest in [left, *parts] for p in rest], why
            except Exception as failed:  # noqa: BLE001
                self._store_failed(part, failed)
            else:
                self._count(written=len(part), replayed=len(part) if replay else 0)
        return [], None

    def _store_failed(self, batch: Sequence[Point], exc: BaseException) -> None:
        """The store failed with something that is neither 'unavailable' nor 'bad data' (a
        bug, a damaged file): retrying could fail forever, so the batch is counted as dropped."""
        self._count(dropped=len(batch))
        log.error("store failed on a batch of %d point(s), dropped (%d dropped so far): %s: %s",
                  len(batch), self.dropped, type(exc).__name__, exc, exc_info=exc)

    def _spool(self, batches: Sequence[Sequence[Point]], count_spooled: bool = True) -> None:
        """Append *batches* to the spool; what it cannot take is counted as dropped and logged.
        *count_spooled* False: points coming back from the spool (they were counted once)."""
        for batch in batches:
            if not batch:
                continue
            try:
                with self._spool_lock:
                    dropped = self.spool.append(batch)
            except OSError as exc:
                self._count(dropped=len(batch))
                log.error("spool %s (store.spool.path) cannot be written (%s): dropped %d point(s), "
                          "%d dropped so far", self.spool.directory, _os_reason(exc), len(batch), self.dropped)
                continue
            self._count(spooled=len(batch) if count_spooled else 0, dropped=dropped)
            if dropped:
                log.error("spool full (%d bytes): dropped the %d oldest point(s), %d dropped so far",
                          self.spool.max_bytes, dropped, self.dropped)

    def _replay(self) -> None:
        while True:
            batch = self._peek()
            if batch is None:
                self._failures = 0
                self._retry_at = 0.0
                return
            left: list[Point] = []
            try:
                self.store.write(batch)
            except StoreUnavailable as exc:
                _log_unavailable(exc, "store still unavailable, %d point(s) spooled: %s", self.spool.pending_points)
                self._backoff()
                return
            except StoreError as exc:
                left, down = self._refused(batch, exc, replay=True)
            except Exception as exc:  # noqa: BLE001 - a batch that breaks the store must not block the spool
                self._store_failed(batch, exc)
            else:
                self._count(written=len(batch), replayed=len(batch))
            with self._spool_lock:
                self.spool.pop()
            if left:  # part of a split batch: the store went away meanwhile; back behind the rest
                self._spool([left], count_spooled=False)
                _log_unavailable(down, "store unavailable, %d point(s) spooled: %s", self.spool.pending_points)
                self._backoff()
                return
            if len(self._buffer) >= self.max_buffer_points // 2:
                # A long replay: park new data behind the backlog rather than block write().
                self._spool(self._split(self._checked(self._take())))

    def _peek(self) -> list[Point] | None:
        """The oldest spooled batch; one that cannot be read back (a damaged record) is counted
        as dropped and skipped, so it cannot block the spool for ever."""
        while True:
            with self._spool_lock:
                try:
                    return self.spool.peek()
                except (OSError, ValueError) as exc:
                    reason = exc  # Python unbinds *exc* when the except block ends
                    lost = self.spool.head_points()
                    self.spool.pop()
            self._count(dropped=lost)
            log.error("spool %s: a spooled batch cannot be read back (%s): dropped %d point(s), %d dropped so far",
                      self.spool.directory, reason, lost, self.dropped)

    def _backoff(self) -> None:
        self._failures += 1
        # wait_exponential reads only the attempt number of the state it is handed.
        state = cast(tenacity.RetryCallState, SimpleNamespace(attempt_number=self._failures))
        self._retry_at = time.monotonic() + self._retry_wait(state)

    def _reject(self, batch: Sequence[Point], exc: StoreError) -> None:
        self._count(rejected=len(batch))
        log.error("store refused a batch of %d point(s), not retrying: %s", len(batch), exc)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._closed:
                break
            try:
                self._drain()
            except Exception:  # keep the thread alive; the spool keeps the data
                log.exception("store writer: unexpected error while draining")

    # --- reporting and closing ------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters (points) plus what waits: ``buffered`` in memory, ``spool_points`` and
        ``spool_bytes`` on disk."""
        with self._lock:
            out = {name: getattr(self, name) for name in COUNTERS}
            out["buffered"] = len(self._buffer)
        out["spool_points"] = self.spool.pending_points
        out["spool_bytes"] = self.spool.size_bytes
        return out

    def close(self) -> None:
        """Flush, stop the thread and release the spool (what is left there stays for the next
        writer on the same directory). Does not close the store."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._room.notify_all()
        self._wake.set()
        self._thread.join(timeout=60)
        try:
            # Wait for the last batch, but do not wait out a store that just failed again.
            self._drain(force=True, replay=time.monotonic() >= self._retry_at)
        finally:
            with self._drain_lock, self._spool_lock:
                self.spool.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()



def _log_unavailable(exc: BaseException | None, message: str, points: int) -> None:
    """A store that refuses writes for its own state (auth, permission, missing database)
    needs an operator: ERROR. Plain unavailability (down, overloaded, no answer): WARNING."""
    level = logging.ERROR if getattr(exc, "operator_action", False) else logging.WARNING
    log.log(level, message, points, exc)


def _os_reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}{f' [{name}]' if name else ''}"


def _raiser(exc: BaseException) -> Callable[[], NoReturn]:
    """A finish() that reports an error already known."""
    def finish() -> NoReturn:
        raise exc
    return finish


def writer_for(config, store: Store) -> StoreWriter:
    """The writer every long-running part uses: the config's spool, and InfluxDB's batch size and
    flush interval when the store is InfluxDB (SQLite takes large batches each second)."""
    influx = config.store.influxdb
    is_influx = config.store.backend == "influxdb"
    try:
        return StoreWriter(store, config.store.spool.path, config.store.spool.max_bytes,
                           batch_size=influx.batch_size if is_influx else 5000,
                           flush_interval_s=influx.flush_interval_s if is_influx else 1.0)
    except OSError as exc:  # a path the process cannot create or write: a clear error, exit 2
        from dcim.config import ConfigError

        where = exc.filename or config.store.spool.path
        raise ConfigError([("store.spool.path", f"cannot use spool directory {where}: {_os_reason(exc)}")],
                          "store") from None
