"""The same backfilled quarter in SQLite and in InfluxDB gives the same report.

One twin quarter (hourly steps, a counter reset, a week-long gap of one PDU, a PDU added
mid-quarter, optimizer audit points) is written through one tee to a SqliteStore (rolled
up by maintain()) and to an InfluxStore on the test influxd. Every report level is built
from both: text columns must match exactly, numbers after the report's own rounding (with
1e-9 relative slack only for float summation order)."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np
import pytest

from dcim.config import load_config
from dcim.metrics import Point
from dcim.report import COLUMN_NAMES, build_report, quarter
from dcim.store.base import Store
from dcim.store.influx import InfluxStore
from dcim.store.sqlite import SqliteStore
from simulator.backfill import backfill
from simulator.facility import FacilityTwin

HERE = Path(__file__).parent
STEP_S = 3600
DAY_NS = 86400 * 10**9
GAP_PDU = "pdu-R02-b"
LATE_PDU = "pdu-R03-b"
RESET_PDU = "pdu-R01-a"
# Only what the report reads: the writes to influxd stay small and the test fast.
KEEP = {
    "pdu": {"power_w", "energy_kwh"},
    "meter": {"power_w", "energy_kwh"},
    "ups": {"output_power_w", "energy_kwh"},
    "facility": {"total_power_w"},
    "cooling": {"power_w"},
    "gpu": {"util_pct", "energy_j", "power_w"},
}


class Tee(Store):
    """Writes every point, trimmed to the report's fields and with the same drops, to all stores."""

    def __init__(self, stores, drop):
        self.stores = stores
        self.drop = drop

    def write(self, points):
        lean = [Point(p.measurement, p.tags, {k: v for k, v in p.fields.items() if k in KEEP[p.measurement]}, p.time_ns)
                for p in points if p.measurement in KEEP and not self.drop(p)]
        for s in self.stores:
            s.write(lean)

    def flush(self):
        for s in self.stores:
            s.flush()

    def maintain(self):
        for s in self.stores:
            getattr(s, "maintain", lambda: None)()

    def query(self, *a, **k):
        raise NotImplementedError

    def latest(self, *a, **k):
        raise NotImplementedError


@pytest.fixture(scope="module")
def stores(influxd, tmp_path_factory):
    cfg = load_config(HERE / "mini_site.toml")
    q = quarter("2026Q3", cfg.site.timezone)
    sqlite = SqliteStore(tmp_path_factory.mktemp("backends") / "q.sqlite", timezone=cfg.site.timezone)
    db = "report_" + uuid.uuid4().hex[:10]
    influx = InfluxStore(influxd.url, db, timezone=cfg.site.timezone)  # as open_store() makes it
    gap_start = q.start_ns + 30 * DAY_NS
    mid = q.start_ns + 46 * DAY_NS + 7 * 3600 * 10**9  # not on a day boundary

    def drop(p):
        pdu = p.tags.get("pdu")
        return ((pdu == GAP_PDU and gap_start <= p.time_ns < gap_start + 7 * DAY_NS)
                or (pdu == LATE_PDU and p.time_ns < mid))

    tee = Tee([sqlite, influx], drop)
    start_ns, end_ns = q.start_ns - DAY_NS, q.end_ns + DAY_NS
    twin = FacilityTwin(cfg, seed=cfg.simulator.seed, start_ns=start_ns)
    reset_step = (mid - start_ns) // (STEP_S * 10**9)

    def reset_mid_quarter(done: int, _total: int) -> None:
        if done == reset_step:
            twin.reset_energy_counter(RESET_PDU)

    backfill(twin, tee, days=(end_ns - start_ns) / 86400e9, step_s=STEP_S, end_ns=end_ns, progress=reset_mid_quarter)
    # The optimizer's audit trail: savings estimates, irregular in time, two per hour on one host.
    hosts = sorted({p.tags["host"] for p in twin.points() if p.measurement == "gpu"})
    audit = []
    for k in range(0, 2000, 7):
        t = q.start_ns + k * 3600 * 10**9 + (k % 5) * 600 * 10**9
        for j, host in enumerate(hosts):
            audit.append(Point("optimizer", {"site": cfg.site.name, "host": host, "uuid": f"GPU-{j}", "action": "cap"},
                               {"power_limit_w": 500.0, "previous_w": 700.0, "reason": "pue",
                                "est_saving_w": 10.0 + (k * 37 + j * 11) % 90}, t))
    for s in (sqlite, influx):
        s.write(audit)
    tee.flush()
    sqlite.maintain()
    yield {"cfg": cfg, "q": q, "sqlite": sqlite, "influx": influx}
    sqlite.close()
    try:
        influx.execute(f'DROP DATABASE "{db}"')
    finally:
        influx.close()


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("read", ["raw", "days", "months"], ids=["influx-raw", "influx-days", "influx-months"])
@pytest.mark.parametrize("by", ["site", "room", "rack", "tenant", "gpu"])
def test_sqlite_and_influx_give_the_same_report(stores, by, read):
    """The same rows from SQLite (its rollups) and from InfluxDB, read raw, from the daily
    rollups its maintain() writes (counters' increases, group power sums, hourly summaries)
    and from its month rows (the quarter is three months of the site's zone; a reader in
    another zone cannot use them and reads the days)."""
    cfg, q = stores["cfg"], stores["q"]
    from_sqlite = build_report(stores["sqlite"], cfg, q, by=by)
    influx = stores["influx"]
    influx.maintain()  # the quarter's days are all closed: rolled once, then nothing to do
    if read == "months":
        reader = influx
    else:
        reader = InfluxStore(influx.url, influx.database, use_rollups=read == "days", timezone="UTC")
    seen = []
    real = reader.execute
    reader.execute = lambda statement, **kw: (seen.append(statement), real(statement, **kw))[1]
    from_influx = build_report(reader, cfg, q, by=by)
    reader.execute = real
    if reader is not influx:
        reader.close()
    assert any("dcim_rollups" in s for s in seen) == (read != "raw")
    assert any('_month"' in s for s in seen) == (read == "months")
    assert [r["entity"] for r in from_sqlite] == [r["entity"] for r in from_influx]
    assert len(from_sqlite) == {"site": 1, "room": 2, "rack": 4, "tenant": 3, "gpu": 13}[by]
    diffs = [(r["entity"], c, r[c], s[c]) for r, s in zip(from_sqlite, from_influx) for c in COLUMN_NAMES
             if not _same(r[c], s[c])]
    assert not diffs, diffs
    # The fixture's nasties reached the report, so the comparison covered them.
    if by == "rack":
        rows = {r["entity"]: r for r in from_sqlite}
        assert rows["R01"]["counter_resets"] >= 1
        assert rows["R02"]["coverage_pct"] == pytest.approx(100 * (1 - 7 / 92), abs=0.2)
        assert rows["R03"]["coverage_pct"] < 60
        assert rows["mini"]["optimizer_saved_kwh"] > 0


@pytest.mark.parametrize("by", ["site", "rack", "gpu"])
def test_sqlite_month_rows_give_the_report_of_its_days(stores, by):
    """SQLite's report from its month rows (the quarter is three months of the site's zone)
    equals the one a reader in another zone builds from the days."""
    cfg, q, sqlite = stores["cfg"], stores["q"], stores["sqlite"]
    answered = []
    real = sqlite._month_results
    sqlite._month_results = lambda *a, **k: (lambda r: (answered.append(r is not None), r)[1])(real(*a, **k))
    from_months = build_report(sqlite, cfg, q, by=by)
    del sqlite._month_results
    assert True in answered
    days = SqliteStore(sqlite.path, readonly=True, timezone="UTC")
    from_days = build_report(days, cfg, q, by=by)
    days.close()
    diffs = [(r["entity"], c, r[c], s[c]) for r, s in zip(from_months, from_days) for c in COLUMN_NAMES
             if not _same(r[c], s[c])]
    assert len(from_months) == len(from_days) and not diffs, diffs


def test_numpy_floats_reach_influx_as_plain_numbers(stores):
    """The line protocol takes float subclasses (numpy.float64) as the floats they are."""
    influx, q = stores["influx"], stores["q"]
    t = q.end_ns + 2 * DAY_NS
    influx.write([Point("meter", {"site": "mini", "meter": "np", "role": "other"},
                        {"power_w": np.float64(1234.5), "energy_kwh": np.float64(0.25)}, t)])
    [s] = influx.query("meter", ["power_w", "energy_kwh"], t, t + 1, agg="last", where={"meter": "np"})
    assert s.values == {"power_w": [1234.5], "energy_kwh": [0.25]}
    assert all(type(v) is float for p in FacilityTwin(stores["cfg"], seed=1).points() for v in p.fields.values()
               if not isinstance(v, (bool, int, str)))


@pytest.mark.parametrize("expired", [False, True])
def test_site_peak_never_comes_from_part_of_the_period(tmp_path, expired):
    """SQLite keeps 1-minute rollups for a limited time. Where they are gone for part of the
    quarter, the site peak is the largest hourly mean over the whole quarter, not a 15-minute
    peak over the part still held (which would silently miss an earlier, higher peak)."""
    import time

    cfg = load_config(HERE / "mini_site.toml")
    q = quarter("2026Q3", cfg.site.timezone)
    mid = q.start_ns + 46 * DAY_NS
    kw = {"rollup_1m_retention_days": (time.time_ns() - mid) / DAY_NS} if expired else {"rollup_1m_retention_days": 1e5}
    store = SqliteStore(tmp_path / "peak.sqlite", **kw)
    quarter_h = 15 * 60 * 10**9
    spike = q.start_ns + 10 * DAY_NS + 5 * 3600 * 10**9 + quarter_h  # 15 min at 500 kW, early in the quarter
    flat = mid + 20 * DAY_NS + 3 * 3600 * 10**9  # one hour at 180 kW, late in the quarter
    points = []
    for t in range(q.start_ns, q.end_ns, quarter_h):
        w = 500e3 if t == spike else 180e3 if flat <= t < flat + 3600 * 10**9 else 100e3
        points.append(Point("facility", {"site": "mini"}, {"total_power_w": w}, t))
    store.write(points)
    store.maintain()
    [site] = build_report(store, cfg, q, by="site")
    store.close()
    from datetime import datetime
    from zoneinfo import ZoneInfo

    at = datetime.fromtimestamp(spike // 10**9, tz=ZoneInfo(cfg.site.timezone))
    if expired:  # hourly mean of the spike's hour: (500 + 3 × 100) / 4
        assert (site["peak_kw"], site["peak_time"]) == (200.0, at.replace(minute=0).isoformat(timespec="minutes"))
    else:
        assert (site["peak_kw"], site["peak_time"]) == (500.0, at.isoformat(timespec="minutes"))
