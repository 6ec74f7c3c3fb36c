"""open_store() opens the store the config names with the site's time zone, the calendar of
the month rows a quarterly report reads (a store in another zone would read the days)."""

import tomllib
import uuid
from pathlib import Path

import pytest

from dcim.config import parse_config
from dcim.store import open_store
from dcim.store.influx import InfluxStore
from dcim.store.sqlite import SqliteStore

MINI_SITE = Path(__file__).parents[1] / "report" / "mini_site.toml"


def site_config(store: dict, timezone: str = "America/New_York"):
    data = tomllib.loads(MINI_SITE.read_text())
    data["site"]["timezone"] = timezone
    data["store"] = store
    return parse_config(data)


def test_sqlite_store_follows_the_site_zone(tmp_path):
    with open_store(site_config({"backend": "sqlite", "path": str(tmp_path / "s.sqlite")})) as store:
        assert isinstance(store, SqliteStore) and store.timezone == "America/New_York"


def test_influx_store_follows_the_site_zone(influxd):
    db = "z_" + uuid.uuid4().hex[:10]
    cfg = site_config({"backend": "influxdb", "influxdb": {"url": influxd.url, "database": db}}, "Asia/Seoul")
    with open_store(cfg) as store:
        assert isinstance(store, InfluxStore) and store.timezone == "Asia/Seoul"
        store.execute(f'DROP DATABASE "{db}"')


@pytest.mark.parametrize("make", [lambda tmp: SqliteStore(tmp / "x.sqlite", timezone="Mars/Olympus"),
                                  lambda tmp: InfluxStore("http://127.0.0.1:9", "x", timezone="Mars/Olympus")],
                         ids=["sqlite", "influx"])
def test_an_unknown_zone_is_refused_by_name(make, tmp_path):
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        make(tmp_path)
