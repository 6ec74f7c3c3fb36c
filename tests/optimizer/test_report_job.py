"""The daemon's quarterly report job: the right quarter, in the site's zone, written once."""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler

from dcim.config import load_config
from dcim.metrics import Point
from dcim.report import quarter
from dcim.store.sqlite import SqliteStore
from optimizer.report_job import report_paths, schedule, write_quarterly_reports
from tests.report.test_report_store import HERE


def test_writes_the_previous_quarter_once(tmp_path):
    cfg = load_config(HERE / "mini_site.toml").model_copy(deep=True)
    cfg = cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={"report_dir": tmp_path / "reports"})})
    q3 = quarter("2026Q3", cfg.site.timezone)
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.write([Point("meter", {"site": "mini", "meter": "main", "role": "facility_total"},
                           {"energy_kwh": 1000.0 + i, "power_w": 1000.0}, q3.start_ns + i * 3_600_000_000_000)
                     for i in range(0, 2208, 24)])
        # 1 October 00:30 in Seoul is still 30 September in UTC: the quarter must follow the site's zone.
        now = datetime(2026, 10, 1, 0, 30, tzinfo=ZoneInfo("Asia/Seoul"))
        written = write_quarterly_reports(cfg, store, now)
        paths = report_paths(cfg, "2026Q3")
        assert sorted(written) == sorted(paths.values()) and all(p.exists() for p in written)
        text = paths["rack"].read_text(encoding="utf-8-sig")
        first = next(csv.reader(io.StringIO(text.splitlines()[1])))  # text cells are quoted
        assert first[:2] == ["2026Q3", "2026-07-01T00:00:00+09:00"]
        stamp = paths["rack"].stat().st_mtime_ns
        assert write_quarterly_reports(cfg, store, now) == []  # idempotent
        assert paths["rack"].stat().st_mtime_ns == stamp


def test_job_is_scheduled_on_the_first_day_of_each_quarter_in_site_time(tmp_path):
    cfg = load_config(HERE / "mini_site.toml")
    scheduler = BackgroundScheduler(timezone="UTC")
    schedule(scheduler, cfg, open_store=None)
    trigger = scheduler.get_job("quarterly-report").trigger
    after = datetime(2026, 11, 23, tzinfo=ZoneInfo("UTC"))
    fire = trigger.get_next_fire_time(None, after)
    assert fire.astimezone(ZoneInfo("Asia/Seoul")).replace(tzinfo=None) == datetime(2027, 1, 1, 1, 0)


def test_the_catch_up_at_start_is_the_same_job_run_now(tmp_path):
    """One job, first run now, then the quarterly cron: a separate one-off job raced with its own
    removal when the daemon stopped right after starting (JobLookupError in the log)."""
    cfg = load_config(HERE / "mini_site.toml")
    scheduler = BackgroundScheduler(timezone="UTC")
    schedule(scheduler, cfg, open_store=None)
    [job] = scheduler.get_jobs()
    assert job.id == "quarterly-report"
    assert job.next_run_time <= datetime.now(ZoneInfo("UTC"))
