"""A SQLite store file from before the layout migrations opens, upgrades once, and reads the
same answers.

``data/sqlite_v1.sqlite.gz`` was written by the SQLite store of commit cbdf83c (the layout version
sat in ``meta``, no ``user_version``; tables ``r1h_gpu``, ``k1d_gpu``, ``g1h_gpu``, ``m1mo_gpu``…)
from ``points()`` below, and ``data/sqlite_v1_answers.json`` holds what that code answered
from it (``data/make_sqlite_v1.py`` makes both). The upgraded file must answer the same, to
the last bit, and the counter increase must also match the points sample by sample.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from dcim.metrics import Point
from dcim.store.base import BucketStats, StoreUnavailable
from dcim.store.sqlite import SqliteStore, schema
from tests.store.contract import sample_by_sample_increase

DATA = Path(__file__).parent / "data"
FILE = DATA / "sqlite_v1.sqlite.gz"
ANSWERS = DATA / "sqlite_v1_answers.json"
S = 1_000_000_000
HOUR = 3600 * S
DAY = 24 * HOUR
START_NS = 1_781_913_600 * S  # 2026-06-20 00:00 UTC
DAYS = 43  # to 2026-08-02: the whole of July and a little of June and August in Asia/Seoul
NOW_NS = START_NS + 90 * DAY  # maintain()'s now: everything rolled up, raw and minutes expired
JULY_KST = 1_782_831_600 * S  # 2026-07-01 00:00 Asia/Seoul (2026-06-30 15:00 UTC)
AUGUST_KST = JULY_KST + 31 * DAY


def points() -> list[Point]:
    """Three GPUs in two racks (power, utilisation, an energy counter that resets once) and a PDU
    per rack, every hour; deterministic."""
    rng = random.Random(25)
    out: list[Point] = []
    gpus = [("r01", "n1", 0), ("r01", "n1", 1), ("r02", "n1", 0)]
    energy = {g: 1e9 * (i + 1) for i, g in enumerate(gpus)}
    pdu_kwh = {"r01": 100.0, "r02": 200.0}
    for step in range(DAYS * 24):
        t = START_NS + step * HOUR + rng.randrange(0, 600) * S
        for rack, host, gpu in gpus:
            power = round(rng.uniform(150, 700), 3)
            energy[(rack, host, gpu)] += power * 3600
            if step == 500 and gpu == 1:
                energy[(rack, host, gpu)] = power * 60  # the driver reloaded: the counter restarts
            tags = {"site": "s1", "room": "hall1", "rack": rack, "host": host, "gpu": str(gpu),
                    "uuid": f"GPU-{rack}-{host}-{gpu}", "model": "H100"}
            out.append(Point("gpu", tags, {"power_w": power, "util_pct": round(rng.uniform(0, 100), 2),
                                           "energy_j": energy[(rack, host, gpu)]}, t))
        for rack in pdu_kwh:
            power = round(rng.uniform(2000, 9000), 1)
            pdu_kwh[rack] += power / 1000
            out.append(Point("pdu", {"site": "s1", "room": "hall1", "rack": rack, "pdu": f"{rack}-a", "feed": "A"},
                             {"power_w": power, "energy_kwh": round(pdu_kwh[rack], 4)}, t))
    return out


def _series(found) -> list:
    return [[s.tags, s.times_ns, s.values] for s in found]


def _keyed(found: dict) -> list:
    def plain(v):
        return [v.buckets, v.total, v.peak, v.peak_ns] if isinstance(v, BucketStats) else list(v)

    return [[list(k), plain(v)] for k, v in sorted(found.items())]


def answers(store) -> dict:
    """What a report, a dashboard and the optimizer ask of a store, JSON-shaped."""
    odd_start, odd_end = START_NS + 3 * DAY + 7 * HOUR + 13 * S, START_NS + 40 * DAY + 5 * HOUR
    counters, hourly = store.period_figures("pdu", JULY_KST, AUGUST_KST, counters=["energy_kwh"],
                                            hourly=["power_w"], group_by=["rack"])
    return {
        "daily_mean_by_rack": _series(store.query("gpu", ["power_w", "util_pct"], JULY_KST, AUGUST_KST,
                                                  every_s=86400, group_by=["rack"])),
        "hourly_max_by_gpu": _series(store.query("gpu", ["power_w"], odd_start, odd_start + 30 * HOUR,
                                                 every_s=3600, agg="max", group_by=["uuid"])),
        "last_energy": _series(store.query("gpu", ["energy_j"], odd_start, odd_end, agg="last", group_by=["uuid"])),
        "july_hours_by_gpu": _keyed(store.bucket_stats("gpu", "power_w", JULY_KST, AUGUST_KST, 3600,
                                                       group_by=["uuid"])),
        "week_hours_by_rack": _keyed(store.bucket_stats("gpu", "power_w", START_NS + 10 * DAY, START_NS + 17 * DAY,
                                                        3600, group_by=["rack"])),
        "july_energy_by_gpu": _keyed(store.counter_increase("gpu", "energy_j", JULY_KST, AUGUST_KST,
                                                            group_by=["uuid"])),
        "odd_energy_by_gpu": _keyed(store.counter_increase("gpu", "energy_j", odd_start, odd_end, group_by=["uuid"])),
        "july_pdu_energy": _keyed(counters["energy_kwh"]),
        "july_pdu_power": _keyed(hourly["power_w"]),
    }


@pytest.fixture
def old_file(tmp_path) -> Path:
    path = tmp_path / "store.sqlite"
    with gzip.open(FILE, "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def test_the_fixture_is_the_old_layout(old_file):
    con = sqlite3.connect(old_file)
    tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert con.execute("PRAGMA user_version").fetchone() == (0,)
    assert {"r1h_gpu", "r1d_gpu", "k1d_gpu", "g1h_gpu", "g1d_gpu", "h1d_gpu", "m1mo_gpu"} <= tables
    con.close()


def test_old_file_upgrades_once_and_reads_the_same_answers(old_file, monkeypatch):
    with pytest.raises(StoreUnavailable, match="upgrades it"):  # a reader waits for a writer's upgrade
        SqliteStore(old_file, readonly=True, timezone="Asia/Seoul")
    steps: list[str] = []
    for name in ("_catch_up_v1", "_rename_v2"):
        step = getattr(schema, name)
        monkeypatch.setattr(schema, name, lambda conn, _step=step, _name=name: (steps.append(_name), _step(conn)))
    SqliteStore(old_file, timezone="Asia/Seoul").close()
    assert steps == ["_catch_up_v1", "_rename_v2"]
    SqliteStore(old_file, timezone="Asia/Seoul").close()  # already upgraded: no step again
    assert steps == ["_catch_up_v1", "_rename_v2"]

    con = sqlite3.connect(old_file)
    tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    indexes = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    meta = dict(con.execute("SELECT key, value FROM meta"))
    assert con.execute("PRAGMA user_version").fetchone() == (schema.LATEST_VERSION,)
    con.close()
    assert {"rollup_hour_gpu", "rollup_day_gpu", "counter_day_gpu", "group_hour_gpu", "group_day_gpu",
            "day_hour_stats_gpu", "month_gpu"} <= tables
    assert not [t for t in tables if t.split("_")[0] in ("r1m", "r1h", "r1d", "h1d", "k1d", "g1h", "g1d", "m1mo")]
    assert "rollup_hour_gpu_energy_j_counter" in indexes and "r1h_gpu_energy_j_counter" not in indexes
    assert not [k for k in meta if k.startswith(("r1d_from:", "g1_from:"))]
    assert "day_rollup_from:gpu" in meta and "mo_to:gpu:Asia/Seoul" in meta

    want = json.loads(ANSWERS.read_text())
    with SqliteStore(old_file, readonly=True, timezone="Asia/Seoul") as reader:
        got = json.loads(json.dumps(answers(reader)))
    for key in want:
        assert got[key] == want[key], key
    assert want["july_hours_by_gpu"] and want["daily_mean_by_rack"]  # the answers hold something


def test_upgraded_file_counts_energy_as_the_points_do(old_file):
    # Whole hours: raw points have expired, and an hour holds one sample of each series.
    odd_start, odd_end = START_NS + 3 * DAY + 7 * HOUR, START_NS + 40 * DAY + 5 * HOUR
    gpu_points = [p for p in points() if p.measurement == "gpu"]
    want = sample_by_sample_increase(gpu_points, "energy_j", odd_start, odd_end)
    with SqliteStore(old_file, timezone="Asia/Seoul") as store:
        got = store.counter_increase("gpu", "energy_j", odd_start, odd_end, group_by=["uuid"])
        assert got.keys() == want.keys()
        for key, (increase, resets) in want.items():
            assert got[key][1] == resets and got[key][0] == pytest.approx(increase, rel=1e-12), key
        # and it keeps working as a store: new points roll up into the renamed tables
        later = START_NS + 60 * DAY
        store.write([Point("gpu", {"site": "s1", "room": "hall1", "rack": "r01", "host": "n1", "gpu": "0",
                                   "uuid": "GPU-r01-n1-0", "model": "H100"}, {"power_w": 321.0}, later)])
        store.maintain(now_ns=later + HOUR)
        got = store.query("gpu", ["power_w"], later - HOUR, later + HOUR, every_s=3600, group_by=["uuid"])
        assert [(s.tags, s.values["power_w"]) for s in got] == [({"uuid": "GPU-r01-n1-0"}, [321.0])]
