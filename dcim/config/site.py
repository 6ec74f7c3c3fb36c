"""The site and its inventory: rooms, rows, racks and servers, and the devices (PDUs, cooling,
UPS, meters) with where each answers SNMP."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from dcim.config.base import (
    MAX_SERVER_W,
    MIN_INTERVAL_S,
    Name,
    Strict,
    check_host,
    check_url,
)


class Site(Strict):
    name: Name
    timezone: str = "UTC"
    grid_kgco2e_per_kwh: float = Field(0.4173, ge=0, le=2.0)
    # The Green Grid category of the IT meter: 1 = UPS output, 2 = PDU output, 3 = IT input.
    pue_category: Literal[1, 2, 3] = 1
    latitude_deg: float | None = Field(None, ge=-90, le=90)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Asia/Seoul')") from None
        return value


class Tenant(Strict):
    name: Name
    display_name: str | None = None
    kind: Literal["university", "institute", "startup", "company", "internal", "other"] = "other"


class Server(Strict):
    host: Name
    gpus: int = Field(8, ge=0, le=64)
    gpu_model: str = "NVIDIA H100 80GB HBM3"
    # Host power beyond the GPUs (CPUs, fans, NICs) at idle and at full load, watts.
    host_idle_w: float = Field(900.0, ge=0, le=MAX_SERVER_W)
    host_max_w: float = Field(2200.0, ge=0, le=MAX_SERVER_W)
    agent_url: str | None = None

    @field_validator("agent_url")
    @classmethod
    def _agent_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "give the agent's address only")

    @model_validator(mode="after")
    def _idle_below_max(self) -> Server:
        _check_idle_below_max(self.host_idle_w, self.host_max_w)
        return self


class ServerGroup(Strict):
    """Shorthand for N identical servers, named ``{rack}-n{i:02d}``."""

    count: int = Field(ge=1, le=64)
    gpus: int = Field(8, ge=0, le=64)
    gpu_model: str = "NVIDIA H100 80GB HBM3"
    host_idle_w: float = Field(900.0, ge=0, le=MAX_SERVER_W)
    host_max_w: float = Field(2200.0, ge=0, le=MAX_SERVER_W)

    @model_validator(mode="after")
    def _idle_below_max(self) -> ServerGroup:
        _check_idle_below_max(self.host_idle_w, self.host_max_w)
        return self


def _check_idle_below_max(idle_w: float, max_w: float) -> None:
    if idle_w > max_w:
        raise ValueError(f"host_idle_w ({idle_w:g} W) must not exceed host_max_w ({max_w:g} W)")


AshraeClass = Literal["A1", "A2", "A3", "A4", "H1"]


class Rack(Strict):
    name: Name
    ashrae_class: AshraeClass = "A1"
    power_budget_kw: float = Field(40.0, gt=0, le=500)
    # How its A/B feeds carry the load; None: [optimizer] feed_redundancy (see there).
    feed_redundancy: Literal["2N", "shared"] | None = None
    tenant: Name | None = None
    servers: list[Server] = []
    server_group: ServerGroup | None = None
    # Floor position for the heat map, in tiles; defaults to the order in its row.
    position: int | None = Field(None, ge=0, le=100_000)

    @model_validator(mode="after")
    def _servers_xor_group(self) -> Rack:
        if self.servers and self.server_group:
            raise ValueError("give either 'servers' or 'server_group', not both")
        return self

    def all_servers(self) -> list[Server]:
        if self.server_group is None:
            return list(self.servers)
        g = self.server_group
        return [
            Server(host=f"{self.name}-n{i + 1:02d}", gpus=g.gpus, gpu_model=g.gpu_model,
                   host_idle_w=g.host_idle_w, host_max_w=g.host_max_w)
            for i in range(g.count)
        ]


class Row(Strict):
    name: Name
    racks: list[Rack] = Field(min_length=1)


class Room(Strict):
    name: Name
    display_name: str | None = None
    rows: list[Row] = Field(min_length=1)


SnmpProfileName = str  # "auto" or a profile name known to collectors; checked by the collectors


class SnmpTarget(Strict):
    """Where a device answers SNMP, and with which credentials (by name)."""

    address: str
    port: int = Field(161, ge=1, le=65535)
    credentials: Name = "default"
    profile: SnmpProfileName = "auto"
    interval_s: float | None = Field(None, ge=MIN_INTERVAL_S, le=3600)
    timeout_s: float | None = Field(None, ge=0.05, le=60)
    retries: int | None = Field(None, ge=0, le=10)
    max_oids_per_request: int | None = Field(None, ge=1, le=200)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_host(value)


class Pdu(Strict):
    name: Name
    rack: Name
    feed: Literal["A", "B"]
    phases: Literal[1, 3] = 3
    breaker_a: float = Field(32.0, gt=0, le=400)
    voltage_v: float = Field(230.0, gt=0, le=480)
    outlets: int = Field(24, ge=0, le=96)
    snmp: SnmpTarget | None = None


class CoolingUnit(Strict):
    name: Name
    room: Name
    kind: Literal["crah", "inrow", "chiller"]
    capacity_kw: float = Field(gt=0, le=20000)
    racks: list[Name] = []  # the zone it serves; empty for a chiller (serves the room's units)
    # A chiller: the rooms whose air units its chilled water cools (empty: every room of the site).
    rooms: list[Name] = []
    supply_setpoint_c: float = Field(20.0, ge=5, le=35)
    snmp: SnmpTarget | None = None


class Ups(Strict):
    name: Name
    capacity_kw: float = Field(gt=0, le=20000)
    rooms: list[Name] = []
    snmp: SnmpTarget | None = None


class Meter(Strict):
    name: Name
    role: Literal["facility_total", "it", "cooling", "other"]
    snmp: SnmpTarget | None = None

