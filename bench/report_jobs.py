"""Chargeback by job: ``dcim report --by job`` for a quarter of 100,000 jobs on 4,096 GPUs.

Target: ``build_report(by="job")`` <= 10 s on SQLite. Second figure: the chargeback check, the
tenants' facility kWh (``by="tenant"``, billed by job) against the site's, as a % difference
(target within +-0.5 %).

The site is bench/report.py's (its ``make_config`` and ``Quarter``, imported): 128 racks of
4 servers x 8 GPUs = 4,096 GPUs, 2 PDUs per rack, UPSes, meters, hourly telemetry for 2026Q3
in Asia/Seoul. On top, the ``workload`` measurement a Slurm source writes: 100,000 jobs laid
on lanes of 1, 2, 4 or 8 GPUs of one server (the width cycles by server), each lane a
sequence of jobs with idle gaps between them, the first job of a lane started before the
quarter. Workload points: one per GPU at every hour's start plus one at every job start and
end ([workload] interval_s = 3600: what the hourly rollups of a 30 s source hold is one row
per GPU-hour either way, and that is what a past quarter's report reads). 7 tenants by account,
plus one account the config leaves unmapped.

SQLite only (the store a report of this size is run from is the rollups of a past quarter:
maintain() runs after the fill). Before the report, the quarter's closed local days are
materialised (``dcim.report.job_days.materialise``, what ``dcim collect``'s upkeep does a day at
a time; timed as a one-off); ``--no-materialise`` times a report that computes them itself.
The fill is 9.6 M GPU points and 9.5 M workload points, a 9.4 GB file: 1,097 s on the shared
2-core box (GPU points 591 s, workload 432 s + maintain 47 s), so ``--keep DIR`` keeps the store
and ``--reuse`` times it again.

Usage: ``.venv/bin/python bench/report_jobs.py [--jobs 100000] [--racks 128] [--keep DIR [--reuse]]
[--no-materialise]``
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import GPUS_PER_SERVER, QUARTER, TZ, Quarter, fill, make_config  # noqa: E402
from dcim.config import Config  # noqa: E402
from dcim.metrics import Point  # noqa: E402
from dcim.report import build_report  # noqa: E402
from dcim.report.job_days import materialise  # noqa: E402

TARGET_S = 10.0
CHECK_PCT = 0.5
WIDTHS = (1, 2, 4, 8)  # GPUs per job, by server (cycled)
N_ACCOUNTS = 8  # acct0..acct6 map to t0..t6; acct7 is unmapped
BUSY_SHARE = 0.85  # of each lane's time that jobs hold its GPUs


def job_config(n_racks: int) -> Config:
    """bench/report.py's site with a Slurm workload source and its account → tenant mapping."""
    cfg = make_config(n_racks)
    data = cfg.model_dump()
    data["workload"] = {"source": "slurm", "interval_s": 3600.0,
                        "tenants": {f"acct{i}": f"t{i}" for i in range(N_ACCOUNTS - 1)}}
    return Config.model_validate(data)


class Jobs:
    """The quarter's jobs on lanes of GPUs: arrays of lane, start and end (s from the quarter's
    start), and each lane's GPU indices into ``Quarter.gpu_tags``."""

    def __init__(self, data: Quarter, n_jobs: int, seed: int = 11):
        rng = np.random.default_rng(seed)
        self.data = data
        self.lanes: list[list[int]] = []
        for s0 in range(0, len(data.gpu_tags), GPUS_PER_SERVER):
            width = WIDTHS[(s0 // GPUS_PER_SERVER) % len(WIDTHS)]
            self.lanes += [list(range(g, g + width)) for g in range(s0, s0 + GPUS_PER_SERVER, width)]
        period_s = data.hours * 3600.0
        per_lane = np.full(len(self.lanes), n_jobs // len(self.lanes))
        per_lane[:n_jobs % len(self.lanes)] += 1
        lane, start, end = [], [], []
        for k, n in enumerate(per_lane.tolist()):
            # n slots cut at random points; a job holds the first BUSY_SHARE of its slot.
            cuts = np.sort(rng.uniform(0, period_s, n - 1))
            slot_start = np.concatenate([[-rng.uniform(600, 86400)], cuts])  # the first began before the quarter
            slot_end = np.concatenate([cuts, [period_s]])
            lane.append(np.full(n, k))
            start.append(np.round(slot_start))
            end.append(np.round(slot_start + BUSY_SHARE * (slot_end - slot_start)))
        self.lane = np.concatenate(lane)
        self.start_s = np.concatenate(start)
        self.end_s = np.concatenate(end)
        self.account = rng.integers(0, N_ACCOUNTS, len(self.lane))

    def fields(self, j: int) -> dict:
        acct = f"acct{self.account[j]}"
        tenant = f"t{self.account[j]}" if self.account[j] < N_ACCOUNTS - 1 else f"unmapped:{acct}"
        return {"job": str(100000 + j), "tenant": tenant, "account": acct, "job_class": "training",
                "start_ns": self.data.q.start_ns + int(self.start_s[j]) * 10**9, "source": "slurm"}

    def chunks(self, lanes_per_chunk: int = 64):
        """The workload points, a chunk of lanes at a time, each GPU's in time order."""
        q = self.data.q
        hours_s = np.arange(self.data.hours) * 3600.0
        order = np.argsort(self.lane, kind="stable")
        first = np.searchsorted(self.lane[order], np.arange(len(self.lanes) + 1))
        idle = {"job": "", "source": "slurm"}
        for l0 in range(0, len(self.lanes), lanes_per_chunk):
            pts: list[Point] = []
            for k in range(l0, min(len(self.lanes), l0 + lanes_per_chunk)):
                jobs = order[first[k]:first[k + 1]]
                starts, ends = self.start_s[jobs], self.end_s[jobs]
                at = np.searchsorted(starts, hours_s, side="right") - 1
                held = (at >= 0) & (hours_s < ends[np.maximum(at, 0)])
                marks = [(t, jobs[a] if h else -1) for t, a, h in zip(hours_s.tolist(), at.tolist(), held.tolist())]
                marks += [(s, j) for s, j in zip(starts.tolist(), jobs.tolist()) if s >= 0]
                marks += [(e, -1) for e in ends.tolist() if e < hours_s[-1] + 3600]
                marks.sort()
                fields = {j: self.fields(j) for j in jobs.tolist()}
                for g in self.lanes[k]:
                    tags = self.data.gpu_tags[g]
                    wtags = {"site": self.data.cfg.site.name, "host": tags["host"], "uuid": tags["uuid"]}
                    pts += [Point("workload", wtags, fields[j] if j >= 0 else idle, q.start_ns + int(t) * 10**9)
                            for t, j in marks]
            yield pts


def fill_workload(store, jobs: Jobs) -> float:
    t0 = time.perf_counter()
    n = 0
    for pts in jobs.chunks():
        for i in range(0, len(pts), 50_000):
            store.write(pts[i:i + 50_000])
        n += len(pts)
    store.flush()
    t1 = time.perf_counter()
    store.maintain()
    print(f"  workload: {n:,} points written in {t1 - t0:.0f} s, maintain {time.perf_counter() - t1:.0f} s", flush=True)
    return time.perf_counter() - t0


def timed(store, cfg: Config, period, by: str, repeats: int) -> tuple[float, list[dict], dict]:
    best, rows, phases = float("inf"), [], {}
    for _ in range(repeats):
        marks: list[tuple[str, float]] = []
        t0 = time.perf_counter()
        rows = build_report(store, cfg, period, by=by, progress=lambda m, marks=marks: marks.append((m, time.perf_counter())))
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            edges = [("start", t0)] + marks + [("end", t0 + elapsed)]
            best, phases = elapsed, {a[0]: b[1] - a[1] for a, b in zip(edges, edges[1:])}
    return best, rows, phases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--racks", type=int, default=128, help="racks of 32 GPUs (128: 4,096 GPUs)")
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the store in this dir")
    ap.add_argument("--reuse", action="store_true", help="time the store kept in --keep, write nothing but the "
                    "job days")
    ap.add_argument("--no-materialise", action="store_true",
                    help="time the report without materialising the quarter's job days first (it computes the "
                         "days not yet materialised from the hours: minutes)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from dcim.store.sqlite import SqliteStore

    cfg = job_config(args.racks)
    root = args.keep or Path(tempfile.mkdtemp(prefix="dcim-bench-jobs-"))
    root.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(root / "jobs.sqlite", timezone=TZ)
    try:
        data = Quarter(cfg, args.racks)
        jobs = Jobs(data, args.jobs)
        print(f"site: {len(data.gpu_tags):,} GPUs, {len(jobs.lanes):,} lanes, {len(jobs.lane):,} jobs, "
              f"{data.hours} hours ({QUARTER}, {TZ})", flush=True)
        if not args.reuse:
            t0 = time.perf_counter()
            fill({"sqlite": store}, data)
            fill_workload(store, jobs)
            print(f"  generated and stored in {time.perf_counter() - t0:.0f} s", flush=True)
        size_gb = (root / "jobs.sqlite").stat().st_size / 1e9
        print(f"  on disk: sqlite {size_gb:.2f} GB", flush=True)
        if not args.no_materialise:
            t0 = time.perf_counter()
            n_days = materialise(store, cfg.site.name, cfg.site.timezone, cfg.workload.interval_s,
                                 since_ns=data.q.start_ns)
            store.maintain()
            print(f"  job days materialised: {n_days} days in {time.perf_counter() - t0:.1f} s (one-off; upkeep "
                  f"then does each new day once)", flush=True)
        secs, rows, phases = timed(store, cfg, data.q, "job", args.repeats)
        ph = ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if v >= 0.05)
        seen = sum(1 for r in rows[1:] if r["chargeback_method"] == "job")
        print(f"  by=job {secs:.2f} s, {len(rows) - 1:,} rows: {seen:,} of the {len(jobs.lane):,} jobs seen (the "
              f"rest start and end inside one hour, which the hourly rollups do not show) [{ph}]", flush=True)
        t_secs, t_rows, _ = timed(store, cfg, data.q, "tenant", 1)
        site_fac = float(t_rows[0]["facility_kwh"])
        tenants_fac = sum(float(r["facility_kwh"]) for r in t_rows[1:] if r["facility_kwh"] != "")
        diff_pct = 100.0 * (tenants_fac - site_fac) / site_fac
        methods = sorted({r["chargeback_method"] for r in t_rows[1:]})
        print(f"\nreport by job for {QUARTER}, {len(jobs.lane):,} jobs on {len(data.gpu_tags):,} GPUs (SQLite):")
        print(f"  by=job {secs:.2f} s = {secs / TARGET_S:.2f} of the {TARGET_S:.0f} s target "
              f"{'PASS' if secs <= TARGET_S else 'FAIL'}")
        print(f"  chargeback check (by=tenant, {t_secs:.2f} s, {len(t_rows) - 1} tenants, methods {methods}): "
              f"tenants {tenants_fac:,.1f} kWh vs site {site_fac:,.1f} kWh = {diff_pct:+.4f} % "
              f"= {abs(diff_pct) / CHECK_PCT:.3f} of the +-{CHECK_PCT} % bound "
              f"{'PASS' if abs(diff_pct) <= CHECK_PCT else 'FAIL'}")
        return 0
    finally:
        store.close()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
