"""The InfluxDB v1 HTTP API client: connections, retries, InfluxQL statements (also in
parallel slices), line-protocol writes, raw-point queries. ``InfluxStore`` is one; the rollup
code receives one."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import tenacity

import dcim.store.lineprotocol as lineprotocol
import dcim.store.month_figures as month_figures
from dcim.metrics import Point, PointError
from dcim.store.base import Series, StoreError, StoreUnavailable, Where
from dcim.store.influx.errors import InfluxRefused, write_error
from dcim.store.influx.influxql import (
    _AGG_FUNC,
    _INT,
    _NEVER,
    column_cast,
    quote_ident,
    where_clause,
)

log = logging.getLogger(__name__)


class InfluxClient:
    """An InfluxDB server (1.x, 2.x or 3.x) via its v1 HTTP API.

    *timeout_s* bounds one HTTP exchange; *backoff_s* is the first retry delay, doubled per
    attempt up to *max_backoff_s*; *precision* (ns, us, ms, s) is the timestamp unit written;
    *timezone*: the IANA zone whose calendar months the month rollups follow (the site's).
    """

    def __init__(self, url: str, database: str, *, auth: str = "none", username: str | None = None,
                 password: str | None = None, token: str | None = None, batch_size: int = 5000,
                 gzip: bool = True, timeout_s: float = 10.0, max_retries: int = 5,
                 create_database: bool = True, precision: str = "ns", backoff_s: float = 0.2,
                 max_backoff_s: float = 5.0, gzip_level: int = 1, parallel_queries: int = 4,
                 timezone: str = "UTC"):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if precision not in lineprotocol.PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(lineprotocol.PRECISIONS)}")
        self.timezone = month_figures.check_zone(timezone)
        self.url = url.rstrip("/")
        self.database = database
        self.batch_size = batch_size
        self.gzip = gzip
        self.gzip_level = gzip_level
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.create_database = create_database
        self.precision = precision
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._base_path = parsed.path.rstrip("/")
        self._headers: dict[str, str] = {}
        if auth == "basic":
            if username is None or password is None:
                raise ValueError("basic auth needs a username and a password")
            cred = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {cred}"
        elif auth == "token":
            if not token:
                raise ValueError("token auth needs a token")
            self._headers["Authorization"] = f"Token {token}"
        elif auth != "none":
            raise ValueError(f"auth must be none, basic or token, not {auth!r}")
        self.auth = auth
        self.version: str | None = None  # from /ping's X-Influxdb-Version
        # One keep-alive connection per thread: threads never wait on each other's requests,
        # and a query can run in parallel parts (parallel_queries).
        self._local = threading.local()
        self._all_conns: list[http.client.HTTPConnection] = []
        self._lock = threading.RLock()  # the connection list and the database check
        self.parallel_queries = parallel_queries
        self._executor: ThreadPoolExecutor | None = None
        self._pipe_conn: http.client.HTTPConnection | None = None  # begin_write()'s own
        self._pipe_lock = threading.Lock()
        self._ready = False
        self._write_path = f"{self._base_path}/write?" + urllib.parse.urlencode(
            {"db": database, "precision": precision})
        # Per measurement, the oldest point this instance wrote since maintain() last ran: the
        # days of a spool replay older than the re-roll window are rolled again all the same.
        self._written_oldest: dict[str, int] = {}
        # The retention policy the rollups are written in (None: the default; rollup.find_policy).
        self.rollup_policy: str | None = None
        self.rollup_policy_warned = False

    def __repr__(self) -> str:  # never the credentials
        return f"{type(self).__name__}({self.url!r}, {self.database!r}, auth={self.auth!r})"

    # --- HTTP -----------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = kind(self._host, self._port, timeout=self.timeout_s)
            with self._lock:
                self._all_conns.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()  # http.client reconnects on the next request

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]):
        conn = self._connection()
        conn.request(method, path, body=body, headers={**self._headers, **headers})
        resp = conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self._drop_connection()
        return resp.status, resp.headers, data

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, *,
                retry_timeouts: bool = True) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One HTTP exchange with retries (tenacity: exponential backoff from backoff_s up to
        max_backoff_s, or the server's Retry-After). Returns (status, headers, body) for 2xx;
        raises StoreUnavailable when retries run out, InfluxRefused (a StoreError) on other 4xx
        (with the server's text). *retry_timeouts* False: no answer within timeout_s raises
        StoreUnavailable at once (the write path: a hung server would hang every retry too)."""
        attempts = tenacity.Retrying(stop=tenacity.stop_after_attempt(self.max_retries + 1), wait=self._retry_wait,
                                     retry=tenacity.retry_if_exception_type(_Retry), reraise=True)
        try:
            return attempts(self._attempt, method, path, body, headers or {}, retry_timeouts)
        except _Retry as exc:
            raise StoreUnavailable(f"InfluxDB {self.url} unavailable after {self.max_retries + 1} attempt(s): "
                                   f"{exc}") from None

    def _attempt(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                 retry_timeouts: bool) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One try: the answer on 2xx; _Retry where another try may succeed (no connection, 429,
        5xx); InfluxRefused on other 4xx."""
        try:
            status, resp_headers, data = self._exchange(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            if isinstance(exc, TimeoutError) and not retry_timeouts:
                raise StoreUnavailable(self._no_answer(method, path)) from None
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return status, resp_headers, data
        message = self._error_text(data)
        if status == 429 or status >= 500:
            retry_after = resp_headers.get("Retry-After", "")
            raise _Retry(f"HTTP {status}: {message}",
                         min(float(retry_after), self.max_backoff_s) if retry_after.isdigit() else None)
        raise InfluxRefused(f"InfluxDB {self.url} refused {method} {path.split('?')[0]}: HTTP {status}: {message}",
                            status)

    def _retry_wait(self, state: tenacity.RetryCallState) -> float:
        """The pause before the next try: the server's Retry-After where it sent one, else
        backoff_s doubled per try, at most max_backoff_s."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retry) and exc.wait_s is not None:
            return exc.wait_s
        return min(self.backoff_s * 2 ** (state.attempt_number - 1), self.max_backoff_s)

    def _no_answer(self, method: str, path: str) -> str:
        return f"InfluxDB {self.url} gave no answer to {method} {path.split('?')[0]} within {self.timeout_s:g} s (timeout_s)"

    @staticmethod
    def _error_text(data: bytes) -> str:
        text = data.decode("utf-8", "replace").strip()
        try:
            return str(json.loads(text).get("error", text))
        except (ValueError, AttributeError):
            return text[:500]

    def ping(self, *, retry_timeouts: bool = True) -> str | None:
        """The server's version (``X-Influxdb-Version``), or None if it sends none."""
        _, headers, _ = self.request("GET", f"{self._base_path}/ping", retry_timeouts=retry_timeouts)
        self.version = headers.get("X-Influxdb-Version")
        return self.version

    @property
    def flavour(self) -> int | None:
        """Major version (1, 2 or 3) from /ping, None if unknown."""
        major = (self.version or "").lstrip("vV").split(".")[0]  # "1.6.7~rc0", "v2.7.1", "3.0.0"
        return int(major) if major.isdigit() else None

    def execute(self, statement: str, *, database: str | None = None, retry_timeouts: bool = True) -> list[dict]:
        """Run InfluxQL (one or more statements separated by ';') and return the ``results``.
        Raises StoreError naming the statement's error."""
        params = {"q": statement, "epoch": "ns"}
        db = self.database if database is None else database
        if db:
            params["db"] = db
        _, _, data = self.request("POST", f"{self._base_path}/query",
                                  urllib.parse.urlencode(params).encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded"},
                                  retry_timeouts=retry_timeouts)
        try:
            results = json.loads(data)["results"]
        except (ValueError, KeyError) as exc:
            raise StoreError(f"InfluxDB {self.url}: unreadable query answer ({exc})") from None
        for result in results:
            if "error" in result:
                raise StoreError(f"InfluxDB {self.url}: {result['error']} (in: {statement[:300]})")
            if result.get("partial"):
                raise StoreError(f"InfluxDB {self.url}: the answer was truncated (max-row-limit?)")
        return results

    def ensure_database(self) -> None:
        """Ping, then on 1.x (or an unknown server) CREATE DATABASE (idempotent). 2.x needs the
        bucket to exist already (virtual DBRP mapping); 3.x creates it on first write."""
        # No retry on a timeout: this runs on the write path, where a hung server must cost one
        # timeout per batch (the writer spools and retries later).
        with self._lock:
            if self._ready:
                return
            self.ping(retry_timeouts=False)
            if self.create_database and self.flavour in (1, None):
                try:
                    self.execute(f"CREATE DATABASE {quote_ident(self.database)}", database="", retry_timeouts=False)
                except StoreUnavailable:
                    raise
                except StoreError as exc:
                    # A user that may write but not create databases: the database may well
                    # exist, and the write itself says if it does not (404).
                    log.warning("InfluxDB %s: could not create database %r (%s); writing anyway",
                                self.url, self.database, exc)
            log.info("InfluxDB %s (version %s), database %r ready", self.url, self.version, self.database)
            self._ready = True

    # --- writing --------------------------------------------------------------------------

    def check_point(self, point: Point) -> None:
        """Raise PointError if *point* cannot be written as line protocol (the writer calls
        this at accept time, so one bad point never sinks a batch)."""
        lineprotocol.check(point)

    def write(self, points: Sequence[Point], *, retention_policy: str | None = None) -> None:
        """``Store.write``; *retention_policy*: the policy to write into (None: the default)."""
        if not points:
            return
        for i in range(0, len(points), self.batch_size):
            self.write_encoded(self.encode(points[i:i + self.batch_size]), retention_policy=retention_policy)

    def encode(self, points: Sequence[Point]) -> bytes:
        """One ready /write body (line protocol, gzipped when enabled); StoreError if a point
        cannot be written. With write_encoded() it lets a writer serialise the next batch while
        this one is on the wire."""
        try:
            body = lineprotocol.to_body(points, self.precision)
        except PointError as exc:
            raise StoreError(f"cannot write to InfluxDB: {exc}") from None
        oldest = self._written_oldest
        with self._lock:
            for p in points:
                if p.time_ns < oldest.get(p.measurement, _NEVER):
                    oldest[p.measurement] = p.time_ns
        return gzip.compress(body, compresslevel=self.gzip_level) if self.gzip else body

    def write_encoded(self, body: bytes, *, retention_policy: str | None = None) -> None:
        """POST a body made by encode() to /write (into *retention_policy*, None: the default).
        A 4xx raises what write_error() makes of it."""
        path = self._write_path
        if retention_policy is not None:
            path += "&" + urllib.parse.urlencode({"rp": retention_policy})
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            self.ensure_database()
            try:
                self.request("POST", path, body, headers, retry_timeouts=False)
            except InfluxRefused as exc:
                if "database not found" not in str(exc) or not self.create_database:
                    raise
                # Dropped under us (or never created): create it once more, then retry.
                with self._lock:
                    self._ready = False
                self.ensure_database()
                self.request("POST", path, body, headers, retry_timeouts=False)
        except InfluxRefused as exc:
            raise write_error(exc) from None

    def begin_write(self, body: bytes):
        """Send a body made by encode() and return ``finish()``, which reads the answer.

        Between the two the caller can encode the next batch while the server works on this
        one, in the same thread: a second thread would wait up to the interpreter's switch
        interval (5 ms) for the GIL at every socket event. ``finish()`` raises like write();
        on anything but a clean 2xx it falls back to write_encoded() (retries; InfluxDB writes
        are idempotent, so a re-send cannot duplicate). Uses its own connection, so queries
        from other threads are never stuck behind a write in flight.
        """
        try:
            self.ensure_database()
        except InfluxRefused as exc:
            raise write_error(exc) from None
        headers = {**self._headers, "Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        self._pipe_lock.acquire()
        conn = self._pipe_conn
        try:
            if conn is None:
                kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                conn = self._pipe_conn = kind(self._host, self._port, timeout=self.timeout_s)
            if conn.sock is None:
                _connect_for_batches(conn)
            conn.request("POST", self._write_path, body=body, headers=headers)
            sent, timed_out = True, False
        except (OSError, http.client.HTTPException) as exc:
            sent, timed_out = False, isinstance(exc, TimeoutError)

        def finish() -> None:
            ok, no_answer = False, timed_out
            try:
                if sent and conn is not None:  # sent: conn was made
                    resp = conn.getresponse()
                    resp.read()
                    ok = 200 <= resp.status < 300
                    if resp.will_close:
                        conn.close()
            except (OSError, http.client.HTTPException) as exc:
                no_answer = isinstance(exc, TimeoutError)
            finally:
                if not ok and conn is not None:
                    conn.close()  # reconnects on the next request
                self._pipe_lock.release()
            if no_answer:  # a re-send would wait as long again: the writer spools instead
                raise StoreUnavailable(self._no_answer("POST", self._write_path))
            if not ok:
                self.write_encoded(body)

        return finish

    def write_body(self, body: bytes) -> None:
        """POST one uncompressed line-protocol body (compressed here when gzip is on)."""
        self.write_encoded(gzip.compress(body, compresslevel=self.gzip_level) if self.gzip else body)

    # --- reading --------------------------------------------------------------------------

    def query_raw(self, measurement: str, fields: list[str], start_ns: int, end_ns: int, *,
                   every_s: float | None, agg: str, group_by: Sequence[str], where: Where | None) -> list[Series]:
        """query() from raw points, arguments checked (fields: those *agg* applies to)."""
        if where_clause(start_ns, end_ns, where) is None or end_ns <= start_ns:
            return []
        func = _AGG_FUNC[agg]
        select = ", ".join(f"{func}({quote_ident(f)}) AS {quote_ident(f)}" for f in fields)
        groups = []
        if every_s is not None:
            groups.append(f"time({int(round(every_s * 1e9))}ns)")
        groups += [quote_ident(t) for t in group_by]
        tail = (" GROUP BY " + ", ".join(groups) if groups else "") + " fill(none)"

        def statement(lo: int, hi: int) -> str:
            return (f"SELECT {select} FROM {quote_ident(measurement)} WHERE "
                    f"{where_clause(lo, hi, where)}{tail}")

        answers = self.execute_slices(statement, start_ns, end_ns, every_s)
        merged: dict[tuple, Series] = {}
        casts = [column_cast(measurement, f, agg) for f in fields]
        for series in (s for answer in answers for s in answer):
            tags = {t: (series.get("tags") or {}).get(t, "") for t in group_by}
            rows = series["values"]
            if not rows:
                continue
            index = {c: i for i, c in enumerate(series["columns"])}
            key = tuple(tags[t] for t in group_by)
            result = merged.get(key)  # slices come back in time order: append
            if result is None:
                result = merged[key] = Series(tags=tags, values={f: [] for f in fields})
            # Column-wise: one list comprehension per column, no call per value.
            cols = [[r[i] for r in rows] if i is not None else [None] * len(rows)
                    for i in (index.get(f) for f in fields)]
            if any(None in c for c in cols):
                keep = [k for k, vs in enumerate(zip(*cols)) if vs.count(None) != len(vs)]
                if len(keep) < len(rows):  # buckets with nothing in them
                    rows = [rows[k] for k in keep]
                    cols = [[c[k] for k in keep] for c in cols]
            # One bucket for the whole range starts at start_ns, whatever time a selector reports.
            if every_s is not None:
                times = [r[0] for r in rows]
                if not _INT.issuperset(map(type, times)):
                    times = [int(t) for t in times]
                result.times_ns += times
            else:
                result.times_ns += [int(start_ns)] * len(rows)
            for f, col, cast in zip(fields, cols, casts):
                result.values[f] += cast(col)
        return [merged[k] for k in sorted(merged) if merged[k].times_ns]

    def execute_slices(self, statement, start_ns: int, end_ns: int, every_s: float | None) -> list[list[dict]]:
        """Run ``statement(lo, hi)`` (one SELECT) over the _slices() of [start, end), in parallel
        where there are several; the answers' series lists, in time order."""
        return self.execute_many([statement(lo, hi) for lo, hi in self.slices(start_ns, end_ns, every_s)])

    def execute_many(self, statements: list[str]) -> list[list[dict]]:
        """Run single SELECTs on up to parallel_queries threads (a connection each); their
        series lists, in order. Never call it from those threads (they would wait on themselves)."""
        return [r[0].get("series", []) for r in self.map(self.execute, statements)]

    def map(self, fn, items) -> list:
        """``[fn(x) for x in items]`` on up to parallel_queries threads (a connection each), in
        order. *fn* must not call _map itself: the threads would wait on each other."""
        return list(self.imap(fn, items))

    def imap(self, fn, items) -> Iterator:
        """_map()'s results as they come, in order (a caller can work on one while the threads
        compute the next)."""
        items = list(items)
        if len(items) < 2 or self.parallel_queries < 2:
            return map(fn, items)
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.parallel_queries, "dcim-influx-query")
        return self._executor.map(fn, items)


    def slices(self, start_ns: int, end_ns: int, every_s: float | None) -> list[tuple[int, int]]:
        """[start, end) cut at bucket boundaries into up to parallel_queries slices, so no
        bucket is split; one slice when there are too few buckets to gain anything."""
        if every_s is None or self.parallel_queries < 2:
            return [(start_ns, end_ns)]
        every_ns = int(round(every_s * 1e9))
        first = start_ns - start_ns % every_ns
        n_buckets = -(-(end_ns - first) // every_ns)
        if n_buckets < 4 * self.parallel_queries:
            return [(start_ns, end_ns)]
        per = -(-n_buckets // self.parallel_queries)
        cuts = [first + k * per * every_ns for k in range(1, self.parallel_queries)]
        edges = [start_ns] + [c for c in cuts if start_ns < c < end_ns] + [end_ns]
        return list(zip(edges, edges[1:]))

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            for conn in self._all_conns:
                conn.close()
            self._all_conns.clear()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None
        # A writer may still hold a batch in flight; do not wait on it forever.
        locked = self._pipe_lock.acquire(timeout=self.timeout_s)
        try:
            if self._pipe_conn is not None:
                self._pipe_conn.close()
                self._pipe_conn = None
        finally:
            if locked:
                self._pipe_lock.release()


class _Retry(Exception):
    """A try that failed in a way another may not (no connection, 429, 5xx); *wait_s*: the
    server's Retry-After, if it sent one."""

    def __init__(self, reason: str, wait_s: float | None = None):
        super().__init__(reason)
        self.wait_s = wait_s


def _connect_for_batches(conn: http.client.HTTPConnection) -> None:
    """Connect *conn* with room for a whole batch in the kernel, so the send is one call (each
    blocking call costs a wait for the GIL when other threads are busy)."""
    conn.connect()
    if conn.sock is not None:  # connect() sets it
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
