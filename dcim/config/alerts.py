"""The ``[alerts]`` section: the alarm engine's schedule, flood control, site overrides of the
rule tables, and where notifications go (Alertmanager, webhooks, e-mail).

It lives in the core (``dcim.config`` embeds it in ``Config``) so that every part reads one
validated config, while the engine itself (``alerts/``) stays outside the core. It builds on
``dcim.config.base``: the strict model and the env-or-file secret reference (resolved by
``dcim.config.read_secret``), not copies of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcim.config.base import SecretRef, Strict

_RULE_NAME = r"^[a-z][a-z0-9_]*$"


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/@]+(/\S*)?$", value):
        raise ValueError(f"must be an http(s) URL without user:password@ (use the secret keys), got {value!r}")
    return value


Severity = Literal["warning", "critical"]


class RuleOverride(Strict):
    """A site's change to one rule of the tables (``alerts/rules/*.toml``), by rule name."""

    enabled: bool | None = None
    warning: float | None = None
    critical: float | None = None
    hysteresis: float | None = Field(None, ge=0)
    for_s: float | None = Field(None, ge=0, le=86400)


class AlertmanagerSettings(Strict):
    # Each Alertmanager of the site's HA cluster gets every alert (as Prometheus sends them).
    urls: list[str] = Field(min_length=1)
    # Firing alerts are re-posted at least this often: Alertmanager resolves one it has not heard
    # of for its resolve_timeout (5 min by default), and each post carries endsAt = now + 4 x this.
    resend_s: float = Field(60.0, ge=1, le=600)
    timeout_s: float = Field(5.0, gt=0, le=60)
    bearer_token: SecretRef | None = None

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_http_url(u) for u in value]


class WebhookSettings(Strict):
    url: str
    # HMAC-SHA256 over "<timestamp>.<body>", sent as X-Dcim-Signature: sha256=<hex>.
    secret: SecretRef | None = None
    min_severity: Severity = "warning"
    timeout_s: float = Field(5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class EmailSettings(Strict):
    host: str
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretRef | None = None
    from_addr: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)
    min_severity: Severity = "critical"
    timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        for addr in value:
            if not re.match(r"^[^@\s]+@[^@\s]+$", addr):
                raise ValueError(f"not an e-mail address: {addr!r}")
        return value

    @model_validator(mode="after")
    def _login_pair(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP login needs both 'username' and 'password'")
        return self


class AlertsSettings(Strict):
    enabled: bool = True  # run by `dcim up`; `dcim alerts` runs it regardless
    interval_s: float = Field(15.0, ge=1, le=3600)
    # A series is silent after this many of its expected intervals without a reading.
    silent_after_intervals: float = Field(3.0, ge=1.5, le=1000)
    # Flood control: more new alarms of one rule in one cycle than this become one aggregate
    # alarm; and at most max_raises_per_cycle raises a cycle (the rest wait for the next).
    flood_threshold: int = Field(20, ge=2, le=100_000)
    max_raises_per_cycle: int = Field(100, ge=1, le=100_000)
    # An active alarm's state is written again this often, so raw-data retention never drops
    # the state a restarted engine resumes from.
    restate_s: float = Field(6 * 3600.0, ge=60, le=86400)
    # Per notifier: a bounded queue (full: the message is dropped, counted and logged), retries
    # with exponential backoff up to retry_for_s.
    queue_size: int = Field(1000, ge=1, le=1_000_000)
    retry_for_s: float = Field(120.0, ge=0, le=3600)
    # Links in notifications (Alertmanager's generatorURL); default: the [dashboard] address.
    dashboard_url: str | None = None
    rules_file: Path | None = None  # extra rule tables, same format as alerts/rules/*.toml
    overrides: dict[str, RuleOverride] = {}
    alertmanager: AlertmanagerSettings | None = None
    webhooks: list[WebhookSettings] = []
    email: EmailSettings | None = None

    @field_validator("dashboard_url")
    @classmethod
    def _dash(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("overrides")
    @classmethod
    def _names(cls, value: dict[str, RuleOverride]) -> dict[str, RuleOverride]:
        for name in value:
            if not re.match(_RULE_NAME, name):
                raise ValueError(f"not a rule name: {name!r}")
        return value
