"""[store]: the SQLite or InfluxDB backend, its retention, and the spool that holds points
while the store is away."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcim.config.base import (
    INFLUX_AUTH_HINT,
    MAX_TIMEOUT_S,
    MIN_INTERVAL_S,
    Name,
    SecretRef,
    Strict,
    check_url,
)


class InfluxSettings(Strict):
    url: str = "http://127.0.0.1:8086"
    database: Name = "dcim"
    auth: Literal["none", "basic", "token"] = "none"
    username: str | None = Field(None, min_length=1, max_length=256)
    password: SecretRef | None = None
    token: SecretRef | None = None
    batch_size: int = Field(5000, ge=1, le=100000)
    flush_interval_s: float = Field(1.0, ge=0.01, le=60)
    gzip: bool = True
    timeout_s: float = Field(10.0, ge=MIN_INTERVAL_S, le=MAX_TIMEOUT_S)
    max_retries: int = Field(5, ge=0, le=100)
    create_database: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return check_url(value, INFLUX_AUTH_HINT)

    @model_validator(mode="after")
    def _auth_needs(self) -> InfluxSettings:
        if self.auth == "basic" and (self.username is None or self.password is None):
            raise ValueError("auth = 'basic' needs 'username' and 'password'")
        if self.auth == "token" and self.token is None:
            raise ValueError("auth = 'token' needs 'token'")
        return self


class SpoolSettings(Strict):
    path: Path = Path("var/spool")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024, le=1 << 40)  # 1 KiB to 1 TiB


class StoreSettings(Strict):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    path: Path = Path("var/dcim.sqlite")
    raw_retention_days: float = Field(7.0, gt=0, le=36500)  # ns must fit SQLite INTEGER
    rollup_1m_retention_days: float = Field(90.0, gt=0, le=36500)
    influxdb: InfluxSettings = InfluxSettings()
    spool: SpoolSettings = SpoolSettings()

