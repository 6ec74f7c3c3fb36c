"""Chargeback by job: ``--by job`` rows and the tenant level billed by job, against energy
computed by hand from the points the test writes, on SQLite (its rollups: the raw rows have
expired, as for a past quarter) and on the real influxd.

Two days (2026-07-01..03, Asia/Seoul), two racks of two GPUs, a sample every 10 minutes;
each GPU's power is constant within an hour. Holds ([workload] interval_s = 600):

- GPU a1: J1 (tenant univ) from before the period to 10:20 of hour 10, then J2 (lab) from
  10:20 to hour 30: two jobs in one hour, a job spanning the period's start;
- GPU a2: J3 (account "acctx", which the config does not map) hours 5-40; a2's counter
  resets to zero in hour 20 (a job across a counter reset);
- GPU b1: idle all along (job "");
- GPU b2: J2 hours 12-30 (J2 holds two GPUs).

Rack R01 (owner univ) holds a1 and a2, R02 (owner lab) b1 and b2.
"""

from __future__ import annotations

import csv
import io
import math
import uuid as uuidlib

import pytest

from dcim.config import Config
from dcim.inventory import build_inventory
from dcim.metrics import Point
from dcim.report import build_report, date_range, write_csv
from dcim.store.influx import InfluxStore
from dcim.store.sqlite import SqliteStore

TZ = "Asia/Seoul"
SLOT_S = 600
HOURS = 48
NON_GPU_W = {"R01": 300.0, "R02": 150.0}
PUE = 1.5
H_NS = 3600 * 10**9
RESET_SLOT = 20 * 6 + 3  # a2's counter restarts from zero after the sample before this one


def make_config() -> Config:
    racks = [{"name": r, "tenant": t, "server_group": {"count": 1, "gpus": 2}}
             for r, t in (("R01", "univ"), ("R02", "lab"))]
    return Config.model_validate({
        "site": {"name": "jobsite", "timezone": TZ, "grid_kgco2e_per_kwh": 0.5, "pue_category": 2},
        "tenants": [{"name": "univ"}, {"name": "lab"}],
        "rooms": [{"name": "hall", "rows": [{"name": "A", "racks": racks}]}],
        "pdus": [{"name": f"pdu-{r}", "rack": r, "feed": "A"} for r in ("R01", "R02")],
        "meters": [{"name": "main", "role": "facility_total"}],
        "workload": {"source": "slurm", "interval_s": SLOT_S, "tenants": {"acct-u": "univ", "acct-l": "lab"}},
    })


def power_w(gpu: str, hour: int) -> float:
    return {"a1": 300.0, "a2": 400.0, "b1": 80.0, "b2": 500.0}[gpu] + 5.0 * hour


# (job, account, tenant, start_ns offset in hours from the period start)
JOBS = {"J1": ("acct-u", "univ", -5.0), "J2": ("acct-l", "lab", 10 + 1 / 3), "J3": ("acctx", "unmapped:acctx", 5.0)}


def holder(gpu: str, t_h: float) -> str:
    """The job holding *gpu* at *t_h* hours from the period start ("" idle)."""
    if gpu == "a1":
        return "J1" if t_h < 10 + 1 / 3 else "J2" if t_h < 30 else ""
    if gpu == "a2":
        return "J3" if 5 <= t_h < 41 else ""
    if gpu == "b2":
        return "J2" if 12 <= t_h < 30 else ""
    return ""


def make_points(cfg: Config, period) -> list[Point]:
    """The GPU, workload, PDU and meter points of the module docstring's two days."""
    inv = build_inventory(cfg)
    gpus = {}
    for g, name in zip(inv.gpus, ("a1", "a2", "b1", "b2")):
        gpus[name] = {**g.tags, "uuid": f"GPU-{name}"}
    points = []
    counters = {name: 1e9 for name in gpus}
    pdu_kwh = {"R01": 100.0, "R02": 200.0}
    fac_kwh = 5000.0
    for k in range(HOURS * 3600 // SLOT_S):
        t = period.start_ns + k * SLOT_S * 10**9
        hour = k * SLOT_S // 3600
        rack_w = dict(NON_GPU_W)
        for name, tags in gpus.items():
            if name == "a2" and k == RESET_SLOT:  # restarted from zero at the previous sample
                counters[name] = power_w(name, (k - 1) * SLOT_S // 3600) * SLOT_S
            points.append(Point("gpu", tags, {"power_w": power_w(name, hour), "energy_j": counters[name],
                                              "util_pct": 50.0}, t))
            counters[name] += power_w(name, hour) * SLOT_S  # the counter at the next sample
            rack_w[tags["rack"]] += power_w(name, hour)
            job = holder(name, k * SLOT_S / 3600)
            wtags = {"site": cfg.site.name, "host": tags["host"], "uuid": tags["uuid"]}
            if job:
                account, tenant, start_h = JOBS[job]
                fields = {"job": job, "tenant": tenant, "account": account, "job_class": "training",
                          "start_ns": period.start_ns + round(start_h * H_NS), "source": "slurm"}
            else:
                fields = {"job": "", "source": "slurm"}
            points.append(Point("workload", wtags, fields, t))
        for rack, w in rack_w.items():
            points.append(Point("pdu", {"site": cfg.site.name, "room": "hall", "rack": rack, "pdu": f"pdu-{rack}",
                                        "feed": "A"}, {"power_w": w, "energy_kwh": pdu_kwh[rack]}, t))
            pdu_kwh[rack] += w * SLOT_S / 3.6e6
        total_w = sum(rack_w.values()) * PUE
        points.append(Point("meter", {"site": cfg.site.name, "meter": "main", "role": "facility_total"},
                            {"power_w": total_w, "energy_kwh": fac_kwh}, t))
        fac_kwh += total_w * SLOT_S / 3.6e6
    return points


@pytest.fixture(scope="module")
def site(tmp_path_factory, influxd):
    cfg = make_config()
    period = date_range("2026-07-01", "2026-07-03", TZ)
    points = make_points(cfg, period)
    sqlite = SqliteStore(tmp_path_factory.mktemp("jobs") / "j.sqlite", timezone=TZ)
    db = "jobs_" + uuidlib.uuid4().hex[:10]
    influx = InfluxStore(influxd.url, db, timezone=TZ)
    for store in (sqlite, influx):
        store.write(points)
        store.flush()
    sqlite.maintain()  # now: months later, so the raw rows expire and the rollups answer
    influx.maintain()
    yield {"cfg": cfg, "period": period, "sqlite": sqlite, "influx": influx}
    sqlite.close()
    try:
        influx.execute(f'DROP DATABASE "{db}"')
    finally:
        influx.close()


def expected() -> dict:
    """Hand-computed: each GPU-hour's energy is the GPU's counter increase over the period,
    spread by its hourly power; a job gets its share of each hour; a rack's IT per GPU-kWh is
    rack IT ÷ rack GPU energy."""
    last_slot_s = SLOT_S  # the counters' last sample is 10 minutes before the period's end
    gpu_rack = {"a1": "R01", "a2": "R01", "b1": "R02", "b2": "R02"}
    hour_kwh = {}
    for g in gpu_rack:
        integrated = sum(power_w(g, h) for h in range(HOURS)) / 1000.0
        counter = integrated - power_w(g, HOURS - 1) * last_slot_s / 3.6e6
        hour_kwh[g] = [power_w(g, h) / 1000.0 * counter / integrated for h in range(HOURS)]
    rack_it, rack_gpu = {}, {}
    for rack in ("R01", "R02"):
        members = [g for g, r in gpu_rack.items() if r == rack]
        watts = [NON_GPU_W[rack] + sum(power_w(g, h) for g in members) for h in range(HOURS)]
        rack_it[rack] = (sum(watts) - watts[-1] * last_slot_s / 3600) / 1000.0
        rack_gpu[rack] = sum(sum(hour_kwh[g]) for g in members)
    shares = {  # job → gpu → {hour: share}
        "J1": {"a1": {**{h: 1.0 for h in range(10)}, 10: 1 / 3}},
        "J2": {"a1": {10: 2 / 3, **{h: 1.0 for h in range(11, 30)}}, "b2": {h: 1.0 for h in range(12, 30)}},
        "J3": {"a2": {h: 1.0 for h in range(5, 41)}},
    }
    jobs = {}
    for job, per_gpu in shares.items():
        gpu_kwh = sum(s * hour_kwh[g][h] for g, hs in per_gpu.items() for h, s in hs.items())
        it_kwh = sum(s * hour_kwh[g][h] * rack_it[gpu_rack[g]] / rack_gpu[gpu_rack[g]]
                     for g, hs in per_gpu.items() for h, s in hs.items())
        hours = sum(s for hs in per_gpu.values() for s in hs.values())
        jobs[job] = {"gpu_kwh": gpu_kwh, "it_kwh": it_kwh, "gpu_hours": hours, "gpus": len(per_gpu)}
    held = {rack: 0.0 for rack in rack_it}
    for per_gpu in shares.values():
        for g, hs in per_gpu.items():
            rack = gpu_rack[g]
            held[rack] += sum(s * hour_kwh[g][h] for h, s in hs.items()) * rack_it[rack] / rack_gpu[rack]
    tenants = {
        "univ": jobs["J1"]["it_kwh"] + rack_it["R01"] - held["R01"],
        "lab": jobs["J2"]["it_kwh"] + rack_it["R02"] - held["R02"],
        "unmapped:acctx": jobs["J3"]["it_kwh"],
    }
    return {"jobs": jobs, "tenants": tenants, "site_it": sum(rack_it.values()),
            "owner": {"univ": rack_it["R01"] - held["R01"], "lab": rack_it["R02"] - held["R02"]}}


def _close(got, want, tol=2e-3):
    return math.isclose(float(got), want, rel_tol=0, abs_tol=tol)


def test_job_rows_equal_the_hand_computed_energy(site):
    rows = build_report(site["sqlite"], site["cfg"], site["period"], by="job")
    want = expected()
    site_row, jobs = rows[0], {r["entity"]: r for r in rows[1:] if r["chargeback_method"] == "job"}
    assert site_row["level"] == "site"
    assert _close(site_row["it_kwh"], want["site_it"])
    pue = float(site_row["pue"])
    assert abs(pue - PUE) < 1e-3
    assert set(jobs) == {"J1", "J2", "J3"}
    for job, w in want["jobs"].items():
        row = jobs[job]
        assert row["level"] == "job" and row["job"] == job
        assert _close(row["gpu_kwh"], w["gpu_kwh"]), (job, row["gpu_kwh"], w["gpu_kwh"])
        assert _close(row["it_kwh"], w["it_kwh"]), (job, row["it_kwh"], w["it_kwh"])
        assert _close(row["gpu_hours"], w["gpu_hours"]), (job, row["gpu_hours"], w["gpu_hours"])
        assert row["gpus"] == w["gpus"]
        assert _close(row["facility_kwh"], float(row["it_kwh"]) * pue, 2e-3)
        assert _close(row["co2e_kg"], float(row["facility_kwh"]) * 0.5, 2e-3)
    assert (jobs["J1"]["tenant"], jobs["J1"]["account"]) == ("univ", "acct-u")
    assert (jobs["J3"]["tenant"], jobs["J3"]["account"]) == ("unmapped:acctx", "acctx")
    # J1 began before the period: it starts at the period's start; J2 at 10:20 of hour 10.
    assert jobs["J1"]["start"] == "2026-07-01T00:00+09:00" and jobs["J1"]["end"] == "2026-07-01T10:20+09:00"
    assert jobs["J2"]["start"] == "2026-07-01T10:20+09:00" and jobs["J2"]["end"] == "2026-07-02T06:00+09:00"
    assert jobs["J3"]["start"] == "2026-07-01T05:00+09:00" and jobs["J3"]["end"] == "2026-07-02T17:00+09:00"
    owners = {r["tenant"]: r for r in rows[1:] if r["chargeback_method"] == "rack_owner"}
    assert set(owners) == {"univ", "lab"} and all(r["entity"] == "(no job)" for r in owners.values())
    for tenant, kwh in want["owner"].items():
        assert _close(owners[tenant]["it_kwh"], kwh)
    # The job rows and the owners' remainders add up to the site's IT energy.
    assert _close(sum(float(r["it_kwh"]) for r in rows[1:]), want["site_it"], 5e-3)


def test_tenants_billed_by_job_add_up_to_the_site(site):
    rows = build_report(site["sqlite"], site["cfg"], site["period"], by="tenant")
    want = expected()
    tenants = {r["entity"]: r for r in rows[1:]}
    assert set(tenants) == {"univ", "lab", "unmapped:acctx"}
    for tenant, kwh in want["tenants"].items():
        assert _close(tenants[tenant]["it_kwh"], kwh), (tenant, tenants[tenant]["it_kwh"], kwh)
    assert tenants["univ"]["chargeback_method"] == "mixed"
    assert tenants["lab"]["chargeback_method"] == "mixed"
    assert tenants["unmapped:acctx"]["chargeback_method"] == "job"
    site_fac = float(rows[0]["facility_kwh"])
    billed = sum(float(r["facility_kwh"]) for r in tenants.values())
    assert abs(billed - site_fac) / site_fac <= 0.005
    assert _close(billed, site_fac, 0.01)


def test_without_workload_the_tenants_are_billed_by_rack_owner(site, tmp_path):
    """A site with no workload source: every tenant row says rack_owner, and its energy is
    its racks' PDUs, as before job billing existed."""
    cfg, period = site["cfg"], site["period"]
    bare = SqliteStore(tmp_path / "bare.sqlite", timezone=TZ)
    try:
        pts = []
        for k in range(HOURS):
            t = period.start_ns + k * H_NS
            for rack in ("R01", "R02"):
                pts.append(Point("pdu", {"site": cfg.site.name, "room": "hall", "rack": rack, "pdu": f"pdu-{rack}",
                                         "feed": "A"}, {"power_w": 1000.0, "energy_kwh": 10.0 + k}, t))
        bare.write(pts)
        bare.maintain()
        rows = build_report(bare, cfg, period, by="tenant")
        assert {r["entity"]: r["chargeback_method"] for r in rows[1:]} == {"univ": "rack_owner", "lab": "rack_owner"}
        assert all(_close(r["it_kwh"], 47.0) for r in rows[1:])
        jobs = build_report(bare, cfg, period, by="job")
        assert [r["entity"] for r in jobs[1:]] == ["(no job)", "(no job)"]
    finally:
        bare.close()


@pytest.mark.parametrize("by", ["job", "tenant"])
def test_sqlite_and_influx_give_the_same_rows(site, by):
    from_sqlite = build_report(site["sqlite"], site["cfg"], site["period"], by=by)
    from_influx = build_report(site["influx"], site["cfg"], site["period"], by=by)
    assert [r["entity"] for r in from_sqlite] == [r["entity"] for r in from_influx]
    for a, b in zip(from_sqlite, from_influx):
        for col in a:
            x, y = a[col], b[col]
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=1e-6, abs_tol=2e-3), (a["entity"], col, x, y)
            else:
                assert x == y, (a["entity"], col, x, y)


def test_job_csv_has_the_documented_columns(site):
    rows = build_report(site["sqlite"], site["cfg"], site["period"], by="job")
    out = io.StringIO()
    write_csv(rows, out)
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    for col in ("job", "account", "gpus", "start", "end", "gpu_kwh", "chargeback_method"):
        assert col in parsed[0]
    assert {r["level"] for r in parsed} == {"site", "job"}


def test_twin_month_tenants_add_up_to_the_site_within_half_a_percent(tmp_path):
    """The chargeback check on the twin: a month of hourly steps, jobs of several tenants
    sharing racks; the tenants' facility kWh (billed by job) against the site's metered kWh."""
    from pathlib import Path

    from dcim.config import load_config
    from dcim.report import month
    from simulator.backfill import backfill
    from simulator.facility import FacilityTwin

    cfg = load_config(Path(__file__).parent / "mini_site.toml")
    # The backfill writes a workload point per GPU per hourly step: each stands for the hour.
    cfg = cfg.model_copy(update={"workload": cfg.workload.model_copy(update={"interval_s": 3600.0})})
    period = month("2026-07", cfg.site.timezone)
    store = SqliteStore(tmp_path / "twin.sqlite", timezone=cfg.site.timezone)
    try:
        twin = FacilityTwin(cfg, seed=cfg.simulator.seed, start_ns=period.start_ns - H_NS)
        backfill(twin, store, days=(period.end_ns - period.start_ns + 2 * H_NS) / 86400e9, step_s=3600,
                 end_ns=period.end_ns + H_NS)
        store.flush()
        store.maintain()
        rows = build_report(store, cfg, period, by="tenant")
        site_fac = float(rows[0]["facility_kwh"])
        billed = sum(float(r["facility_kwh"]) for r in rows[1:] if r["facility_kwh"] != "")
        methods = {r["chargeback_method"] for r in rows[1:]}
        assert methods & {"job", "mixed"}, methods  # the twin's jobs were billed
        print(f"twin month: tenants {billed:.3f} kWh vs site {site_fac:.3f} kWh, "
              f"{100 * (billed - site_fac) / site_fac:+.4f} %, methods {sorted(methods)}")
        assert abs(billed - site_fac) / site_fac <= 0.005, (billed, site_fac)
        jobs = build_report(store, cfg, period, by="job")
        assert sum(1 for r in jobs if r["chargeback_method"] == "job") > 3
    finally:
        store.close()
