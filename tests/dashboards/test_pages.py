"""The figures the pages show, as plain functions with expected values worked out here: cooling
without double counting, headroom per UPS and hall, energy coverage, the optimizer's rows kept
apart, times in the site's zone, kiosk paging and rotation, the lazily opened store."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dash import no_update

from dashboards import components as c
from dashboards.app import create_app, next_kiosk_path, next_table_pages, table_pages_left
from dashboards.data import trim_heap
from dashboards.lazystore import LazyStore
from dashboards.pages import cooling, energy, make_ctx, optimizer, power
from dcim.metrics import Point
from dcim.store.base import Series, StoreUnavailable
from tests.dashboards import sitedata as S

NS = 1_000_000_000


def unit(name, kind, cooling_kw, power_w, stale=False):
    return {"unit": name, "room": "hall-1", "kind": kind, "cooling_kw": cooling_kw, "power_w": power_w, "stale": stale}


def test_cooling_output_counts_the_hall_units_once_and_cop_only_when_fresh():
    # two CRAHs move 226 kW out of the hall; the chiller reports the same heat again (227 kW)
    units = [unit("crah-1", "crah", 110.0, 9_000.0), unit("crah-2", "inrow", 116.0, 7_000.0),
             unit("chiller-1", "chiller", 227.0, 52_000.0)]
    tot = cooling.plant_totals(units)
    assert tot["output_kw"] == pytest.approx(226.0)
    assert tot["input_kw"] == pytest.approx(68.0)
    assert tot["cop"] == pytest.approx(226.0 / 68.0)
    # the chiller's reading is minutes old: input from the fresh ones only, and no COP
    units[2]["stale"] = True
    tot = cooling.plant_totals(units)
    assert tot["input_kw"] == pytest.approx(16.0) and tot["cop"] is None and tot["stale_units"] == 1


def test_ups_headroom_per_ups_and_per_hall_never_across_halls():
    cfg = S.make_config()
    snap = {"ups": [{"ups": "ups-1", "capacity_kw": 500.0, "output_power_w": 430_000.0, "stale": False},
                    {"ups": "ups-2", "capacity_kw": 500.0, "output_power_w": 120_000.0, "stale": False}],
            "pdus": []}
    halls = {r["room"]: r for r in power.hall_rows(snap, cfg.ups, ["hall-1", "hall-2"])}
    assert halls["hall-1"]["headroom_kw"] == 70 and halls["hall-1"]["ups"] == "ups-1"
    assert halls["hall-2"]["headroom_kw"] == 380 and halls["hall-2"]["load_pct"] == 24
    s = power.chain_summary(snap, 0.8)
    # the tightest UPS, not 450 kW "together": hall-1 cannot use ups-2's spare capacity
    assert s["ups_headroom_kw"] == pytest.approx(70.0) and s["ups_tightest"] == "ups-1"
    assert s["ups_load_pct"] == pytest.approx(86.0)


def test_daily_pue_uses_measured_hours_only():
    tz = "Asia/Seoul"
    day = datetime(2026, 7, 1, tzinfo=ZoneInfo(tz))
    t0 = int(day.timestamp()) * NS
    times = [t0 + h * 3600 * NS for h in range(24)]
    total = [None] * 24
    it = [None] * 24
    for h in (3, 4, 10):  # three measured hours in the day
        total[h], it[h] = 120.0 * (h + 1), 100.0 * (h + 1)
    days, pue, hours = energy.daily_pue([Series({}, times, {"total_power_w": total, "it_power_w": it})], tz)
    assert days == ["2026-07-01"] and hours == [3]
    assert pue == [pytest.approx(1.2)]
    assert energy.coverage_text(3, 24, "en") == "12 % of hours with data (3 of 24 h)"


def test_energy_page_says_coverage_and_names_empty_quarters(tmp_path):
    store = S.open_test_store(tmp_path / "s.sqlite")
    S.populate(store)  # 31 days of facility history: the older quarters are empty
    app = create_app(S.make_config(), store)
    ctx = make_ctx(app.data, "")
    rows = energy.quarter_rows(ctx)
    assert rows[0][1] > 0 and rows[0][1] <= rows[0][2]
    assert all(have == 0 for _, have, _ in rows[2:])
    text = str(energy.layout(ctx))
    assert text.count("no data in this quarter: nothing to report") >= 3
    assert f"period={rows[-1][0]}&" not in text  # no CSV offered for an empty quarter
    store.close()


def test_optimizer_rows_kept_apart_and_measured_next_to_estimated():
    now = time.time_ns()
    pts = [Point("optimizer", {"site": "s", "host": "h1", "uuid": "GPU-1", "action": "cap"},
                 {"power_limit_w": 500.0, "previous_w": 700.0, "reason": "efficiency: training curve", "mode": "enforce",
                  "est_saving_w": 90.0}, now - 5 * NS),
           Point("optimizer", {"site": "s", "host": "", "uuid": "", "action": "cycle"},
                 {"reason": "3 decisions, 1 renewed", "mode": "enforce", "est_saving_w": 300.0}, now - 4 * NS),
           Point("optimizer", {"site": "s", "host": "", "uuid": "", "action": "measured"},
                 {"measured_saving_pct": 6.3, "measured_ci_low_pct": 3.5, "measured_ci_high_pct": 9.0,
                  "treated_jobs": 30, "control_jobs": 8}, now - 3 * NS)]
    rows = optimizer.decision_rows(pts, "Asia/Seoul", "en")
    assert [r["uuid"] for r in rows] == ["GPU-1"] and rows[0]["reason"] == "efficiency: training curve"
    cyc = optimizer.cycle_rows(pts, "Asia/Seoul", "en")
    assert len(cyc) == 1 and cyc[0]["saving_kw"] == 0.3
    m = optimizer.measured(pts)
    assert optimizer.measured_text(m, "en") == "6.3 % (95 % CI 3.5–9.0 %)"
    assert optimizer.measured_groups(m, "ko") == "제한 대상 작업 30개 대 대조군 8개"
    ko = optimizer.decision_rows(pts, "Asia/Seoul", "ko")
    assert ko[0]["action"] == "제한" and ko[0]["mode"] == "적용"
    gpus = [{"job_class": "training", "job": "1", "power_limit_w": 500.0, "power_limit_default_w": 700.0},
            {"job_class": "training", "job": "1", "power_limit_w": 700.0, "power_limit_default_w": 700.0},
            {"job_class": "inference", "job": "2", "power_limit_w": 700.0, "power_limit_default_w": 700.0}]
    classes = {r["job_class"]: r for r in optimizer.class_rows(gpus, {"training": 0.05, "inference": 0.0}, "en")}
    assert classes["training"] == {"job_class": "training", "gpus": 2, "capped": 1, "cap_pct": 71.0,
                                   "loss_bound_pct": 5.0, "_state": "ok"}
    assert classes["inference"]["capped"] == 0 and classes["inference"]["loss_bound_pct"] == 0.0


def test_chart_times_are_site_local_and_labelled():
    t_ns = int(datetime(2026, 7, 1, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()) * NS
    assert c.local_x([t_ns], "Asia/Seoul") == ["2026-07-01 09:30:00"]
    axis = c.time_axis("Asia/Seoul", "ko")
    assert axis["title"]["text"] == "시각 (KST)" and axis["type"] == "date"


def test_kiosk_pages_tables_then_moves_on_skipping_empty_pages():
    rows = [{}] * 20
    # the PDU table has 3 pages of 8, the feed table 1: page on, longest sets the pace
    assert table_pages_left([rows, rows[:5]], [8, 8], [0, 0])
    assert next_table_pages([rows, rows[:5]], [8, 8], [0, 0], 2) == [1, 0]
    assert next_table_pages([rows, rows[:5]], [8, 8], [1, 0], 2) == [2, 0]
    assert not table_pages_left([rows, rows[:5]], [8, 8], [2, 0])
    assert next_table_pages([rows], [8], [2], 1) == [no_update]
    # garbage from a client counts as one page, never an error
    assert not table_pages_left(["x", None], [0, "8"], [None, -1])
    assert next_kiosk_path("/", lambda p: p != "/alarms") == "/power"
    assert next_kiosk_path("/", lambda p: True) == "/alarms"
    assert next_kiosk_path("/optimizer", lambda p: False) == "/"


def test_lazy_store_retries_until_the_store_opens():
    attempts = []
    clock = [0.0]

    def opener():
        attempts.append(clock[0])
        if len(attempts) < 3:
            raise StoreUnavailable("no SQLite store at /x")
        return "the store"

    class Fake:
        pass

    def opened():
        f = Fake()
        f.latest = lambda m: [m]
        return f

    lazy = LazyStore(lambda: opener() and opened(), retry_s=2.0, clock=lambda: clock[0])
    with pytest.raises(StoreUnavailable, match="not available yet"):
        lazy.latest("gpu")
    with pytest.raises(StoreUnavailable):  # within retry_s: no new attempt
        lazy.latest("gpu")
    assert len(attempts) == 1
    clock[0] = 2.5
    with pytest.raises(StoreUnavailable):
        lazy.latest("gpu")
    clock[0] = 5.0
    assert lazy.latest("gpu") == ["gpu"] and lazy.opened and len(attempts) == 3


def test_heap_trim_is_callable():
    assert trim_heap() in (True, False)
