"""The optimizer's savings in the report: the cycle rows' integral is the total, shared out to
racks by the savings its decisions estimated, recomputed here from the points written."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.config import load_config
from dcim.inventory import build_inventory
from dcim.metrics import Point
from dcim.report import build_report, quarter
from dcim.store.sqlite import SqliteStore

HERE = Path(__file__).parent
NS = 10**9


def test_savings_integrate_the_cycles_and_share_them_by_decisions(tmp_path):
    cfg = load_config(HERE / "mini_site.toml")
    q = quarter("2026Q3", cfg.site.timezone)
    hosts = {s.rack: s.host for s in build_inventory(cfg).servers}
    store = SqliteStore(tmp_path / "s.sqlite")
    t0 = q.start_ns + 5 * 86400 * NS
    cycle_tags = {"site": "mini", "host": "", "uuid": "", "action": "cycle"}
    pts, hourly_means = [], []
    for h in range(48):  # two days, a cycle every 15 minutes, the saving changing by the hour
        values = [1000.0 + 50 * h + 10 * k for k in range(4)]
        hourly_means.append(sum(values) / 4)
        pts += [Point("optimizer", cycle_tags, {"est_saving_w": v, "mode": "enforce"}, t0 + h * 3600 * NS + k * 900 * NS)
                for k, v in enumerate(values)]
    # decisions: R01's host twice the estimated saving of R02's, once each, at a cap change
    for rack, watts in (("R01", 200.0), ("R02", 100.0)):
        pts.append(Point("optimizer", {"site": "mini", "host": hosts[rack], "uuid": f"GPU-{rack}", "action": "set"},
                         {"est_saving_w": watts, "power_limit_w": 500.0}, t0 + 600 * NS))
    store.write(pts)
    store.maintain()
    total_kwh = sum(hourly_means) / 1000  # one hour per mean
    rows = {r["entity"]: r for r in build_report(store, cfg, q, by="rack")}
    assert rows["mini"]["optimizer_saved_kwh"] == pytest.approx(total_kwh, abs=0.001)
    assert rows["R01"]["optimizer_saved_kwh"] == pytest.approx(total_kwh * 2 / 3, abs=0.001)
    assert rows["R02"]["optimizer_saved_kwh"] == pytest.approx(total_kwh / 3, abs=0.001)
    assert rows["R03"]["optimizer_saved_kwh"] == 0
    store.close()
