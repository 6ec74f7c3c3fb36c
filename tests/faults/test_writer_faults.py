"""Every store fault the writer meets ends with every point accounted for, and none stalls
collection.

Against the real thing: a real influxd (Debian's 1.6, auth on, ``max-body-size`` small) that
answers 401, 403, 404, 413 and a partial write for real; a real socket on loopback that accepts
connections and never answers (forwarding to the influxd once the test lets it); a real full
disk (a 1-2 MiB tmpfs mounted by the test: these tests run as root; they skip where mount is
not permitted); a real read-only file system under SQLite (``sqlite3.OperationalError:
attempt to write a readonly database``).

Each test keeps its own tally of the points it generated and checks
generated == written + still spooled + counted drops + counted rejects, with the store queried
back for what it holds.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from dcim.metrics import Point
from dcim.store.influx import InfluxStore
from dcim.store.spool import Spool
from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from tests.faults.conftest import REPO, T0, dcim_env, gpu_point, run_dcim, wait_for
from tests.fixtures.influxd import InfluxdProcess

ADMIN = ("admin", "admin-pw-1")
MAX_BODY_BYTES = 64 << 10  # the server's max-body-size: a 2,000-point batch (~400 KB) is too large


# --- the real servers and disks --------------------------------------------------------------


def _query(url: str, q: str, db: str = "", auth: tuple[str, str] | None = ADMIN) -> dict:
    params = {"q": q, **({"db": db} if db else {})}
    req = urllib.request.Request(url + "/query", data=urllib.parse.urlencode(params).encode())
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def influxd(tmp_path_factory):
    """influxd with auth on, one admin user, and bodies over MAX_BODY_BYTES refused (413)."""
    server = InfluxdProcess(auth=True, root=tmp_path_factory.mktemp("influxd-writer"))
    conf = server.config_path.read_text()
    server.config_path.write_text(conf.replace("max-body-size = 0", f"max-body-size = {MAX_BODY_BYTES}"))
    try:
        server.start()
        # With no user yet, 1.x lets exactly this statement through unauthenticated.
        _query(server.url, f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES", auth=None)
        yield server
    finally:
        server.close()


def _new_db(server, *, duration: str = "") -> str:
    db = "wf_" + uuid.uuid4().hex[:8]
    _query(server.url, f'CREATE DATABASE "{db}"' + (f" WITH DURATION {duration}" if duration else ""))
    return db


def _count_in_influxd(server, db: str) -> int:
    series = _query(server.url, 'SELECT count("mem_used_bytes") FROM "gpu"', db)["results"][0].get("series", [])
    return sum(row[1] for s in series for row in s["values"])


def _store(url: str, db: str, user=ADMIN, **kw) -> InfluxStore:
    opts = dict(auth="basic", username=user[0], password=user[1], create_database=False, timeout_s=2.0,
                max_retries=1, backoff_s=0.05, max_backoff_s=0.2)
    opts.update(kw)
    return InfluxStore(url, db, **opts)


@contextmanager
def tmpfs(path: Path, size: str):
    """A real small file system at *path* (root only; skip where mount is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class HangingProxy:
    """A real TCP server on loopback. ``hang`` True: it accepts connections, reads what comes
    and never answers (an InfluxDB wedged behind a load balancer). False: it forwards each new
    connection to *upstream* (host, port)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.hang = True
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.hang:
                self._held.append(conn)
                threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()
            else:
                up = socket.create_connection(self.upstream)
                for a, b in ((conn, up), (up, conn)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _swallow(conn):
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self._sock.close()
        for c in self._held:
            c.close()


# --- the generator and the accounting ---------------------------------------------------------


class Tally:
    """Writes points through the writer at a steady rate; counts them and times each write()."""

    def __init__(self, writer: StoreWriter, point=gpu_point):
        self.writer, self.point = writer, point
        self.generated = 0
        self.max_write_s = 0.0

    def run(self, seconds: float, points_per_s: int = 2000, tick_s: float = 0.1) -> None:
        per_tick = int(points_per_s * tick_s)
        next_t = time.monotonic()
        end = next_t + seconds
        while time.monotonic() < end:
            batch = [self.point(self.generated + k) for k in range(per_tick)]
            t0 = time.monotonic()
            self.writer.write(batch)
            self.max_write_s = max(self.max_write_s, time.monotonic() - t0)
            self.generated += len(batch)
            next_t += tick_s
            time.sleep(max(0.0, next_t - time.monotonic()))


def drain(writer: StoreWriter, timeout_s: float = 30.0) -> dict:
    def empty():
        writer.flush()
        s = writer.stats()
        return s if s["spool_points"] == 0 and s["buffered"] == 0 else None
    return wait_for(empty, timeout_s, "the spool to drain", every_s=0.2)


def assert_accounted(generated: int, s: dict) -> None:
    """The figure the issue asks for: points lost without being counted = 0."""
    assert s["accepted"] == generated, s
    unaccounted = generated - (s["written"] + s["spool_points"] + s["dropped"] + s["rejected"])
    assert unaccounted == 0, (generated, s)


def _writer(store, spool: Path, **kw) -> StoreWriter:
    opts = dict(batch_size=2000, flush_interval_s=0.1, max_retry_interval_s=0.5)
    opts.update(kw)
    return StoreWriter(store, spool, **opts)


# --- InfluxDB answers that are the store's state: 401, 403, 404 -------------------------------


def test_401_then_403_spool_and_replay_once_the_user_may_write(influxd, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    db = _new_db(influxd)
    user = ("u" + db, "pw-" + db)
    store = _store(influxd.url, db, user=user)
    writer = _writer(store, tmp_path / "spool")
    tally = Tally(writer)
    try:
        tally.run(1.5)                      # no such user: 401
        writer.flush()
        after_401 = writer.stats()
        _query(influxd.url, f"CREATE USER {user[0]} WITH PASSWORD '{user[1]}'")
        tally.run(1.5)                      # a user without WRITE on the database: 403
        writer.flush()
        after_403 = writer.stats()
        _query(influxd.url, f'GRANT WRITE ON "{db}" TO {user[0]}')
        tally.run(1.0)
        stats = drain(writer)
    finally:
        writer.close()
        store.close()
    assert after_401["rejected"] == 0 and after_401["written"] == 0 and after_401["spool_points"] > 0, after_401
    assert after_403["rejected"] == 0 and after_403["written"] == 0 and after_403["spool_points"] > after_401["spool_points"]
    assert stats["rejected"] == 0 and stats["dropped"] == 0
    assert_accounted(tally.generated, stats)
    assert stats["written"] == tally.generated == _count_in_influxd(influxd, db)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("HTTP 401" in m and "spool" in m for m in messages), messages[-3:]
    assert any("HTTP 403" in m for m in messages), messages[-3:]


def test_404_database_not_found_spools_until_it_exists(influxd, tmp_path):
    db = "wf_" + uuid.uuid4().hex[:8]  # not created
    store = _store(influxd.url, db)
    writer = _writer(store, tmp_path / "spool")
    tally = Tally(writer)
    try:
        tally.run(1.5)
        writer.flush()
        during = writer.stats()
        _query(influxd.url, f'CREATE DATABASE "{db}"')
        tally.run(0.5)
        stats = drain(writer)
    finally:
        writer.close()
        store.close()
    assert during["spool_points"] > 0 and during["rejected"] == 0 and during["written"] == 0, during
    assert_accounted(tally.generated, stats)
    assert stats["written"] == tally.generated == _count_in_influxd(influxd, db)


# --- 413 and partial writes: the data's size and the data's fate, counted exactly ---------------


def test_413_splits_the_batch_and_writes_it_all(influxd, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    db = _new_db(influxd)
    # influxd 1.6 measures the body as sent: uncompressed, a 2,000-point batch is ~280 KB.
    store = _store(influxd.url, db, batch_size=2000, gzip=False)
    writer = _writer(store, tmp_path / "spool", flush_interval_s=1.0)  # full 2,000-point batches
    tally = Tally(writer)
    try:
        tally.run(2.0)
        stats = drain(writer)
    finally:
        writer.close()
        store.close()
    assert any("too large" in r.getMessage() for r in caplog.records)  # the server did say 413
    assert writer.batch_size < 2000
    assert stats["rejected"] == 0 and stats["dropped"] == 0
    assert_accounted(tally.generated, stats)
    assert stats["written"] == tally.generated == _count_in_influxd(influxd, db)


def test_partial_write_counts_only_the_points_influxd_dropped(influxd, tmp_path):
    """A database whose default retention policy keeps 1 h: influxd stores the fresh points of
    a batch and drops the old ones ("partial write: points beyond retention policy dropped=N")."""
    db = _new_db(influxd, duration="1h")
    now_ns = time.time_ns()

    def point(i: int) -> Point:  # every third point two days old
        p = gpu_point(i)
        t = now_ns - 2 * 86400 * 10**9 if i % 3 == 0 else now_ns
        return Point(p.measurement, p.tags, p.fields, t - (10**6 * (i // 64)) + i % 64)

    store = _store(influxd.url, db)
    writer = _writer(store, tmp_path / "spool", batch_size=300)  # under max-body-size: no 413 here
    tally = Tally(writer, point)
    try:
        tally.run(1.0)
        stats = drain(writer)
    finally:
        writer.close()
        store.close()
    old = sum(1 for i in range(tally.generated) if i % 3 == 0)
    assert stats["rejected"] == old > 0, stats
    assert stats["written"] == tally.generated - old == _count_in_influxd(influxd, db)
    assert_accounted(tally.generated, stats)


# --- a store that accepts connections and never answers -----------------------------------------


def test_hung_influxdb_never_stalls_write_and_loses_nothing(influxd, tmp_path):
    db = _new_db(influxd)
    proxy = HangingProxy(("127.0.0.1", influxd.http_port))
    store = _store(proxy.url, db, timeout_s=1.0, max_retries=5)
    # A small buffer, so the hang fills it within the test: write() must then spool, not wait.
    writer = _writer(store, tmp_path / "spool", batch_size=500, max_buffer_points=2000, max_block_s=0.2)
    tally = Tally(writer)
    try:
        tally.run(6.0)                       # 2,000 points/s into a store that never answers
        during = writer.stats()
        proxy.hang = False                   # the store answers again (through the same address)
        tally.run(1.0)
        stats = drain(writer)
    finally:
        writer.close()
        store.close()
        proxy.close()
    assert tally.max_write_s < 0.6, tally.max_write_s  # collection never waited on the store
    assert during["written"] == 0 and during["spool_points"] > 0, during
    assert stats["rejected"] == 0 and stats["dropped"] == 0
    assert_accounted(tally.generated, stats)
    assert stats["written"] == tally.generated == _count_in_influxd(influxd, db)


# --- full disks and a read-only SQLite file ---------------------------------------------------


def test_spool_disk_full_drops_are_counted_and_logged(influxd, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    db = _new_db(influxd)
    down = _store(f"http://127.0.0.1:{_closed_port()}", db, max_retries=0)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        writer = _writer(down, disk / "spool")  # bound 256 MiB: the disk fills long before it
        tally = Tally(writer)
        try:
            tally.run(3.0)
            writer.flush()
            full = writer.stats()
        finally:
            writer.close()
        up = _store(influxd.url, db)
        replayer = _writer(up, disk / "spool")  # what the full disk kept, replayed
        try:
            replayed = drain(replayer)
        finally:
            replayer.close()
            up.close()
    assert full["dropped"] > 0 and full["spool_points"] > 0 and full["written"] == 0, full
    assert_accounted(tally.generated, full)
    assert replayed["written"] == full["spool_points"] == _count_in_influxd(influxd, db)
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("store.spool.path" in m and "No space left on device" in m
               and f"{full['dropped']} dropped so far" in m for m in msgs), msgs[-3:]


def test_sqlite_disk_full_is_counted_not_rejected(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with tmpfs(tmp_path / "disk", "2m") as disk:
        store = SqliteStore(disk / "dcim.sqlite")
        writer = _writer(store, disk / "spool")  # the same full disk: the spool cannot help
        tally = Tally(writer)
        try:
            tally.run(3.0)
            writer.flush()
            stats = writer.stats()
        finally:
            writer.close()
            store.close()
        count = _sqlite_count(disk / "dcim.sqlite")
    assert stats["dropped"] > 0 and stats["rejected"] == 0, stats  # disk full is no fault of the data
    assert_accounted(tally.generated, stats)
    assert count == stats["written"]
    assert any("disk is full" in r.getMessage() for r in caplog.records)


def test_sqlite_disk_full_spools_on_another_disk_then_replays(tmp_path):
    """The store's disk fills under a running writer (a real sqlite3.OperationalError:
    database or disk is full); the points wait in the spool on another disk and all arrive once
    space is freed."""
    with tmpfs(tmp_path / "disk", "8m") as disk:
        store = SqliteStore(disk / "dcim.sqlite")
        writer = _writer(store, tmp_path / "spool")
        tally = Tally(writer)
        try:
            tally.run(1.0)
            writer.flush()
            filler = _fill(disk / "filler")
            tally.run(2.0)
            writer.flush()
            during = writer.stats()
            filler.unlink()                  # space again
            tally.run(0.5)
            stats = drain(writer)
        finally:
            writer.close()
            store.close()
        count = _sqlite_count(disk / "dcim.sqlite")
    assert during["spool_points"] > 0 and during["rejected"] == 0 and during["dropped"] == 0, during
    assert stats["rejected"] == 0 and stats["dropped"] == 0
    assert_accounted(tally.generated, stats)
    assert stats["written"] == tally.generated == count


def _fill(path: Path) -> Path:
    """Fill the file system holding *path* to the last byte."""
    chunk = b"\0" * (64 << 10)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return path


def test_store_files_are_private(tmp_path):
    """The store file, its -wal and -shm, and every spool file are 0600 (the directory 0700),
    whatever the umask: they hold the site's telemetry."""
    store = SqliteStore(tmp_path / "db" / "dcim.sqlite")
    spool = Spool(tmp_path / "spool", 1 << 20)
    try:
        store.write([gpu_point(0)])
        spool.append([gpu_point(1)])
        spool.append([gpu_point(2)])
        spool.peek()
        spool.pop()  # the replay position: the cursor file
        modes = {p.name: p.stat().st_mode & 0o777 for d in ("db", "spool") for p in (tmp_path / d).iterdir()}
    finally:
        spool.close()
        store.close()
    assert {"dcim.sqlite", "dcim.sqlite-wal", "dcim.sqlite-shm", "lock", "cursor"} <= set(modes), modes
    assert any(n.endswith(".spool") for n in modes), modes
    assert all(mode == 0o600 for mode in modes.values()), modes
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700


def _sqlite_count(path: Path) -> int:
    with SqliteStore(path, readonly=True) as ro:
        series = ro.query("gpu", ["mem_used_bytes"], T0 - 10**9, T0 + 10**15, agg="count")
        return int(sum(v for s in series for v in s.values["mem_used_bytes"] if v is not None))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the command line: paths it cannot use, a store that is down -------------------------------


def _config(tmp_path: Path, store: str) -> Path:
    """deploy/demo.toml with its [store] section replaced by *store*."""
    src = (REPO / "deploy" / "demo.toml").read_text()
    old = '[store]\nbackend = "sqlite"\npath = "var/dcim.sqlite"\nraw_retention_days = 7\n'
    assert old in src
    path = tmp_path / "site.toml"
    path.write_text(src.replace(old, "") + "\n" + store)
    return path


SNMP_ENV = dict(DCIM_SNMP_AUTH_KEY="auth-key-123456", DCIM_SNMP_PRIV_KEY="priv-key-123456",
                DCIM_SNMP_COMMUNITY="public")


@pytest.mark.parametrize("key", ["store.path", "store.spool.path"])
def test_unwritable_store_or_spool_path_is_a_clear_error(tmp_path, key, no_traceback):
    (tmp_path / "afile").write_text("")  # a file where a directory should be: even root cannot
    bad = tmp_path / "afile" / "sub"
    store = (f'[store]\nbackend = "sqlite"\npath = "{bad}/dcim.sqlite"\n' if key == "store.path" else
             f'[store]\nbackend = "sqlite"\npath = "{tmp_path}/dcim.sqlite"\n[store.spool]\npath = "{bad}"\n')
    done = run_dcim("collect", "--once", "--no-gpu", "--config", str(_config(tmp_path, store)),
                    env=dcim_env(**SNMP_ENV), timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    no_traceback(done.stdout + done.stderr)
    assert f"{key}:" in done.stderr and str(tmp_path / "afile") in done.stderr, done.stderr[-2000:]


def test_latest_with_the_store_down_is_a_clear_error(tmp_path, no_traceback):
    store = (f'[store]\nbackend = "influxdb"\n[store.influxdb]\nurl = "http://127.0.0.1:{_closed_port()}"\n'
             'database = "dcim"\nmax_retries = 0\n')
    done = run_dcim("latest", "gpu", "--config", str(_config(tmp_path, store)), env=dcim_env(**SNMP_ENV), timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    no_traceback(done.stdout + done.stderr)
    assert "error: cannot read gpu from the store" in done.stderr and "Connection refused" in done.stderr
