"""Materialised job days (``dcim.report.job_days``): a report after upkeep equals the report
computed from the hours, on SQLite and on the real influxd; late points for a materialised day
are taken in by the next upkeep (and by a report before it); periods that start inside a day;
a report with no day materialised. Same site as test_report_jobs (two local days in
Asia/Seoul: 15:00 UTC to 15:00 UTC)."""

from __future__ import annotations

import json
import math
import uuid as uuidlib
from datetime import UTC, datetime

import pytest

from dcim.metrics import Point
from dcim.report import build_report
from dcim.report.job_days import DAY_NS, local_days, materialise, plan, read_pairs
from dcim.report.jobs import stretch_pairs
from dcim.report.periods import Period
from dcim.store.influx import InfluxStore
from dcim.store.sqlite import SqliteStore
from tests.report.test_report_jobs import SLOT_S, TZ, make_config, make_points

SITE = "jobsite"
UTC_DAY = datetime(2026, 7, 1, tzinfo=UTC)  # the period's one whole UTC day


def _fresh(kind: str, tmp_path, influxd):
    """A store holding the site's points, rolled up (the raw rows of July have expired)."""
    cfg = make_config()
    from dcim.report import date_range
    period = date_range("2026-07-01", "2026-07-03", TZ)
    if kind == "sqlite":
        store = SqliteStore(tmp_path / "jd.sqlite", timezone=TZ)
        drop = None
    else:
        db = "jobdays_" + uuidlib.uuid4().hex[:10]
        store = InfluxStore(influxd.url, db, timezone=TZ)
        drop = db
    store.write(make_points(cfg, period))
    store.flush()
    store.maintain()
    return cfg, period, store, drop


@pytest.fixture(params=["sqlite", "influx"])
def fresh(request, tmp_path, influxd):
    cfg, period, store, drop = _fresh(request.param, tmp_path, influxd)
    yield cfg, period, store
    try:
        if drop:
            store.execute(f'DROP DATABASE "{drop}"')
    finally:
        store.close()


def _by_pair(pairs) -> dict:
    return {(pairs.jobs[j], pairs.tenant[j], pairs.account[j], pairs.uuids[g], pairs.racks[g]): (k, h, a, b)
            for j, g, k, h, a, b in zip(pairs.job.tolist(), pairs.gpu.tolist(), pairs.power_kwh.tolist(),
                                        pairs.gpu_hours.tolist(), pairs.first_ns.tolist(), pairs.last_ns.tolist())}


def _same_pairs(got, want) -> None:
    g, w = _by_pair(got), _by_pair(want)
    assert set(g) == set(w)
    for key in w:
        for x, y in zip(g[key], w[key]):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6), (key, g[key], w[key])


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert [r["entity"] for r in a] == [r["entity"] for r in b]
    for x, y in zip(a, b):
        for col in x:
            if isinstance(x[col], float) and isinstance(y[col], float):
                assert math.isclose(x[col], y[col], rel_tol=1e-9, abs_tol=1e-3), (x["entity"], col, x[col], y[col])
            else:
                assert x[col] == y[col], (x["entity"], col, x[col], y[col])


def _days(period, tz: str = TZ):
    return local_days(period.start_ns, period.end_ns, tz)


def test_report_after_materialising_equals_the_report_from_hours(fresh):
    cfg, period, store = fresh
    interval = cfg.workload.interval_s
    before = {by: build_report(store, cfg, period, by=by) for by in ("job", "tenant")}
    assert len(_days(period)) == 2 and plan(store, SITE, _days(period)).done == {}  # none yet
    # Local days (Asia/Seoul) from 06-30 whose UTC days hold workload points: all closed now.
    assert materialise(store, SITE, TZ, interval, since_ns=period.start_ns - DAY_NS) >= 2
    store.maintain()
    p = plan(store, SITE, _days(period))
    assert len(p.done) == 2 and not p.due
    assert materialise(store, SITE, TZ, interval, since_ns=period.start_ns - DAY_NS) == 0  # nothing new: no work
    # The stored days equal the days computed from the hours, pair by pair.
    _same_pairs(read_pairs(store, SITE, TZ, period.start_ns, period.end_ns, interval),
                stretch_pairs(store, period.start_ns, period.end_ns, interval))
    for by, rows in before.items():
        _same_rows(build_report(store, cfg, period, by=by), rows)


def test_a_late_point_for_a_materialised_day_is_taken_in(fresh):
    """A point replayed late (a spool) gives idle GPU b1 job J3 for the last 10 minutes of
    07-01 10:00 UTC: a report sees it at once, upkeep rewrites the days it reaches."""
    cfg, period, store = fresh
    interval = cfg.workload.interval_s
    materialise(store, SITE, TZ, interval, since_ns=period.start_ns - DAY_NS)
    store.maintain()
    jobs = {r["entity"]: r for r in build_report(store, cfg, period, by="job")}
    b1 = next(p.tags for p in make_points(cfg, period) if p.measurement == "workload" and p.tags["uuid"] == "GPU-b1")
    late_ns = int(UTC_DAY.timestamp()) * 10**9 + 10 * 3600 * 10**9 + (3600 - SLOT_S // 2) * 10**9
    store.write([Point("workload", b1, {"job": "J3", "tenant": "unmapped:acctx", "account": "acctx",
                                        "start_ns": late_ns, "source": "slurm"}, late_ns)])
    store.flush()
    store.maintain()
    # Both local days overlap UTC 07-01 (the second's hour before it too): their counts moved.
    assert sorted(plan(store, SITE, _days(period)).due) == _days(period)
    fresh_list = build_report(store, cfg, period, by="job")
    fresh_rows = {r["entity"]: r for r in fresh_list}
    assert fresh_rows["J3"]["gpus"] == 2 and jobs["J3"]["gpus"] == 1
    assert float(fresh_rows["J3"]["gpu_hours"]) > float(jobs["J3"]["gpu_hours"])
    assert materialise(store, SITE, TZ, interval, since_ns=period.start_ns - DAY_NS) == 2
    store.maintain()
    assert not plan(store, SITE, _days(period)).due
    _same_pairs(read_pairs(store, SITE, TZ, period.start_ns, period.end_ns, interval),
                stretch_pairs(store, period.start_ns, period.end_ns, interval))
    _same_rows(build_report(store, cfg, period, by="job"), fresh_list)


@pytest.mark.parametrize("hours", [(6, 36), (20, 30), (3, 47), (0, 48)])
def test_periods_starting_inside_a_day(fresh, hours):
    """Periods that start and end inside UTC and local days (hours from 06-30 15:00 UTC, the
    local midnight): the stored days, where whole, plus the edges from the hours, equal the
    hours alone; read as UTC days too (none of them stored: all from the hours)."""
    cfg, _, store = fresh
    interval = cfg.workload.interval_s
    materialise(store, SITE, TZ, interval, since_ns=0)
    store.maintain()
    t0 = datetime(2026, 6, 30, 15, tzinfo=UTC).timestamp()
    start = datetime.fromtimestamp(t0 + hours[0] * 3600, tz=UTC)
    end = datetime.fromtimestamp(t0 + hours[1] * 3600, tz=UTC)
    period = Period("part", start, end)
    hourly = stretch_pairs(store, period.start_ns, period.end_ns, interval)
    for tz in (TZ, "UTC"):
        _same_pairs(read_pairs(store, SITE, tz, period.start_ns, period.end_ns, interval), hourly)


def test_only_the_days_current_version_is_read(fresh):
    """A pair stored for the day under an older version (a computation the day has since
    replaced, or one cut short before its job_day point) is not read; under the current
    version it would be."""
    cfg, period, store = fresh
    interval = cfg.workload.interval_s
    materialise(store, SITE, TZ, interval, since_ns=period.start_ns - DAY_NS)
    store.maintain()
    day = period.start_ns  # the first local day's start, 06-30 15:00 UTC
    version = plan(store, SITE, _days(period)).done[day // DAY_NS * DAY_NS]

    def stray(v: int, job: str, part: str) -> Point:
        table = {"jobs": [[job, "lab", "acct-l"]], "uuids": ["GPU-b1"], "job": [0], "gpu": [0], "power_kwh": [5.0],
                 "gpu_hours": [3.0], "first_ns": [day], "last_ns": [day + 3 * 3600 * 10**9]}
        return Point("job_energy", {"site": SITE, "rack": "R02", "part": part},
                     {"pairs": json.dumps(table), "pair_count": 1, "version": v}, day + v)

    store.write([stray(version - 1, "J8", "7"), stray(version, "J9", "8")])
    store.flush()
    store.maintain()
    jobs = {r["entity"] for r in build_report(store, cfg, period, by="job")}
    assert "J8" not in jobs and "J9" in jobs


def test_the_upkeep_thread_materialises_closed_days(tmp_path, influxd):
    """``dcim collect``'s upkeep: Maintainer runs the job days after the rollups."""
    import time

    from dcim.report.job_days import upkeep
    from dcim.store.maintainer import Maintainer

    cfg, period, store, _ = _fresh("sqlite", tmp_path, influxd)
    try:
        m = Maintainer(store, every_s=3600, after=upkeep(store, SITE, TZ, cfg.workload.interval_s)).start()
        try:
            deadline = time.monotonic() + 60
            while len(plan(store, SITE, _days(period)).done) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            m.stop()
        assert len(plan(store, SITE, _days(period)).done) == 2
    finally:
        store.close()
