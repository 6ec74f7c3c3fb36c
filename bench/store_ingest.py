"""Store ingest and query benchmark; prints ratios against its anchors.

1. InfluxDB: our writer (StoreWriter over InfluxStore: validate, serialise, batch, POST)
   in points/s, as a ratio of the raw-HTTP ceiling: plain line-protocol POSTs of the same
   points serialised beforehand, same batch size, same server. Target >= 0.9.
2. SQLite ingest of 6-field gpu points via SqliteStore.write. Target >= 200,000 points/s.
3. 1-minute means of 100 series over 1 hour, on SQLite and on InfluxDB. Target <= 50 ms.

Starts its own influxd on a free loopback port (launcher shared with the tests) and removes
it at the end. Usage: ``.venv/bin/python bench/store_ingest.py [--points N] [--batch N]``.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._influxd import InfluxdProcess  # noqa: E402
from dcim.metrics import Point  # noqa: E402
from dcim.store import lineprotocol  # noqa: E402
from dcim.store.influx import InfluxStore  # noqa: E402
from dcim.store.writer import StoreWriter  # noqa: E402

T0_NS = 1_700_000_000 // 3600 * 3600 * 1_000_000_000  # an hour boundary (UTC ns)


def gpu_points(n_gpus: int, n_samples: int, interval_s: float, t0_ns: int = T0_NS) -> list[Point]:
    """*n_gpus* × *n_samples* gpu points with 6 fields; one tags dict per GPU, as collectors do."""
    tags = [{"site": "bench", "room": "r1", "rack": f"a{g // 32:02d}", "host": f"h{g // 8:04d}",
             "gpu": str(g % 8), "uuid": f"GPU-{g:06d}", "model": "NVIDIA H100 80GB HBM3"} for g in range(n_gpus)]
    step_ns = int(interval_s * 1e9)
    out = []
    for s in range(n_samples):
        t = t0_ns + s * step_ns
        for g, tg in enumerate(tags):
            x = (g * 31 + s * 7) % 1000
            out.append(Point("gpu", tg, {"power_w": 300.0 + x / 10, "temp_c": 40.0 + x / 100,
                                         "util_pct": x / 10, "energy_j": 1e9 + s * 3000.0 + g,
                                         "mem_used_bytes": 10**10 + x, "pstate": x % 3}, t))
    return out


def raw_http_ceiling(url: str, db: str, bodies: list[bytes]) -> float:
    """Seconds to POST ready-made line-protocol bodies on one keep-alive connection."""
    parsed = urllib.parse.urlsplit(url)
    InfluxStore(url, db).ensure_database()
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    path = "/write?" + urllib.parse.urlencode({"db": db, "precision": "ns"})
    start = time.perf_counter()
    for body in bodies:
        conn.request("POST", path, body=body, headers={"Content-Type": "text/plain; charset=utf-8"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"raw write failed: HTTP {resp.status}")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def our_writer(url: str, db: str, points: list[Point], batch: int, spool_dir: Path, gzip: bool) -> float:
    """Seconds for StoreWriter to accept *points* (in collector-sized chunks) and flush them all."""
    store = InfluxStore(url, db, batch_size=batch, gzip=gzip)
    store.ensure_database()
    writer = StoreWriter(store, spool_dir, batch_size=batch, flush_interval_s=1.0)
    start = time.perf_counter()
    for i in range(0, len(points), 1000):
        writer.write(points[i:i + 1000])
    writer.close()
    elapsed = time.perf_counter() - start
    stats = writer.stats()
    if stats["written"] != len(points):
        raise RuntimeError(f"writer did not write everything: {stats}")
    store.close()
    return elapsed


def time_query(store, start_ns: int, end_ns: int, repeats: int = 7) -> tuple[float, int]:
    """Median milliseconds of 1-minute means of power_w per GPU over [start, end)."""
    times = []
    n = 0
    for _ in range(repeats):
        t = time.perf_counter()
        series = store.query("gpu", ["power_w"], start_ns, end_ns, every_s=60, group_by=["uuid"])
        times.append((time.perf_counter() - t) * 1000)
        n = sum(len(s.times_ns) for s in series)
    return statistics.median(times), n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=200_000, help="points per InfluxDB ingest run")
    ap.add_argument("--sqlite-points", type=int, default=300_000, help="points for the SQLite ingest run")
    ap.add_argument("--batch", type=int, default=5000, help="points per HTTP POST")
    ap.add_argument("--rounds", type=int, default=3, help="alternating raw/ours rounds (best of)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    rows = []
    with tempfile.TemporaryDirectory(prefix="dcim-bench-") as tmp, InfluxdProcess(root=Path(tmp) / "influxd",
                                                                   snapshot_cold_s=2) as server:
        tmp = Path(tmp)
        n_gpus = 1000
        points = gpu_points(n_gpus, max(1, args.points // n_gpus), 5.0)
        bodies = [lineprotocol.to_body(points[i:i + args.batch]) for i in range(0, len(points), args.batch)]

        # Alternate raw and ours, fresh database each, so server warm-up and growth hit both alike.
        raw_s, ours_s, ours_gz_s = [], [], []
        for r in range(args.rounds):
            raw_s.append(raw_http_ceiling(server.url, f"raw{r}", bodies))
            ours_s.append(our_writer(server.url, f"ours{r}", points, args.batch, tmp / f"spool{r}", gzip=False))
            ours_gz_s.append(our_writer(server.url, f"oursgz{r}", points, args.batch, tmp / f"spoolgz{r}", gzip=True))
        raw_pps = len(points) / min(raw_s)
        ours_pps = len(points) / min(ours_s)
        ours_gz_pps = len(points) / min(ours_gz_s)
        rows.append(("InfluxDB raw-HTTP ceiling (plain LP POSTs)", f"{raw_pps:,.0f} points/s", "anchor", ""))
        rows.append(("InfluxDB StoreWriter, gzip off / raw", f"{ours_pps:,.0f} points/s",
                     f"{ours_pps / raw_pps:.2f} (>= 0.90)", "PASS" if ours_pps / raw_pps >= 0.9 else "FAIL"))
        rows.append(("InfluxDB StoreWriter, gzip on / raw", f"{ours_gz_pps:,.0f} points/s",
                     f"{ours_gz_pps / raw_pps:.2f} (info)", ""))

        # SQLite ingest.
        from dcim.store.sqlite import SqliteStore

        sq_points = gpu_points(n_gpus, max(1, args.sqlite_points // n_gpus), 5.0)
        sqlite = SqliteStore(tmp / "ingest.sqlite")
        start = time.perf_counter()
        for i in range(0, len(sq_points), args.batch):
            sqlite.write(sq_points[i:i + args.batch])
        sqlite_pps = len(sq_points) / (time.perf_counter() - start)
        sqlite.close()
        rows.append(("SQLite ingest, 6-field gpu points", f"{sqlite_pps:,.0f} points/s",
                     f"{sqlite_pps / 200_000:.2f} x 200,000", "PASS" if sqlite_pps >= 200_000 else "FAIL"))

        # 1-minute means of 100 series over 1 hour (a sample every 5 s: 72,000 points).
        hour = gpu_points(100, 720, 5.0)
        end_ns = T0_NS + 3600 * 1_000_000_000
        sq = SqliteStore(tmp / "query.sqlite")
        sq.write(hour)
        sq.maintain(now_ns=end_ns)
        sq_ms, sq_n = time_query(sq, T0_NS, end_ns)
        sq.close()
        influx = InfluxStore(server.url, "query")
        influx.write(hour)
        cache_ms, cache_n = time_query(influx, T0_NS, end_ns)  # just written: still in the write cache
        shard = server.root / "data" / "query"
        deadline = time.monotonic() + 30
        while not list(shard.rglob("*.tsm")) and time.monotonic() < deadline:
            time.sleep(0.2)  # idle 2 s, influxd snapshots the cache to a TSM file
        time.sleep(0.5)
        in_ms, in_n = time_query(influx, T0_NS, end_ns)
        influx.close()
        rows.append(("InfluxDB 1-min means, fresh (write cache)", f"{cache_ms:.1f} ms ({cache_n} buckets)",
                     f"{cache_ms / 50:.2f} x 50 ms (info)", ""))
        for name, ms, n in (("SQLite", sq_ms, sq_n), ("InfluxDB (TSM)", in_ms, in_n)):
            ok = ms <= 50 and n == 100 * 60
            rows.append((f"{name} 1-min means, 100 series x 1 h", f"{ms:.1f} ms ({n} buckets)",
                         f"{ms / 50:.2f} x 50 ms (<= 1)", "PASS" if ok else "FAIL"))

    print(f"\nstore ingest benchmark: {len(points):,} points per InfluxDB run, batch {args.batch}, "
          f"best of {args.rounds}; influxd {server.url}")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("measure", "result", "ratio (target)", "")
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0 if all(r[3] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
