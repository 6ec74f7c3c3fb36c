"""InfluxDB over the v1 HTTP API: line protocol to ``/write``, InfluxQL to ``/query``.

That one dialect is served by InfluxDB 1.x, 2.x (v1 compatibility) and 3.x, see
/work/shared/reference/influxdb-apis.md. stdlib ``http.client``, one keep-alive connection
per thread (so one store can be shared by threads), plus one for begin_write().

Failures: connection errors, 429 and 5xx are retried with exponential backoff and end in
:class:`StoreUnavailable`; any other 4xx raises :class:`StoreError` with the server's message
at once. Writes are idempotent in InfluxDB (same series and time overwrite), so retrying a
write whose answer was lost cannot duplicate data.

Writes sort the 4xx answers by whose fault they are. 401, 403 and 404 (database not found)
are the server's state, not the data's: they raise :class:`StoreRefusing` (a
StoreUnavailable: the writer spools and retries). 413 raises :class:`WriteTooLarge` (split the
batch and retry). A 400 ``partial write: ... dropped=N`` raises :class:`PartialWrite` with N,
the only points refused. A write that gets no answer within *timeout_s* is not retried here:
it raises StoreUnavailable at once, so a server that accepts connections and never answers
holds the writer one timeout per batch, not one per retry.
"""

from __future__ import annotations

import base64
import functools
import gzip
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

from dcim.metrics import MEASUREMENTS, Point, PointError
from dcim.store import lineprotocol, month_figures
from dcim.store.base import (AGGREGATES, Aggregate, BucketStats, CounterDays, Series, Store, StoreError,
                             StoreUnavailable, Where, check_bucket_stats, check_query, check_tags, measurement_spec)

log = logging.getLogger(__name__)

_AGG_FUNC = {a: a.upper() for a in AGGREGATES}
_NUMERIC_AGGS = frozenset({"mean", "max", "min", "sum"})
_NEVER = 1 << 63  # later than any time_ns


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(text: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def where_clause(start_ns: int | None, end_ns: int | None, where: Where | None) -> str | None:
    """``time >= a AND time < b AND (tag = 'x' OR tag = 'y') ...``; None when *where* names an
    empty list of accepted values (nothing can match)."""
    terms = []
    if start_ns is not None:
        terms.append(f"time >= {int(start_ns)}")
    if end_ns is not None:
        terms.append(f"time < {int(end_ns)}")
    for key, want in sorted((where or {}).items()):
        values = [want] if isinstance(want, str) else list(want)
        if not values:
            return None
        if len(values) > LONG_TAG_LIST:
            # One anchored alternation: InfluxDB 1.x plans a long OR list term by term (2,000
            # PDUs: 1.9 s for an hour of data), a regex it matches once per tag value (0.4 s).
            alternatives = "|".join(_regex_literal(v) for v in sorted(set(values)))
            terms.append(f"{quote_ident(key)} =~ /^(?:{alternatives})$/")
            continue
        ors = " OR ".join(f"{quote_ident(key)} = {quote_string(v)}" for v in values)
        terms.append(f"({ors})" if len(values) > 1 else ors)
    return " AND ".join(terms)


LONG_TAG_LIST = 20


def _regex_literal(text: str) -> str:
    """*text* matched literally inside an InfluxQL regex (Go RE2 syntax between slashes)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$/" else c for c in text)


def _coerce(measurement: str, field: str, value, agg: str | None = None):
    """JSON numbers back to the contract's type: InfluxDB writes 300.0 as ``300``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if agg == "count":
        return int(value)
    spec = MEASUREMENTS.get(measurement)
    kind = spec.fields[field].kind if spec is not None and field in spec.fields else None
    if agg == "mean" or kind is float:
        return float(value)
    if kind is int:
        return int(value)
    return value


_INT = frozenset({int})
_NONE = type(None)


def _column_cast(measurement: str, field: str, agg: str):
    """A column of JSON values -> the contract's types, as _coerce does value by value, but
    one pass when the column's types already fit (a set of types, built in C)."""
    spec = MEASUREMENTS.get(measurement)
    kind = spec.fields[field].kind if spec is not None and field in spec.fields else None
    if agg == "count":
        target = int
    elif agg == "mean" or kind is float:
        target = float
    elif kind is int:
        target = int
    else:
        target = None
    if target is None:
        return list
    fits = frozenset({target, _NONE, bool, str})  # None, bool and str pass through _coerce untouched
    other = float if target is int else int  # JSON has no other number type

    def cast(col: list) -> list:
        if fits.issuperset(map(type, col)):
            return col
        return [target(v) if type(v) is other else v for v in col]

    return cast


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


class InfluxStore(Store):
    """The store on an InfluxDB server (1.x, 2.x or 3.x) via its v1 HTTP API.

    *timeout_s* bounds one HTTP exchange; *backoff_s* is the first retry delay, doubled per
    attempt up to *max_backoff_s*; *precision* (ns, us, ms, s) is the timestamp unit written.
    *use_rollups*: read the daily rollups maintain() writes where they give the raw answer
    (``dcim.store.influx_rollup``); *reroll_days*: how many days before the newest rolled one
    maintain() rolls again, for late points; *timezone*: the IANA zone whose calendar months
    the month rollups follow (the site's: its reports are quarters and months of that zone).
    """

    def __init__(self, url: str, database: str, *, auth: str = "none", username: str | None = None,
                 password: str | None = None, token: str | None = None, batch_size: int = 5000,
                 gzip: bool = True, timeout_s: float = 10.0, max_retries: int = 5,
                 create_database: bool = True, precision: str = "ns", backoff_s: float = 0.2,
                 max_backoff_s: float = 5.0, gzip_level: int = 1, parallel_queries: int = 4,
                 use_rollups: bool = True, reroll_days: int = 2, timezone: str = "UTC"):
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
        self.use_rollups = use_rollups
        self.reroll_days = reroll_days
        # Per measurement, the oldest point this instance wrote since maintain() last ran: the
        # days of a spool replay older than the re-roll window are rolled again all the same.
        self._written_oldest: dict[str, int] = {}
        # Which days the rollups hold, per measurement (influx_rollup.read_state), and when read;
        # the retention policy they are in (None: the default; influx_rollup.find_policy).
        self.rollup_policy: str | None = None
        self.rollup_policy_warned = False
        self._rollup_state: dict[str, influx_rollup.Rolled] | None = None
        self._rollup_state_at = 0.0

    @classmethod
    def from_settings(cls, settings, timezone: str = "UTC") -> "InfluxStore":
        """From :class:`dcim.config.InfluxSettings` and the site's *timezone*; secrets are read
        here, never logged."""
        from dcim.config import read_secret

        return cls(settings.url, settings.database, auth=settings.auth, username=settings.username,
                   password=read_secret(settings.password, "store.influxdb.password"),
                   token=read_secret(settings.token, "store.influxdb.token"),
                   batch_size=settings.batch_size, gzip=settings.gzip, timeout_s=settings.timeout_s,
                   max_retries=settings.max_retries, create_database=settings.create_database,
                   timezone=timezone)

    def __repr__(self) -> str:  # never the credentials
        return f"InfluxStore({self.url!r}, {self.database!r}, auth={self.auth!r})"

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
        """One HTTP exchange with retries. Returns (status, headers, body) for 2xx; raises
        StoreUnavailable when retries run out, InfluxRefused (a StoreError) on other 4xx (with
        the server's text). *retry_timeouts* False: no answer within timeout_s raises
        StoreUnavailable at once (the write path: a hung server would hang every retry too)."""
        headers = headers or {}
        delay_s = self.backoff_s
        wait_s = None  # the server's Retry-After, for the next attempt only
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(delay_s if wait_s is None else wait_s)
                delay_s, wait_s = min(delay_s * 2, self.max_backoff_s), None
            try:
                status, resp_headers, data = self._exchange(method, path, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                if isinstance(exc, TimeoutError) and not retry_timeouts:
                    raise StoreUnavailable(self._no_answer(method, path)) from None
                last = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= status < 300:
                return status, resp_headers, data
            message = self._error_text(data)
            if status == 429 or status >= 500:
                last = f"HTTP {status}: {message}"
                retry_after = resp_headers.get("Retry-After", "")
                if retry_after.isdigit():
                    wait_s = min(float(retry_after), self.max_backoff_s)
                continue
            raise InfluxRefused(f"InfluxDB {self.url} refused {method} {path.split('?')[0]}: "
                                f"HTTP {status}: {message}", status)
        raise StoreUnavailable(f"InfluxDB {self.url} unavailable after {self.max_retries + 1} attempt(s): {last}")

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
                conn.connect()
                # Room for a whole batch in the kernel, so the send is one call (each blocking
                # call costs a wait for the GIL when other threads are busy).
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
            conn.request("POST", self._write_path, body=body, headers=headers)
            sent, timed_out = True, False
        except (OSError, http.client.HTTPException) as exc:
            sent, timed_out = False, isinstance(exc, TimeoutError)

        def finish() -> None:
            ok, no_answer = False, timed_out
            try:
                if sent:
                    resp = conn.getresponse()
                    resp.read()
                    ok = 200 <= resp.status < 300
                    if resp.will_close:
                        conn.close()
            except (OSError, http.client.HTTPException) as exc:
                no_answer = isinstance(exc, TimeoutError)
            finally:
                if not ok:
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

    def query(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int, *,
              every_s: float | None = None, agg: Aggregate = "mean", group_by: Sequence[str] = (),
              where: Where | None = None) -> list[Series]:
        """``Store.query``. Buckets of whole UTC days read the daily rollups for the days they
        hold (``dcim.store.influx_rollup``), raw points for the rest; all else reads raw points."""
        spec, fields = check_query(measurement, fields, agg, group_by, where)
        if every_s is not None and int(round(every_s * 1e9)) <= 0:
            raise StoreError(f"every_s must be positive, got {every_s}")
        if agg in _NUMERIC_AGGS:  # strings have no mean, max, min or sum
            fields = [f for f in fields if spec.fields[f].kind is not str]
            if not fields:
                return []
        start_ns, end_ns = int(start_ns), int(end_ns)
        if where_clause(start_ns, end_ns, where) is None or end_ns <= start_ns:
            return []
        self.ensure_database()
        every_ns = None if every_s is None else int(round(every_s * 1e9))
        if every_ns is not None and every_ns % influx_rollup.DAY_NS == 0 and all(
                spec.fields[f].kind in (int, float) for f in fields):  # bool and str have no rollups
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None:
                return influx_rollup_reads.query(self, spec, fields, start_ns, end_ns, every_ns, agg, list(group_by),
                                           where, days)
        return self._query_raw(measurement, fields, start_ns, end_ns, every_s=every_s, agg=agg,
                               group_by=group_by, where=where)

    def _query_raw(self, measurement: str, fields: list[str], start_ns: int, end_ns: int, *,
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

        answers = self._execute_slices(statement, start_ns, end_ns, every_s)
        merged: dict[tuple, Series] = {}
        casts = [_column_cast(measurement, f, agg) for f in fields]
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

    def _execute_slices(self, statement, start_ns: int, end_ns: int, every_s: float | None) -> list[list[dict]]:
        """Run ``statement(lo, hi)`` (one SELECT) over the _slices() of [start, end), in parallel
        where there are several; the answers' series lists, in time order."""
        return self._execute_many([statement(lo, hi) for lo, hi in self._slices(start_ns, end_ns, every_s)])

    def _execute_many(self, statements: list[str]) -> list[list[dict]]:
        """Run single SELECTs on up to parallel_queries threads (a connection each); their
        series lists, in order. Never call it from those threads (they would wait on themselves)."""
        return [r[0].get("series", []) for r in self._map(self.execute, statements)]

    def _map(self, fn, items) -> list:
        """``[fn(x) for x in items]`` on up to parallel_queries threads (a connection each), in
        order. *fn* must not call _map itself: the threads would wait on each other."""
        return list(self._imap(fn, items))

    def _imap(self, fn, items) -> Iterator:
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

    def bucket_stats(self, measurement: str, field: str, start_ns: int, end_ns: int, every_s: float, *,
                     group_by: Sequence[str] = (), where: Where | None = None,
                     combine: str = "sum") -> dict[tuple, BucketStats]:
        """``Store.bucket_stats`` of hourly buckets from the rollups (``dcim.store.influx_rollup``),
        the first that serves, in an order per kind of read (below) of: single-series groups
        over whole local months from the month packs; power or utilisation per tag, summed or
        each (a rack's PDUs, a rack's GPU-hours), from the days' group rows (a row per group and
        day); single-series groups (or ``each``) from the rolled days' hourly summaries and raw
        hours only at the edges, one row per series coming back; else the default."""
        spec = check_bucket_stats(measurement, field, every_s, combine, group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if int(round(every_s * 1e9)) == influx_rollup.HOUR_NS and spec.fields[field].kind in (int, float):
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None:
                rolled = self._rollup_state[measurement]
                args = (self, spec, field, start_ns, end_ns, list(group_by), where, combine, days)
                grouped = functools.partial(influx_rollup_reads.grouped_bucket_stats, *args, rolled)
                per_series = functools.partial(influx_rollup_reads.bucket_stats, *args)

                def months():
                    if self._rolled_months(spec, [field], start_ns, end_ns):
                        found = influx_rollup_reads.month_period_figures(self, spec, start_ns, end_ns, group_by,
                                                                         where, hourly=[field], combine=combine)
                        return None if found is None else found[1][field]

                # A rack's GPU-hours (each): its group rows before each GPU's months. Groups by tags
                # (a PDU's power per pdu): the months (they refuse groups of several series). One
                # group of all the series a where picks (a tenant's PDUs): never the months.
                tries = ((grouped, months, per_series) if combine == "each" else
                         (months, grouped, per_series) if group_by else (grouped, per_series))
                for read in tries:
                    stats = read()
                    if stats is not None:
                        return stats
        return super().bucket_stats(measurement, field, start_ns, end_ns, every_s, group_by=group_by, where=where,
                                    combine=combine)

    def counter_days(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                     group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, CounterDays]:
        """``Store.counter_days``: the rolled days from one read of the daily rows, the rest from
        one read of raw points per piece (``dcim.store.influx_rollup_reads.counter_days``)."""
        spec, _ = check_query(measurement, [field], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if spec.fields[field].kind in (int, float):
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None:
                return influx_rollup_reads.counter_days(self, spec, field, start_ns, end_ns, list(group_by), where, days)
        return super().counter_days(measurement, field, start_ns, end_ns, group_by=group_by, where=where)

    def counter_increase(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                         group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, tuple[float, int]]:
        """``Store.counter_increase``: whole local months from the month packs; else the rolled
        days from one aggregate row per series (their increases and junctions kept by
        maintain()), the rest per day from raw points
        (``dcim.store.influx_rollup_reads.counter_increase``); else the default."""
        spec, _ = check_query(measurement, [field], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if spec.fields[field].counter:
            days = self._rolled_days(measurement, start_ns, end_ns, where)
            if days is not None and self._rolled_months(spec, [field], start_ns, end_ns):
                found = influx_rollup_reads.month_period_figures(self, spec, start_ns, end_ns, group_by, where,
                                                                 counters=[field])
                if found is not None:
                    return found[0][field]
            if days is not None:
                found = influx_rollup_reads.counter_increase(self, spec, field, start_ns, end_ns, list(group_by), where, days)
                if found is not None:
                    return found
        return super().counter_increase(measurement, field, start_ns, end_ns, group_by=group_by, where=where)

    def _rolled_days(self, measurement: str, start_ns: int, end_ns: int,
                     where: Where | None) -> tuple[int, int] | None:
        """The whole days [a, b) of [start, end) that the daily rollups hold, or None (none, an
        empty range, or a *where* nothing can match). Which days are rolled is read at most
        every STATE_TTL_S (maintain() refreshes it): a day rolled since reads raw meanwhile,
        which gives the same answer, slower."""
        if not self.use_rollups or end_ns <= start_ns or where_clause(start_ns, end_ns, where) is None:
            return None
        self.ensure_database()
        if self._rollup_state is None or time.monotonic() - self._rollup_state_at > influx_rollup.STATE_TTL_S:
            self.rollup_policy = influx_rollup.find_policy(self, create=False)
            state = influx_rollup.read_state(self)
            with self._lock:
                self._rollup_state, self._rollup_state_at = state, time.monotonic()
        return influx_rollup.rolled_days(self._rollup_state, measurement, start_ns, end_ns)

    def period_figures(self, measurement: str, start_ns: int, end_ns: int, *, counters: Sequence[str] = (),
                       hourly: Sequence[str] = (), group_by: Sequence[str] = (), where: Where | None = None
                       ) -> tuple[dict[str, dict[tuple, tuple[float, int]]], dict[str, dict[tuple, BucketStats]]]:
        """``Store.period_figures``: over whole months of the store's zone, one read of the month
        rollups for every field; else a call per field."""
        spec = measurement_spec(measurement)
        for f in (*counters, *hourly):
            check_query(measurement, [f], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if (self._rolled_days(measurement, start_ns, end_ns, where) is not None
                and self._rolled_months(spec, [*counters, *hourly], start_ns, end_ns)
                and all(spec.fields[f].counter for f in counters)):
            found = influx_rollup_reads.month_period_figures(self, spec, start_ns, end_ns, group_by, where, counters,
                                                             hourly)
            if found is not None:
                return found
        return super().period_figures(measurement, start_ns, end_ns, counters=counters, hourly=hourly,
                                      group_by=group_by, where=where)

    def _rolled_months(self, spec, fields: Sequence[str], start_ns: int, end_ns: int) -> bool:
        """True where [start, end) is whole months of the store's zone that the month rollups
        hold for every one of *fields* (call after _rolled_days, which reads the state)."""
        hour_fields, counter_fields = month_figures.month_fields(spec)
        rolled = self._rollup_state.get(spec.name)
        if not (all(f in hour_fields or f in counter_fields for f in fields)
                and influx_rollup.rolled_months(rolled, self.timezone, start_ns, end_ns)):
            return False
        held = influx_rollup.months_held(rolled, start_ns)
        if held is None:  # held if no raw point lies before the first rolled day
            return not any(self.execute(f"SELECT {quote_ident(f)} FROM {quote_ident(spec.name)} WHERE "
                                        f"{where_clause(start_ns, rolled.from_ns, None)} LIMIT 1")[0].get("series")
                           for f in fields)
        return held

    def maintain(self, now_ns: int | None = None) -> None:
        """Roll closed UTC days into the daily rollups (``dcim.store.influx_rollup``): new days,
        and the *reroll_days* before the newest rolled one again for late points. Safe to run
        from any one process at a time, as often as wanted (a run with nothing new is cheap)."""
        with self._lock:
            written, self._written_oldest = self._written_oldest, {}
        try:
            state = influx_rollup.maintain(self, now_ns, self.reroll_days, written)
        except BaseException:
            with self._lock:  # not rolled: those days are still owed
                for m, t in written.items():
                    self._written_oldest[m] = min(t, self._written_oldest.get(m, _NEVER))
            raise
        with self._lock:
            self._rollup_state, self._rollup_state_at = state, time.monotonic()

    def _slices(self, start_ns: int, end_ns: int, every_s: float | None) -> list[tuple[int, int]]:
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

    def latest(self, measurement: str, *, where: Where | None = None,
               since_ns: int | None = None) -> list[Point]:
        spec = measurement_spec(measurement)
        check_tags(spec, list(where or {}))
        cond = where_clause(since_ns, None, where)
        if cond is None:
            return []
        self.ensure_database()
        fields = list(spec.fields)
        # One LAST() per field, all in one request: a lone selector reports the time of the
        # value it picked, which LAST(*) (several selectors) does not.
        source = quote_ident(measurement) + (f" WHERE {cond}" if cond else "")
        statements = ";".join(f"SELECT LAST({quote_ident(f)}) AS {quote_ident(f)} FROM {source} GROUP BY *"
                              for f in fields)
        merged: dict[tuple, tuple[dict, dict, list[int]]] = {}
        for field, result in zip(fields, self.execute(statements)):
            for series in result.get("series", []):
                tags = {k: v for k, v in (series.get("tags") or {}).items() if v != ""}
                key = tuple(sorted(tags.items()))
                entry = merged.setdefault(key, (tags, {}, [0]))
                for row in series["values"]:
                    if row[1] is None:
                        continue
                    entry[1][field] = _coerce(measurement, field, row[1])
                    entry[2][0] = max(entry[2][0], int(row[0]))
        points = [Point(measurement, tags, values, newest[0])
                  for _, (tags, values, newest) in sorted(merged.items()) if values]
        return points

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


# At the end: the rollup modules import this module's helpers (quote_ident, where_clause).
from dcim.store import influx_rollup, influx_rollup_reads  # noqa: E402
