"""What every config section shares: the strict base model, name and address checks, the
error type, bounds used by many keys, and secret references (an env variable or a file)."""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

# dcim/config/base.py: the repository is three levels up
REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO_ROOT / "deploy" / "demo.toml"

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]

# Bounds shared by many keys. Every number in the file has finite bounds (and NaN/inf are refused by
# Strict): a value outside them would switch a safety rail off or make a loop spin.
MIN_INTERVAL_S = 0.1
DAY_S = 86400.0
MAX_TIMEOUT_S = 300.0
MAX_STALE_AFTER_S = 3600.0
# Telemetry older than this many polls of its slowest collector is not "fresh" (DESIGN.md: act only on
# fresh telemetry); with the default 10 s SNMP poll that is 300 s, against a default of 120 s.
STALE_AFTER_POLLS = 30
MAX_SERVER_W = 50_000.0  # a single server: an 8-GPU B200 system is ~14 kW
MAX_SITE_KW = 1_000_000.0  # 1 GW: five times the largest AI campus announced


# A host name as RFC 1123 writes it (labels of letters, digits and hyphens, dot-separated), or an IP.
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_host(value: str) -> str:
    """An IP address or an RFC 1123 host name; anything else (spaces, '=', '@', newlines) is refused."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.split(".")
    if not value or len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError("not an IP address or host name (RFC 1123: letters, digits, '-', dot-separated)")
    return value


def check_name(value: str, what: str) -> str:
    """*value* as a Name (letters, digits, '_', '.', '-'; 1-64, starting with a letter or digit), or a
    ConfigError naming *what*. For names that come from outside the TOML (a command-line --host)."""
    if not (1 <= len(value) <= 64 and re.fullmatch(NAME_PATTERN[1:-1], value)):
        raise ConfigError([(what, f"must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or "
                                  f"digit (got {value!r})")])
    return value


INFLUX_AUTH_HINT = 'use auth = "basic" with username and password = { env = "VAR" }, or auth = "token"'
AGENT_AUTH_HINT = 'the agent authenticates with [agent] token = { env = "VAR" }'


def check_url(value: str, auth_hint: str) -> str:
    """An http(s) URL without credentials in it: a ``user:password@`` part is not used for auth and
    would be printed wherever the URL is (``dcim check``, error messages). *auth_hint* says what to
    use instead."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    parts = urllib.parse.urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError(f"must not carry credentials ('user:password@'): {auth_hint}")
    try:
        parts.port  # noqa: B018 — raises ValueError for a port outside 0-65535 or not a number
    except ValueError:
        raise ValueError("has a bad port") from None
    if not parts.hostname:
        raise ValueError("has no host")
    return value.rstrip("/")


class ConfigError(Exception):
    """A config that cannot be used. ``errors`` is a list of (key path, reason)."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "config"):
        self.errors = errors
        self.source = source
        lines = [f"{source}: {len(errors)} error(s)"] + [f"  {path}: {why}" for path, why in errors]
        super().__init__("\n".join(lines))


class Strict(BaseModel):
    # allow_inf_nan=False: `stale_after_s = inf` passed every `le`-less check and switched a rail off.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data):
        # pydantic's lax mode reads `port = true` as 1: hand a bool to a number field as the
        # string it was, so the field's own check names the key and refuses it.
        if isinstance(data, dict):
            for name, value in data.items():
                if isinstance(value, bool) and name in cls.model_fields and _numeric(cls.model_fields[name].annotation):
                    data = {**data, name: str(value).lower()}
        return data


def _numeric(ann) -> bool:
    if ann in (int, float):
        return True
    if get_origin(ann) is Literal:
        return any(isinstance(a, int) and not isinstance(a, bool) for a in get_args(ann))
    args = get_args(ann)
    return bool(args) and bool not in args and get_origin(ann) is not dict and any(_numeric(a) for a in args)


# --- secrets -----------------------------------------------------------------------------------


class SecretRef(Strict):
    """Where a secret lives: an environment variable or a file (first line, stripped)."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


def read_secret(ref: SecretRef | None, what: str) -> str | None:
    """Resolve a secret reference. Raises ConfigError naming *what* (never the value)."""
    if ref is None:
        return None
    if ref.env is not None:  # (env = "" is refused here, not read as a file named None)
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError([(what, f"environment variable {ref.env} is not set")])
        return value
    assert ref.file is not None  # SecretRef's own check: exactly one of env and file
    try:
        value = Path(ref.file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([(what, f"cannot read secret file {ref.file}: {exc.strerror}")]) from None
    if not value:
        raise ConfigError([(what, f"secret file {ref.file} is empty")])
    return value

