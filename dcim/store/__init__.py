"""The store: one narrow interface (``base.Store``), two implementations (SQLite, InfluxDB)."""

from dcim.store.base import AGGREGATES, Series, Store, StoreError, StoreUnavailable

__all__ = ["AGGREGATES", "Series", "Store", "StoreError", "StoreUnavailable", "open_store"]


def open_store(config, *, readonly: bool = False) -> Store:
    """Open the store the config names (``[store] backend``). A SQLite path that cannot be
    created or opened for writing raises ConfigError naming ``store.path`` (the command line
    prints it and exits 2, no traceback); a read-only open of a missing file stays
    StoreUnavailable (nothing collected yet)."""
    settings = config.store
    if settings.backend == "sqlite":
        from dcim.store.sqlite import SqliteStore

        try:
            return SqliteStore(settings.path, raw_retention_days=settings.raw_retention_days,
                               rollup_1m_retention_days=settings.rollup_1m_retention_days, readonly=readonly,
                               timezone=config.site.timezone)
        except OSError as exc:
            raise _path_error(settings.path, f"{exc.strerror or exc}: {exc.filename or settings.path}") from None
        except StoreUnavailable as exc:
            if readonly:
                raise
            raise _path_error(settings.path, str(exc)) from None
    from dcim.store.influx import InfluxStore

    return InfluxStore.from_settings(settings.influxdb, timezone=config.site.timezone)


def _path_error(path, why: str):
    from dcim.config import ConfigError

    return ConfigError([("store.path", f"cannot open the SQLite store {path} for writing: {why}")], "store")
