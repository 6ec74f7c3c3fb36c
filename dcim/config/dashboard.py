"""[dashboard] (the web pages) and [simulator] (the digital twin that stands in for a facility)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcim.config.base import (
    SecretRef,
    Strict,
    check_host,
)


class DashboardSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)  # 0: any free port
    lang: Literal["en", "ko"] = "en"
    refresh_s: float = Field(10.0, ge=1, le=3600)
    kiosk_rotate_s: float = Field(30.0, ge=5, le=3600)
    auth_user: str | None = Field(None, min_length=1, max_length=256)
    auth_password: SecretRef | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)

    @model_validator(mode="after")
    def _auth_pair(self) -> DashboardSettings:
        if (self.auth_user is None) != (self.auth_password is None):
            raise ValueError("basic auth needs both 'auth_user' and 'auth_password'")
        return self


class SimulatorSettings(Strict):
    seed: int = Field(42, ge=-(2**63), lt=2**63)  # what TOML's integers hold
    speed: float = Field(1.0, gt=0, le=100000)
    backfill_days: float = Field(14.0, ge=0, le=400)
    weather: Literal["daejeon", "seoul", "constant"] = "daejeon"
    # Scheduled twin faults (simulator/twin_faults.py): "cooling:UNIT:HH:MM-HH:MM" daily in the
    # site's time zone, or "cooling:UNIT:+2m-+12m" once after the twin starts.
    faults: list[str] = Field(default_factory=list, max_length=100)

