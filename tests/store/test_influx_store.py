"""InfluxStore against a real influxd 1.6.7 on loopback: the backend-agnostic contract plus
what only InfluxDB has (database creation, auth, loud 4xx, retries)."""

from __future__ import annotations

import json
import logging
import urllib.request
import uuid

import pytest

from dcim.metrics import Point
from dcim.store.base import StoreError, StoreUnavailable
from dcim.store.influx import LONG_TAG_LIST, InfluxStore, quote_ident, quote_string, where_clause
from tests.fixtures.influxd import InfluxdProcess, free_port

GPU_TAGS = {"site": "s1", "room": "r1", "rack": "a01", "host": "h1", "gpu": "0", "uuid": "GPU-1", "model": "H100"}


def _raw_query(url: str, q: str, db: str = "", auth: str | None = None) -> dict:
    data = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}).encode()
    req = urllib.request.Request(url + "/query", data=data, method="POST")
    if auth:
        req.add_header("Authorization", auth)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _databases(url: str, auth: str | None = None) -> set[str]:
    series = _raw_query(url, "SHOW DATABASES", auth=auth)["results"][0].get("series", [])
    return {row[0] for s in series for row in s.get("values", [])}


def test_creates_database_on_first_write(influxd):
    db = "created_" + uuid.uuid4().hex[:8]
    assert db not in _databases(influxd.url)
    with InfluxStore(influxd.url, db) as store:
        store.write([Point("gpu", GPU_TAGS, {"power_w": 250.0}, 1_700_000_000_000_000_000)])
        assert store.flavour == 1 and store.version.startswith("1.6")
        # idempotent: a second store on the same database creates nothing new and fails on nothing
        with InfluxStore(influxd.url, db) as again:
            again.write([Point("gpu", GPU_TAGS, {"power_w": 260.0}, 1_700_000_001_000_000_000)])
        assert db in _databases(influxd.url)
        rows = _raw_query(influxd.url, 'SELECT "power_w" FROM "gpu"', db)["results"][0]["series"][0]["values"]
        assert rows == [[1_700_000_000_000_000_000, 250], [1_700_000_001_000_000_000, 260]]
        store.execute(f"DROP DATABASE {quote_ident(db)}")


def test_recreates_database_dropped_underneath(influx_store):
    influx_store.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 10)])
    influx_store.execute(f"DROP DATABASE {quote_ident(influx_store.database)}")
    influx_store.write([Point("gpu", GPU_TAGS, {"power_w": 2.0}, 20)])
    [p] = influx_store.latest("gpu")
    assert p.fields == {"power_w": 2.0} and p.time_ns == 20


def test_create_database_false_fails_loudly_on_missing_db(influxd):
    # Loudly, with the server's message; as the store's state (StoreUnavailable: the writer
    # spools until the database exists), not the data's.
    store = InfluxStore(influxd.url, "never_" + uuid.uuid4().hex[:8], create_database=False)
    with pytest.raises(StoreUnavailable, match="database not found"):
        store.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 10)])
    store.close()


def test_4xx_is_a_loud_store_error_with_the_server_message(influx_store):
    influx_store.write([Point("gpu", GPU_TAGS, {"power_w": 1.5}, 10)])
    # A field type conflict is the classic 400: pretend power_w is a string.
    body = b'gpu,host=h1 power_w="oops" 20'
    with pytest.raises(StoreError, match="field type conflict") as err:
        influx_store.write_body(body)
    assert not isinstance(err.value, StoreUnavailable)
    with pytest.raises(StoreError, match="error parsing query"):
        influx_store.execute("SELEKT nonsense")


def test_connection_refused_is_unavailable_after_retries():
    store = InfluxStore(f"http://127.0.0.1:{free_port()}", "x", max_retries=2, backoff_s=0.01)
    with pytest.raises(StoreUnavailable, match="3 attempt"):
        store.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 10)])


def test_quote_ident_and_string_survive_the_server(influx_store):
    nasty = 'we"ird \\na\'me, =한'
    influx_store.write([Point("gpu", {**GPU_TAGS, "host": nasty}, {"power_w": 3.0}, 30)])
    [series] = influx_store.query("gpu", ["power_w"], 0, 100, group_by=["host"], where={"host": nasty})
    assert series.tags == {"host": nasty} and series.values == {"power_w": [3.0]}
    assert quote_string("a'b\\c") == "'a\\'b\\\\c'"


def test_long_tag_lists_match_exactly_what_they_name(influx_store):
    """Past LONG_TAG_LIST values a where list is sent as one regex: every value is matched
    literally and whole (regex characters, slashes, backslashes, prefixes of other values)."""
    odd = ["a.b", "a+b", "(x)", "p/q", "back\\slash", "r[1]", "^s$", "t|u", "v*", "w?", "{z}", "한.국", "pdu-1",
           "pdu-10", "pdu-100"]
    hosts = odd + [f"n{k}" for k in range(30)] + ["axb", "pdu-1000", "xpdu-1", "n", "v"]
    influx_store.write([Point("gpu", {**GPU_TAGS, "host": h}, {"power_w": float(k)}, 30) for k, h in enumerate(hosts)])
    want = odd + [f"n{k}" for k in range(0, 30, 2)]
    assert len(want) > LONG_TAG_LIST
    got = influx_store.query("gpu", ["power_w"], 0, 100, group_by=["host"], where={"host": want})
    assert sorted(s.tags["host"] for s in got) == sorted(want)
    assert "=~" in where_clause(0, 100, {"host": want}) and "=~" not in where_clause(0, 100, {"host": want[:LONG_TAG_LIST]})


def test_query_buckets_epoch_aligned_and_empty_omitted(influx_store):
    minute = 60_000_000_000
    base = 1_700_000_000 // 60 * minute  # a minute boundary
    pts = [Point("gpu", GPU_TAGS, {"power_w": v}, base + off)
           for v, off in [(100.0, 5_000_000_000), (200.0, 30_000_000_000), (400.0, 2 * minute + 1)]]
    influx_store.write(pts)
    [s] = influx_store.query("gpu", ["power_w"], base, base + 3 * minute, every_s=60)
    assert s.times_ns == [base, base + 2 * minute]  # the empty middle minute is omitted
    assert s.values["power_w"] == [150.0, 400.0]
    [s] = influx_store.query("gpu", ["power_w"], base, base + 3 * minute, agg="max")
    assert s.times_ns == [base] and s.values["power_w"] == [400.0]
    [s] = influx_store.query("gpu", ["power_w"], base, base + 3 * minute, agg="count")
    assert s.values["power_w"] == [3]


def test_latest_newest_field_values_and_times(influx_store):
    t0 = 1_700_000_000_000_000_000
    other = {**GPU_TAGS, "uuid": "GPU-2", "gpu": "1"}
    influx_store.write([
        Point("gpu", GPU_TAGS, {"power_w": 100.0, "temp_c": 40.0, "pstate": 0}, t0),
        Point("gpu", GPU_TAGS, {"power_w": 110.0}, t0 + 5),
        Point("gpu", other, {"power_w": 300.0, "mem_used_bytes": 2**40}, t0 + 3),
    ])
    got = {p.tags["uuid"]: p for p in influx_store.latest("gpu")}
    assert got["GPU-1"] == Point("gpu", GPU_TAGS, {"power_w": 110.0, "temp_c": 40.0, "pstate": 0}, t0 + 5)
    assert got["GPU-2"] == Point("gpu", other, {"power_w": 300.0, "mem_used_bytes": 2**40}, t0 + 3)
    assert type(got["GPU-1"].fields["pstate"]) is int
    only = influx_store.latest("gpu", since_ns=t0 + 4)
    assert [(p.tags["uuid"], p.fields, p.time_ns) for p in only] == [("GPU-1", {"power_w": 110.0}, t0 + 5)]
    assert influx_store.latest("gpu", where={"uuid": []}) == []


def test_batches_split_by_batch_size(influxd):
    db = "batches_" + uuid.uuid4().hex[:8]
    store = InfluxStore(influxd.url, db, batch_size=7, gzip=False)
    posts = []
    real = store.write_encoded
    store.write_encoded = lambda body, **kw: (posts.append(body.count(b"\n") + 1), real(body, **kw))
    store.write([Point("gpu", GPU_TAGS, {"power_w": float(i)}, i) for i in range(20)])
    assert posts == [7, 7, 6]
    [s] = store.query("gpu", ["power_w"], 0, 100, agg="count")
    assert s.values["power_w"] == [20]
    store.execute(f"DROP DATABASE {quote_ident(db)}")
    store.close()


def test_secrets_from_settings_never_logged_or_repr(tmp_path, caplog, influxd, monkeypatch):
    from dcim.config import InfluxSettings, SecretRef

    monkeypatch.setenv("DCIM_TEST_INFLUX_TOKEN", "s3cret-token-value")
    settings = InfluxSettings(url=influxd.url, database="tok_" + uuid.uuid4().hex[:8], auth="token",
                              token=SecretRef(env="DCIM_TEST_INFLUX_TOKEN"))
    store = InfluxStore.from_settings(settings)
    assert store._headers["Authorization"] == "Token s3cret-token-value"
    caplog.set_level(logging.DEBUG)
    store.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 1)])  # auth off on this server: header ignored
    assert "s3cret" not in repr(store) and "s3cret" not in caplog.text
    store.execute(f"DROP DATABASE {quote_ident(settings.database)}")
    store.close()


@pytest.fixture(scope="module")
def influxd_auth(tmp_path_factory):
    """A second influxd with auth-enabled = true and one admin user."""
    server = InfluxdProcess(auth=True, root=tmp_path_factory.mktemp("influxd-auth"))
    try:
        server.start()
        # With no user yet, 1.x lets exactly this statement through unauthenticated.
        _raw_query(server.url, "CREATE USER admin WITH PASSWORD 'pa ss:w\"rd' WITH ALL PRIVILEGES")
        yield server
    finally:
        server.close()


def test_basic_auth_against_auth_enabled_server(influxd_auth):
    db = "auth_" + uuid.uuid4().hex[:8]
    good = InfluxStore(influxd_auth.url, db, auth="basic", username="admin", password='pa ss:w"rd')
    good.write([Point("gpu", GPU_TAGS, {"power_w": 42.0}, 1_000)])
    [p] = good.latest("gpu")
    assert p.fields == {"power_w": 42.0}
    good.close()

    bad = InfluxStore(influxd_auth.url, db, auth="basic", username="admin", password="wrong", max_retries=0)
    # A wrong password is the store's state, not the data's: unavailable (the writer spools).
    with pytest.raises(StoreUnavailable, match="authorization failed"):
        bad.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 2_000)])
    anonymous = InfluxStore(influxd_auth.url, db, max_retries=0)
    with pytest.raises(StoreError, match="unable to parse authentication credentials|authorization"):
        anonymous.latest("gpu")


def test_a_user_who_cannot_make_the_rollup_policy_rolls_into_the_default_one(influxd_auth, caplog):
    """A non-admin user (ALL on its database only) cannot CREATE RETENTION POLICY: the rollups go
    to the default policy, one warning says so however often maintain() runs, and reads from
    the rollups equal raw reads."""
    db = "roll_" + uuid.uuid4().hex[:8]
    admin = InfluxStore(influxd_auth.url, db, auth="basic", username="admin", password='pa ss:w"rd')
    admin.ensure_database()
    user = "u" + db
    admin.execute(f"CREATE USER {user} WITH PASSWORD 'secret'", database="")
    admin.execute(f"GRANT ALL ON {db} TO {user}", database="")
    store = InfluxStore(influxd_auth.url, db, auth="basic", username=user, password="secret", create_database=False)
    raw = InfluxStore(influxd_auth.url, db, auth="basic", username=user, password="secret", create_database=False,
                      use_rollups=False)
    day = 86_400_000_000_000
    d0 = 1_780_000_000_000_000_000 // day * day
    store.write([Point("gpu", {**GPU_TAGS, "uuid": f"GPU-{g}"}, {"power_w": float(100 + g + k % 7)}, d0 + k * 600_000_000_000)
                 for g in range(2) for k in range(3 * 144)])  # three days, every 10 min
    with caplog.at_level(logging.WARNING, logger="dcim.store.influx.rollup"):
        store.maintain(d0 + 4 * day)
        store.maintain(d0 + 4 * day + 1)
    assert len([r for r in caplog.records if "cannot create retention policy" in r.getMessage()]) == 1
    [series] = admin.execute(f"SHOW RETENTION POLICIES ON {db}")[0]["series"]
    assert [row[0] for row in series["values"]] == ["autogen"]
    assert store.execute("SELECT count(power_w_n) FROM gpu_1d")[0]["series"][0]["values"][0][1] == 6
    kw = dict(every_s=86400, agg="max", group_by=("uuid",))
    got = store.query("gpu", ["power_w"], d0, d0 + 3 * day, **kw)
    assert got and [(s.tags, s.times_ns, s.values) for s in got] == \
        [(s.tags, s.times_ns, s.values) for s in raw.query("gpu", ["power_w"], d0, d0 + 3 * day, **kw)]
    for s in (store, raw, admin):
        s.close()


def test_parallel_slices_give_the_same_answer_as_one_query(influx_store):
    minute = 60_000_000_000
    base = 1_700_000_000 // 3600 * 3600 * 1_000_000_000
    pts = [Point("gpu", {**GPU_TAGS, "uuid": f"GPU-{g}"}, {"power_w": float(g * 1000 + i), "pstate": i % 3},
                 base + i * 7_000_000_000 + g) for g in range(3) for i in range(520)]  # ~1 h, odd steps
    influx_store.write(pts)
    start, end = base + 13 * 1_000_000_000, base + 59 * minute + 5  # ranges that cut buckets
    assert len(influx_store.slices(start, end, 60)) == 4
    for agg in ("mean", "max", "first", "count"):
        influx_store.parallel_queries = 4
        sliced = influx_store.query("gpu", ["power_w", "pstate"], start, end, every_s=60, agg=agg, group_by=["uuid"])
        influx_store.parallel_queries = 1
        whole = influx_store.query("gpu", ["power_w", "pstate"], start, end, every_s=60, agg=agg, group_by=["uuid"])
        assert sliced == whole and len(whole) == 3 and len(whole[0].times_ns) == 59
        assert whole[0].times_ns[0] == base  # the first bucket starts before start, at the epoch grid

class _Scripted:
    """A loopback HTTP server answering /write with scripted statuses; records each request."""

    def __init__(self, statuses: list[int], retry_after: str | None = None):
        import http.server
        import threading

        script, seen = list(statuses), []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # /ping
                self.send_response(204)
                self.send_header("X-Influxdb-Version", "3.0.0-test")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append((self.path, dict(self.headers), body))
                status = script.pop(0) if script else 204
                payload = b"" if status == 204 else json.dumps({"error": f"scripted {status}"}).encode()
                self.send_response(status)
                if retry_after and status == 429:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("version,major", [("1.6.7~rc0", 1), ("v2.7.1", 2), ("3.0.0", 3), (None, None), ("x", None)])
def test_flavour_from_ping_header(version, major):
    store = InfluxStore("http://127.0.0.1:9", "db")
    store.version = version
    assert store.flavour == major

def test_429_and_5xx_are_retried_then_succeed():
    fake = _Scripted([429, 503, 500], retry_after="0")
    try:
        store = InfluxStore(fake.url, "db", auth="token", token="tok-123", backoff_s=0.01, max_retries=3,
                            gzip=False)
        store.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 10)])
        writes = [s for s in fake.seen if s[0].startswith("/write")]
        assert len(writes) == 4  # three refusals, then the 204
        assert {w[2] for w in writes} == {writes[0][2]}  # the same body each time
        assert writes[0][1]["Authorization"] == "Token tok-123"
        assert "db=db" in writes[0][0] and "precision=ns" in writes[0][0]
        # 3.x: no CREATE DATABASE (it creates the database on first write)
        assert not any(s[0].startswith("/query") for s in fake.seen)
        assert store.flavour == 3
    finally:
        fake.close()


def test_5xx_forever_is_unavailable():
    fake = _Scripted([500] * 10)
    try:
        store = InfluxStore(fake.url, "db", backoff_s=0.01, max_retries=2)
        with pytest.raises(StoreUnavailable, match="HTTP 500: scripted 500"):
            store.write([Point("gpu", GPU_TAGS, {"power_w": 1.0}, 10)])
        assert len([s for s in fake.seen if s[0].startswith("/write")]) == 3
    finally:
        fake.close()


def test_gzip_body_is_gzip(influx_store):
    import gzip

    fake = _Scripted([])
    try:
        store = InfluxStore(fake.url, "db", gzip=True)
        store.write([Point("gpu", GPU_TAGS, {"power_w": 1.5}, 10)])
        [(_, headers, body)] = [s for s in fake.seen if s[0].startswith("/write")]
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == b"gpu,gpu=0,host=h1,model=H100,rack=a01,room=r1,site=s1,uuid=GPU-1 power_w=1.5 10"
    finally:
        fake.close()
    # and the real server takes it
    influx_store.write([Point("gpu", GPU_TAGS, {"power_w": 1.5}, 10)])
    assert influx_store.gzip and influx_store.latest("gpu")[0].fields == {"power_w": 1.5}

# --- the backend-agnostic contract ---------------------------------------------------------

from tests.store.contract import StoreContract  # noqa: E402


class TestInfluxContract(StoreContract):
    """Every contract test against the real influxd; nothing to settle (no background work)."""

    @pytest.fixture
    def store(self, influx_store):
        yield influx_store

    def settle(self, store) -> None:
        pass
