"""Quarterly energy report speed on a large synthetic site, from SQLite rollups and InfluxDB.

Target: ``build_report`` for one quarter of a 1,000-rack / 32,000-GPU site (4 servers × 8 GPUs
per rack, 2 PDUs per rack, UPSes, meters) in <= 10 s per level on each backend.

The inventory is a Config built in code (no TOML). A quarter (2026Q3, Asia/Seoul) of hourly
points is generated with numpy (PDU power + energy counter, meters, UPS output power + energy,
facility total power, and per GPU util_pct + energy_j + power_w), one day per batch, and
written through the stores' own write(): SqliteStore (then maintain(): the quarter lies
beyond raw and 1-minute retention, so it is read from the 1-hour rollups, as a past quarter
is in production) and InfluxStore on an influxd the script starts (launcher shared with the
tests) and stops. Then each level is timed (best of --repeats), with its phases.

GPU points are the bulk (32,000 × 2,208 hours = 70.7 M points). ``--gpu-racks`` limits them
to the first N racks (the inventory keeps all 1,000 racks and 32,000 GPUs); the printout
says which scale was measured. Disk: SQLite needs ~0.4 GB per million GPU points (raw, 1 m
and 1 h tables), check ``df -h`` first; everything goes to a temp dir removed at the end
(``--keep DIR`` keeps it for re-runs with ``--reuse``).

``--history-days 273`` also fills the facility's devices (PDUs, UPSes, meters: what the
trailing-twelve-month PUE reads) for the rest of the year before the quarter.

A 32,000-GPU InfluxDB fill takes about 20 minutes and its first maintain() (the whole
quarter's rollups) about 45 more on 2 cores; ``--keep DIR`` keeps the stores, ``--reuse``
times them again, and ``--reuse --maintain`` finishes a fill whose maintain() was cut short
(``--reroll``: InfluxDB rolls every day again, after a change of the rollups' layout; SQLite
writes the month rows a file lacks at any maintain()). Both stores keep month rows in the
site's zone (Asia/Seoul), as ``dcim`` opens them: the quarter's three months are what a
report reads. With both backends, each level's rows from InfluxDB are compared with
SQLite's.

Usage: ``.venv/bin/python bench/report.py [--racks 1000] [--gpu-racks 1000]
[--levels site,room,rack,tenant,gpu] [--backends sqlite,influx] [--history-days 273]
[--keep DIR [--reuse [--maintain [--reroll]]]] [--profile sqlite:rack] [--micro]``
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcim.config import Config  # noqa: E402
from dcim.metrics import Point  # noqa: E402
from dcim.report import build_report, quarter  # noqa: E402

QUARTER = "2026Q3"
TZ = "Asia/Seoul"
SERVERS_PER_RACK = 4
GPUS_PER_SERVER = 8
RACKS_PER_ROW = 20
RACKS_PER_ROOM = 250
N_UPS = 8
HOUR_NS = 3600 * 10**9
TARGET_S = 10.0


def make_config(n_racks: int) -> Config:
    rooms = []
    for r0 in range(0, n_racks, RACKS_PER_ROOM):
        room = f"hall{r0 // RACKS_PER_ROOM + 1}"
        rows = []
        for w0 in range(r0, min(n_racks, r0 + RACKS_PER_ROOM), RACKS_PER_ROW):
            racks = [{"name": f"R{k:04d}", "tenant": f"t{k % 7}",
                      "server_group": {"count": SERVERS_PER_RACK, "gpus": GPUS_PER_SERVER}}
                     for k in range(w0, min(n_racks, w0 + RACKS_PER_ROW, r0 + RACKS_PER_ROOM))]
            rows.append({"name": f"{room}-row{len(rows) + 1:02d}", "racks": racks})
        rooms.append({"name": room, "rows": rows})
    return Config.model_validate({
        "site": {"name": "bench", "timezone": TZ, "grid_kgco2e_per_kwh": 0.4173, "pue_category": 2},
        "tenants": [{"name": f"t{i}"} for i in range(7)],
        "rooms": rooms,
        "pdus": [{"name": f"pdu-R{k:04d}-{f.lower()}", "rack": f"R{k:04d}", "feed": f}
                 for k in range(n_racks) for f in ("A", "B")],
        "ups": [{"name": f"ups-{i + 1}", "capacity_kw": 2000.0} for i in range(N_UPS)],
        "meters": [{"name": "main", "role": "facility_total"}, {"name": "mech", "role": "cooling"}],
    })


class Quarter:
    """Hourly synthetic values for the quarter, generated per day with numpy."""

    def __init__(self, cfg: Config, gpu_racks: int, seed: int = 7, history_days: int = 0):
        from dcim.inventory import build_inventory

        self.cfg = cfg
        self.q = quarter(QUARTER, TZ)
        self.hours = int(round(self.q.hours))
        self.history_hours = 24 * history_days  # facility devices only: the TTM reads no GPU
        inv = build_inventory(cfg)
        site = cfg.site.name
        self.pdu_tags = [inv.device_tags("pdu", p) for p in cfg.pdus]
        self.ups_tags = [inv.device_tags("ups", u) for u in cfg.ups]
        self.meter_tags = [inv.device_tags("meter", m) for m in cfg.meters]
        gpu_rack_names = {r.rack for r in inv.racks[:gpu_racks]}
        self.gpu_tags = [{**g.tags, "uuid": f"GPU-{n:08x}-bench"} for n, g in enumerate(inv.gpus)
                         if g.rack in gpu_rack_names]
        self.site_tags = {"site": site}
        rng = np.random.default_rng(seed)
        n_pdu, n_gpu = len(self.pdu_tags), len(self.gpu_tags)
        self.rng = rng
        self.pdu_base_w = rng.uniform(6000, 14000, n_pdu)
        self.pdu_kwh = rng.uniform(1e4, 5e4, n_pdu)
        self.gpu_base = rng.uniform(0.2, 0.9, n_gpu)
        self.gpu_j = rng.uniform(1e9, 5e9, n_gpu)
        self.ups_kwh = rng.uniform(1e5, 5e5, N_UPS)
        self.meter_kwh = rng.uniform(1e6, 5e6, 2)

    def days(self):
        """Yield the points of the facility's devices (all but the GPUs), a day at a time, from
        the history before the quarter (if any) to its end."""
        rng = self.rng
        for d0 in range(-self.history_hours, self.hours, 24):
            h = np.arange(d0, min(self.hours, d0 + 24))
            times = (self.q.start_ns + h * HOUR_NS).tolist()
            diurnal = 0.85 + 0.15 * np.sin(2 * np.pi * (h % 24) / 24.0)[:, None]
            pdu_w = self.pdu_base_w * diurnal * rng.uniform(0.95, 1.05, (len(h), len(self.pdu_base_w)))
            pdu_kwh = self.pdu_kwh + np.cumsum(pdu_w, axis=0) / 1000.0
            self.pdu_kwh = pdu_kwh[-1]
            it_w = pdu_w.sum(axis=1)
            ups_w = it_w[:, None] * rng.uniform(0.99, 1.01, (len(h), N_UPS)) / N_UPS
            ups_kwh = self.ups_kwh + np.cumsum(ups_w, axis=0) / 1000.0
            self.ups_kwh = ups_kwh[-1]
            cooling_w = it_w * rng.uniform(0.18, 0.28, len(h))
            fac_w = it_w * 1.06 + cooling_w
            meter_w = np.stack([fac_w, cooling_w], axis=1)
            meter_kwh = self.meter_kwh + np.cumsum(meter_w, axis=0) / 1000.0
            self.meter_kwh = meter_kwh[-1]
            pts: list[Point] = []
            add = pts.append
            pw, pk = pdu_w.round(1).tolist(), pdu_kwh.tolist()
            uw, uk = ups_w.round(1).tolist(), ups_kwh.tolist()
            mw, mk = meter_w.round(1).tolist(), meter_kwh.tolist()
            fw = fac_w.round(1).tolist()
            for i, t in enumerate(times):
                for tags, w, e in zip(self.pdu_tags, pw[i], pk[i]):
                    add(Point("pdu", tags, {"power_w": w, "energy_kwh": e}, t))
                for tags, w, e in zip(self.ups_tags, uw[i], uk[i]):
                    add(Point("ups", tags, {"output_power_w": w, "energy_kwh": e}, t))
                for tags, w, e in zip(self.meter_tags, mw[i], mk[i]):
                    add(Point("meter", tags, {"power_w": w, "energy_kwh": e}, t))
                add(Point("facility", self.site_tags, {"total_power_w": fw[i]}, t))
            yield pts

    def gpu_chunks(self, gpus_per_chunk: int = 256):
        """Yield the GPUs' points, a chunk of GPUs at a time over the whole quarter, in
        (GPU, time) order: a backfill device by device. Day by day, every day would touch
        every GPU's part of the store's (series, time) keys, and a 32,000-GPU SQLite file
        larger than the page cache then spends its time in random I/O (8,008 s to fill)."""
        h = np.arange(self.hours)
        times = (self.q.start_ns + h * HOUR_NS).tolist()
        diurnal = 0.85 + 0.15 * np.sin(2 * np.pi * (h % 24) / 24.0)[:, None]
        for g0 in range(0, len(self.gpu_tags), gpus_per_chunk):
            tags = self.gpu_tags[g0:g0 + gpus_per_chunk]
            base = self.gpu_base[g0:g0 + gpus_per_chunk]
            util = np.clip(base * diurnal + self.rng.normal(0, 0.1, (self.hours, len(tags))), 0, 1)
            gw = 90.0 + 600.0 * util
            gj = self.gpu_j[g0:g0 + gpus_per_chunk] + np.cumsum(gw * 3600.0, axis=0)
            gu, gw, gj = (util * 100).round().T.tolist(), gw.round(3).T.tolist(), gj.T.tolist()
            yield [Point("gpu", t, {"util_pct": u, "power_w": w, "energy_j": e}, ts)
                   for k, t in enumerate(tags) for ts, u, w, e in zip(times, gu[k], gw[k], gj[k])]


def fill(stores: dict, data: Quarter) -> dict[str, float]:
    """Write the quarter to every store; seconds spent in each store's write (and maintain)."""
    spent = {name: 0.0 for name in stores}
    gen = 0.0
    n = 0

    def write(pts: list[Point]) -> None:
        nonlocal n
        n += len(pts)
        for name, store in stores.items():
            t = time.perf_counter()
            for i in range(0, len(pts), 50_000):
                store.write(pts[i:i + 50_000])
            spent[name] += time.perf_counter() - t

    def progress(what: str) -> None:
        print(f"  {what}: {n:,} points, generate {gen:.0f} s, "
              + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items()), flush=True)

    t = time.perf_counter()
    for day, pts in enumerate(data.days()):
        gen += time.perf_counter() - t
        write(pts)
        t = time.perf_counter()
        if day % 30 == 0:
            progress(f"facility day {day + 1}/{-(-(data.history_hours + data.hours) // 24)}")
    chunks = -(-len(data.gpu_tags) // 256)
    t = time.perf_counter()
    for c, pts in enumerate(data.gpu_chunks(256)):
        gen += time.perf_counter() - t
        write(pts)
        t = time.perf_counter()
        if c % 10 == 0:
            progress(f"GPU chunk {c + 1}/{chunks}")
    for name, store in stores.items():
        t = time.perf_counter()
        store.flush()
        flushed = time.perf_counter()
        store.maintain()
        spent[name] += time.perf_counter() - t
        print(f"  {name}: flush {flushed - t:.0f} s, maintain (rollups) {time.perf_counter() - flushed:.0f} s", flush=True)
    print(f"  wrote {n:,} points per store; generate {gen:.0f} s; "
          + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items()), flush=True)
    return spent


def time_level(store, cfg: Config, period, by: str, repeats: int, profile: bool) -> tuple[float, list, dict]:
    best, rows, phases = float("inf"), [], {}
    for r in range(repeats):
        marks: list[tuple[str, float]] = []
        prof = cProfile.Profile() if profile and r == repeats - 1 else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        rows = build_report(store, cfg, period, by=by, progress=lambda m, marks=marks: marks.append((m, time.perf_counter())))
        if prof:
            prof.disable()
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best = elapsed
            edges = [("start", t0)] + marks + [("end", t0 + elapsed)]
            phases = {a[0]: b[1] - a[1] for a, b in zip(edges, edges[1:])}
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return best, rows, phases


def wait_compactions_idle(store, timeout_s: float = 1800.0, quiet_s: float = 10.0) -> None:
    """Wait until influxd has compacted no TSM files for *quiet_s* seconds: influxd 1.6 dies
    with SIGSEGV when DROP MEASUREMENT walks files a compaction is replacing (a restarted
    server fully compacts its cold shards first, minutes at 32,000 GPUs)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        active = sum(v or 0 for r in store.execute("SHOW STATS FOR 'tsm1_engine'")
                     for s in r.get("series", []) for row in s["values"]
                     for c, v in zip(s["columns"], row) if c.endswith("CompactionsActive"))
        if active:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(2)
    raise RuntimeError(f"influxd still compacting after {timeout_s:.0f} s")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--racks", type=int, default=1000)
    ap.add_argument("--gpu-racks", type=int, default=None, help="racks whose GPUs get points (default: all)")
    ap.add_argument("--levels", default="site,room,rack,tenant,gpu")
    ap.add_argument("--backends", default="sqlite,influx")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile", default="", help="backend:level pairs to cProfile, comma-separated")
    ap.add_argument("--keep", type=Path, default=None, help="keep the stores in this dir")
    ap.add_argument("--reuse", action="store_true", help="read the stores kept in --keep, write nothing")
    ap.add_argument("--maintain", action="store_true",
                    help="with --reuse: run maintain() on the kept stores first (finish a cut-short fill)")
    ap.add_argument("--reroll", action="store_true",
                    help="with --reuse --maintain: forget which days InfluxDB's rollups hold, so maintain() rolls "
                         "every day again (after a change of the rollups' layout)")
    ap.add_argument("--history-days", type=int, default=0,
                    help="also fill this many days before the quarter for the facility's devices (not the GPUs), "
                         "so the trailing-twelve-month PUE reads a real year (273: the rest of the year)")
    ap.add_argument("--influx-threads", type=int, default=4,
                    help="InfluxStore parallel_queries (maintain() rolls this many days at once; on 2 cores, "
                         "4 concurrent days of 32,000 GPUs outran a 120 s query timeout)")
    ap.add_argument("--micro", action="store_true",
                    help="also time the store read alone: hourly mean PDU power by pdu over the quarter")
    return ap


def _reroll(store) -> None:
    """Forget the InfluxDB rollups' state and month rows (their layout may have changed)."""
    from dcim.metrics import MEASUREMENTS
    from dcim.store.influx.layout import STATE, month_rollup_name, mtd_rollup_name

    held = {row[0] for r in store.execute("SHOW MEASUREMENTS") for s in r.get("series", []) for row in s["values"]}
    for name in [STATE] + [f(m) for m in MEASUREMENTS for f in (month_rollup_name, mtd_rollup_name)]:
        if name in held:  # each drop's tombstones start a compaction the next must wait out
            wait_compactions_idle(store)
            store.execute(f'DROP MEASUREMENT "{name}"')


def _micro(stores: dict, data, repeats: int) -> None:
    """The report's biggest single read, without the report around it."""
    for name, store in stores.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            got = store.query("pdu", ["power_w"], data.q.start_ns, data.q.end_ns, every_s=3600,
                              agg="mean", group_by=("pdu",))
            best = min(best, time.perf_counter() - t0)
        print(f"  {name:6s} query(pdu power_w, hourly mean, by pdu) {best:7.2f} s  {len(got)} series, "
              f"{sum(len(s.times_ns) for s in got):,} values", flush=True)


def _time_levels(stores: dict, cfg: Config, data, levels: list[str], repeats: int, profile: set) -> list[tuple]:
    """Each level's report on each backend, timed, with the rows compared across backends."""
    results = []
    reference: dict[str, list] = {}
    for level in levels:
        for name, store in stores.items():
            secs, rows, phases = time_level(store, cfg, data.q, level, repeats, (name, level) in profile)
            same = ""
            if level in reference:
                same = "same rows" if reference[level] == rows else "ROWS DIFFER"
                diffs = [(a["entity"], c, a[c], b[c]) for a, b in zip(reference[level], rows)
                         for c in a if a[c] != b[c]]
                for d in diffs[:5]:
                    print(f"    differs: {d}")
            else:
                reference[level] = rows
            results.append((name, level, secs, len(rows), same))
            ph = ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if v >= 0.05)
            print(f"  {name:6s} by={level:5s} {secs:7.2f} s  {len(rows):6d} rows  {same}  [{ph}]", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    gpu_racks = args.racks if args.gpu_racks is None else min(args.gpu_racks, args.racks)
    backends = [b for b in args.backends.split(",") if b]
    levels = [lv for lv in args.levels.split(",") if lv]
    profile = {tuple(p.split(":")) for p in args.profile.split(",") if p}

    cfg = make_config(args.racks)
    root = args.keep or Path(tempfile.mkdtemp(prefix="dcim-bench-report-"))
    root.mkdir(parents=True, exist_ok=True)
    server = None
    stores: dict = {}
    try:
        if "sqlite" in backends:
            from dcim.store.sqlite import SqliteStore

            stores["sqlite"] = SqliteStore(root / "bench.sqlite", timezone=TZ)
        if "influx" in backends:
            from bench._influxd import InfluxdProcess
            from dcim.store.influx import InfluxStore

            server = InfluxdProcess(root=root / "influxd", snapshot_cold_s=5).start()
            stores["influx"] = InfluxStore(server.url, "bench", batch_size=10_000, timeout_s=600,
                                           parallel_queries=args.influx_threads, timezone=TZ)
            if args.reroll:  # the state, and the month rows (their layout may have changed)
                _reroll(stores["influx"])
        data = Quarter(cfg, gpu_racks, history_days=args.history_days)
        print(f"site: {args.racks} racks, {args.racks * SERVERS_PER_RACK * GPUS_PER_SERVER:,} GPUs in the inventory, "
              f"{len(cfg.pdus)} PDUs, {N_UPS} UPSes, 2 meters; GPU points for {len(data.gpu_tags):,} GPUs "
              f"({gpu_racks} racks); {data.hours} hours ({QUARTER}, {TZ}), facility history {args.history_days} days before it",
              flush=True)
        if not args.reuse:
            fill(stores, data)
        elif args.maintain:
            for name, store in stores.items():
                t = time.perf_counter()
                store.maintain()
                print(f"  {name}: maintain (rollups) {time.perf_counter() - t:.0f} s", flush=True)
        if server is not None and (not args.reuse or args.maintain):
            time.sleep(8)  # let influxd snapshot its cache to TSM files, as in steady state
        sizes = ", ".join(f"{p.name} {sum(f.stat().st_size for f in p.rglob('*') if f.is_file()) / 1e9:.2f} GB"
                          for p in [root / "influxd"] if p.exists())
        if (root / "bench.sqlite").exists():
            sizes += f" sqlite {(root / 'bench.sqlite').stat().st_size / 1e9:.2f} GB"
        print(f"  on disk: {sizes}", flush=True)

        if args.micro:
            _micro(stores, data, args.repeats)
        results = _time_levels(stores, cfg, data, levels, args.repeats, profile)

        print(f"\nreport for {QUARTER}, {args.racks} racks, GPU points for {len(data.gpu_tags):,} GPUs:")
        for name, level, secs, n, same in results:
            verdict = "PASS" if secs <= TARGET_S else "FAIL"
            print(f"  {name:6s} by={level:5s} {secs:7.2f} s = {secs / TARGET_S:.2f} of the {TARGET_S:.0f} s target "
                  f"{verdict}  {n} rows {same}")
        return 0
    finally:
        for s in stores.values():
            s.close()
        if server is not None:
            if args.keep:
                server.stop()
            else:
                server.close()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
