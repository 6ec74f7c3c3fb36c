"""[snmp] credentials and [collectors]: how the collectors poll and where they serve /metrics."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator

from dcim.config.base import (
    MIN_INTERVAL_S,
    Name,
    SecretRef,
    Strict,
    check_host,
)


class SnmpV2c(Strict):
    version: Literal["2c"]
    community: SecretRef


class SnmpV3(Strict):
    version: Literal["3"]
    user: Name
    auth_protocol: Literal["SHA", "SHA224", "SHA256", "SHA384", "SHA512", "MD5"] = "SHA"
    auth_key: SecretRef
    priv_protocol: Literal["AES", "AES192", "AES256", "DES"] = "AES"
    priv_key: SecretRef


SnmpCredentials = Annotated[SnmpV2c | SnmpV3, Field(discriminator="version")]


class SnmpSettings(Strict):
    credentials: dict[Name, SnmpCredentials] = {}


class CollectorSettings(Strict):
    snmp_interval_s: float = Field(10.0, ge=MIN_INTERVAL_S, le=3600)
    gpu_interval_s: float = Field(5.0, ge=MIN_INTERVAL_S, le=3600)
    timeout_s: float = Field(2.0, ge=0.05, le=60)
    retries: int = Field(1, ge=0, le=10)
    max_oids_per_request: int = Field(50, ge=1, le=200)
    jitter_pct: float = Field(10.0, ge=0, le=50)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)  # 0: any free port
    # The local IPv4 address SNMP polling sockets bind to (the management interface); None: the OS
    # chooses, and the v2c socket takes datagrams sent to any of the host's addresses.
    snmp_source_address: str | None = None

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("snmp_source_address")
    @classmethod
    def _snmp_source_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"not an IP address: {value!r}") from None
        if address.version != 4 or address.is_multicast or address.is_unspecified:
            raise ValueError(f"must be one local IPv4 unicast address (the pollers' sockets are IPv4): {value!r}")
        return value

