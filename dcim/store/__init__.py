"""The store: one narrow interface (``base.Store``), two implementations (SQLite, InfluxDB)."""

from dcim.store.base import AGGREGATES, Series, Store, StoreError, StoreUnavailable

__all__ = ["AGGREGATES", "Series", "Store", "StoreError", "StoreUnavailable", "open_store"]


def open_store(config, *, readonly: bool = False) -> Store:
    """Open the store the config names (``[store] backend``)."""
    settings = config.store
    if settings.backend == "sqlite":
        from dcim.store.sqlite import SqliteStore

        return SqliteStore(settings.path, raw_retention_days=settings.raw_retention_days,
                           rollup_1m_retention_days=settings.rollup_1m_retention_days, readonly=readonly,
                           timezone=config.site.timezone)
    from dcim.store.influx import InfluxStore

    return InfluxStore.from_settings(settings.influxdb, timezone=config.site.timezone)
