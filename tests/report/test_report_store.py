"""The report on a backfilled quarter of the twin, checked against figures the test computes
itself from the points that went into the store (never from the report's own arithmetic)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import pytest

from dcim.config import load_config
from dcim.report import build_report, quarter, write_csv
from dcim.store.base import Store
from dcim.store.sqlite import SqliteStore
from simulator.backfill import backfill
from simulator.facility import FacilityTwin

HERE = Path(__file__).parent
STEP_S = 3600
GAP_PDU = "pdu-R02-b"  # a week of its data never reaches the "gap" store
LATE_PDU = "pdu-R03-b"  # "added mid-quarter" in the "added" store
RESET_PDU = "pdu-R01-a"  # its counter is reset mid-quarter in every store


class Recorder(Store):
    """Writes to several stores, dropping points per store by a rule, and keeps the PDU and
    meter points and the GPUs' utilisation it saw so the test can compute the truth on its own."""

    def __init__(self, targets):
        self.targets = targets  # [(store, drop(point) -> bool)]
        self.seen = []
        self.gpu_util = []  # (rack, uuid, time_ns, util_pct)

    def write(self, points):
        self.seen += [p for p in points if p.measurement in ("pdu", "meter")]
        self.gpu_util += [(p.tags["rack"], p.tags["uuid"], p.time_ns, p.fields["util_pct"]) for p in points
                          if p.measurement == "gpu" and "util_pct" in p.fields]
        for store, drop in self.targets:
            store.write([p for p in points if not drop(p)])

    def flush(self):
        for store, _ in self.targets:
            store.flush()

    def maintain(self):
        for store, _ in self.targets:
            getattr(store, "maintain", lambda: None)()

    def query(self, *a, **k):
        raise NotImplementedError

    def latest(self, *a, **k):
        raise NotImplementedError


@pytest.fixture(scope="module")
def quarter_data(tmp_path_factory):
    cfg = load_config(HERE / "mini_site.toml")
    q = quarter("2026Q3", cfg.site.timezone)
    d = tmp_path_factory.mktemp("report")
    full, gap, added = (SqliteStore(d / f"{n}.sqlite") for n in ("full", "gap", "added"))
    week_ns = 7 * 86400 * 10**9
    gap_start = q.start_ns + 30 * 86400 * 10**9
    mid = q.start_ns + 46 * 86400 * 10**9
    # The variant stores only need what rack energy and site totals read.
    lean = {"pdu", "meter", "ups", "facility"}
    rec = Recorder([
        (full, lambda p: False),
        (gap, lambda p: p.measurement not in lean
         or (p.tags.get("pdu") == GAP_PDU and gap_start <= p.time_ns < gap_start + week_ns)),
        (added, lambda p: p.measurement not in lean or (p.tags.get("pdu") == LATE_PDU and p.time_ns < mid)),
    ])
    # History from a day before the quarter to a day after it, with a counter reset in the middle.
    start_ns, end_ns = q.start_ns - 86400 * 10**9, q.end_ns + 86400 * 10**9
    twin = FacilityTwin(cfg, seed=cfg.simulator.seed, start_ns=start_ns)
    reset_step = (mid - start_ns) // (STEP_S * 10**9)

    def reset_mid_quarter(done: int, _total: int) -> None:
        if done == reset_step:
            twin.reset_energy_counter(RESET_PDU)

    backfill(twin, rec, days=(end_ns - start_ns) / 86400e9, step_s=STEP_S, end_ns=end_ns, progress=reset_mid_quarter)
    yield {"cfg": cfg, "q": q, "full": full, "gap": gap, "added": added, "seen": rec.seen, "gpu_util": rec.gpu_util,
           "gap_window": (gap_start, gap_start + week_ns), "mid": mid}
    for s in (full, gap, added):
        s.close()


def truth_counter_kwh(points, q, key, name, field="energy_kwh"):
    """Reset-aware energy from the raw counter samples inside the period."""
    samples = sorted(((p.time_ns, p.fields[field]) for p in points
                     if p.tags.get(key) == name and field in p.fields and q.start_ns <= p.time_ns < q.end_ns), key=lambda s: s[0])
    total = 0.0
    for (_, a), (_, b) in zip(samples, samples[1:]):
        total += b - a if b >= a else b
    return total


def truth_integrated_kwh(points, q, name):
    return sum(p.fields["power_w"] * STEP_S / 3.6e6 for p in points
               if p.measurement == "pdu" and p.tags["pdu"] == name and "power_w" in p.fields
               and q.start_ns <= p.time_ns < q.end_ns)


def rows_by(store, data, by):
    return {r["entity"]: r for r in build_report(store, data["cfg"], data["q"], by=by)}


def test_sum_of_racks_equals_it_energy(quarter_data):
    rows = rows_by(quarter_data["full"], quarter_data, "rack")
    site = rows.pop("mini")
    assert site["it_method"] == "counter"
    assert sum(r["it_kwh"] for r in rows.values()) == pytest.approx(site["it_kwh"], rel=1e-6)
    rooms = rows_by(quarter_data["full"], quarter_data, "room")
    assert rooms["hall"]["it_kwh"] == pytest.approx(site["it_kwh"], rel=1e-6)
    tenants = rows_by(quarter_data["full"], quarter_data, "tenant")
    assert tenants["univ"]["it_kwh"] == pytest.approx(rows["R01"]["it_kwh"] + rows["R02"]["it_kwh"], rel=1e-6)
    assert sum(tenants[t]["share_of_it_pct"] for t in ("univ", "lab")) == pytest.approx(100.0, abs=0.02)


def test_rack_energy_matches_the_raw_counters_and_integrated_power(quarter_data):
    q, seen = quarter_data["q"], quarter_data["seen"]
    rows = rows_by(quarter_data["full"], quarter_data, "rack")
    for rack in ("R01", "R02", "R03"):
        names = [f"pdu-{rack}-a", f"pdu-{rack}-b"]
        counter = sum(truth_counter_kwh([p for p in seen if p.measurement == "pdu"], q, "pdu", n) for n in names)
        integrated = sum(truth_integrated_kwh(seen, q, n) for n in names)
        # The report's counter figure equals the raw counter truth (up to the first sample's offset)...
        assert rows[rack]["it_kwh"] == pytest.approx(counter, rel=0.002), rack
        # ...and counters and integrated power agree within 1 %.
        assert rows[rack]["it_kwh"] == pytest.approx(integrated, rel=0.01), rack
    assert rows["R01"]["counter_resets"] >= 1 and rows["R02"]["counter_resets"] == 0


def test_pue_equals_facility_over_it_recomputed_from_raw(quarter_data):
    q, seen = quarter_data["q"], quarter_data["seen"]
    site = rows_by(quarter_data["full"], quarter_data, "site")["mini"]
    facility = truth_counter_kwh([p for p in seen if p.measurement == "meter"], q, "role", "facility_total")
    it = sum(truth_counter_kwh([p for p in seen if p.measurement == "pdu"], q, "pdu", p.name)
             for p in quarter_data["cfg"].pdus)
    assert site["facility_kwh"] == pytest.approx(facility, rel=0.002)
    assert site["pue"] == pytest.approx(facility / it, rel=0.003)
    assert 1.0 < site["pue"] < 3.0
    assert site["co2e_kg"] == pytest.approx(site["facility_kwh"] * 0.4173, rel=1e-6)
    assert site["pue_category"] == 2


def test_a_week_of_missing_data_lowers_coverage_not_silently_the_energy(quarter_data):
    full = rows_by(quarter_data["full"], quarter_data, "rack")
    gap = rows_by(quarter_data["gap"], quarter_data, "rack")
    expected_coverage = 100 * (1 - 7 / 92)
    assert gap["R02"]["coverage_pct"] == pytest.approx(expected_coverage, abs=0.2)
    assert full["R02"]["coverage_pct"] == 100.0
    # The counter kept counting through the gap, so the energy is still whole.
    assert gap["R02"]["it_kwh"] == pytest.approx(full["R02"]["it_kwh"], rel=1e-6)
    assert (gap["R01"]["it_kwh"], gap["R01"]["coverage_pct"]) == (full["R01"]["it_kwh"], full["R01"]["coverage_pct"])


def test_a_device_added_mid_quarter(quarter_data):
    q, seen, mid = quarter_data["q"], quarter_data["seen"], quarter_data["mid"]
    added = rows_by(quarter_data["added"], quarter_data, "rack")
    full = rows_by(quarter_data["full"], quarter_data, "rack")
    late_part = truth_counter_kwh([p for p in seen if p.measurement == "pdu" and p.time_ns >= mid], q, "pdu", LATE_PDU)
    other = truth_counter_kwh([p for p in seen if p.measurement == "pdu"], q, "pdu", "pdu-R03-a")
    assert added["R03"]["it_kwh"] == pytest.approx(other + late_part, rel=0.003)
    assert added["R03"]["it_kwh"] < full["R03"]["it_kwh"]
    assert added["R03"]["coverage_pct"] == pytest.approx(100 * (q.end_ns - mid) / (q.end_ns - q.start_ns), abs=0.2)


def test_gpu_hours_per_rack_from_the_raw_utilisation(quarter_data):
    """A rack's GPU-hours are the hours each of its GPUs reported utilisation, added up; busy
    GPU-hours the hourly mean utilisation over 100, added up. Recomputed from the raw points."""
    q = quarter_data["q"]
    hourly: dict[tuple, list] = defaultdict(list)
    for rack, uuid, t, util in quarter_data["gpu_util"]:
        if q.start_ns <= t < q.end_ns:
            hourly[(rack, uuid, t - t % (3600 * 10**9))].append(util)
    hours: dict[str, int] = defaultdict(int)
    busy: dict[str, float] = defaultdict(float)
    for (rack, _uuid, _hour), values in hourly.items():
        hours[rack] += 1
        busy[rack] += sum(values) / len(values) / 100.0
    rows = rows_by(quarter_data["full"], quarter_data, "rack")
    assert hours and set(hours) <= set(rows)
    for rack in rows:
        if rack == quarter_data["cfg"].site.name:
            continue
        assert rows[rack]["gpu_hours"] == pytest.approx(hours.get(rack, 0), abs=0.05), rack
        assert rows[rack]["gpu_busy_hours"] == pytest.approx(busy.get(rack, 0.0), abs=0.06), rack


def test_gpu_rows_and_csv_shape(quarter_data):
    rows = build_report(quarter_data["full"], quarter_data["cfg"], quarter_data["q"], by="gpu")
    gpus = [r for r in rows if r["level"] == "gpu"]
    assert len(gpus) == 12 and all(r["entity"].startswith("GPU-") for r in gpus)
    assert all(r["gpu_hours"] == 92 * 24 for r in gpus)
    out = io.StringIO()
    write_csv(rows, out)
    parsed = list(csv.reader(io.StringIO(out.getvalue())))
    assert parsed[0][:5] == ["period", "period_start", "period_end", "level", "entity"]
    assert all(len(r) == len(parsed[0]) for r in parsed)
    assert parsed[1][parsed[0].index("period_start")] == "2026-07-01T00:00:00+09:00"


def test_report_cli_writes_utf8_csv_with_korean(quarter_data, tmp_path):
    import os
    import subprocess
    import sys
    import tomllib

    import tomli_w

    data = tomllib.loads((HERE / "mini_site.toml").read_text(encoding="utf-8"))
    data["store"] = {"path": str(quarter_data["full"].path)}
    data["rooms"][0]["display_name"] = "전산실"
    cfg = tmp_path / "mini.toml"
    cfg.write_bytes(tomli_w.dumps(data).encode())
    out = tmp_path / "q3.csv"
    proc = subprocess.run([sys.executable, "-m", "dcim.cli.main", "report", "--config", str(cfg), "--quarter", "2026Q3",
                           "--by", "tenant", "-o", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(HERE.parents[1])})
    assert proc.returncode == 0, proc.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets open it as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["entity"] for r in rows] == ["mini", "lab", "univ"]
    bad = subprocess.run([sys.executable, "-m", "dcim.cli.main", "report", "--config", str(cfg), "--quarter", "2026Q7"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "2026Q3" in bad.stderr and "Traceback" not in bad.stderr
