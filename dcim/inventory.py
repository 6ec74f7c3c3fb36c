"""The facility inventory as flat, tagged records, built once from the config.

The config nests site → room → row → rack → server → GPU; every consumer (collectors,
optimizer, dashboard, report, twin) wants flat lists with the location tags of the metric
contract already attached. GPUs here are *slots* (host + index); their UUIDs are learned by
the GPU backend at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from dcim.config import Config, CoolingUnit, Meter, Pdu, Rack, Server, Ups


@dataclass(frozen=True)
class RackInfo:
    site: str
    room: str
    row: str
    rack: str
    tenant: str | None
    ashrae_class: str
    power_budget_kw: float
    position: int  # index along its row, for the floor map
    row_index: int  # index of its row within the room

    @property
    def tags(self) -> dict[str, str]:
        return {"site": self.site, "room": self.room, "rack": self.rack}


@dataclass(frozen=True)
class ServerInfo:
    site: str
    room: str
    rack: str
    host: str
    gpus: int
    gpu_model: str
    host_idle_w: float
    host_max_w: float
    tenant: str | None
    agent_url: str | None = None


@dataclass(frozen=True)
class GpuSlot:
    site: str
    room: str
    rack: str
    host: str
    index: int
    model: str
    tenant: str | None

    @property
    def tags(self) -> dict[str, str]:
        """Location tags of the ``gpu`` measurement (uuid is added by the collector)."""
        return {"site": self.site, "room": self.room, "rack": self.rack, "host": self.host,
                "gpu": str(self.index), "model": self.model}


@dataclass
class Inventory:
    config: Config
    racks: list[RackInfo] = field(default_factory=list)
    servers: list[ServerInfo] = field(default_factory=list)
    gpus: list[GpuSlot] = field(default_factory=list)

    @property
    def site(self) -> str:
        return self.config.site.name

    @property
    def timezone(self) -> str:
        return self.config.site.timezone

    @property
    def pdus(self) -> list[Pdu]:
        return self.config.pdus

    @property
    def cooling(self) -> list[CoolingUnit]:
        return self.config.cooling

    @property
    def ups(self) -> list[Ups]:
        return self.config.ups

    @property
    def meters(self) -> list[Meter]:
        return self.config.meters

    @cached_property
    def rack_by_name(self) -> dict[str, RackInfo]:
        return {r.rack: r for r in self.racks}

    @cached_property
    def server_by_host(self) -> dict[str, ServerInfo]:
        return {s.host: s for s in self.servers}

    @cached_property
    def pdus_by_rack(self) -> dict[str, list[Pdu]]:
        out: dict[str, list[Pdu]] = {}
        for pdu in self.config.pdus:
            out.setdefault(pdu.rack, []).append(pdu)
        return out

    def snmp_devices(self) -> list[tuple[str, str, object]]:
        """Every device with an SNMP target, as (kind, name, device config).

        kind is one of ``pdu``, ``cooling``, ``ups``, ``meter``.
        """
        out: list[tuple[str, str, object]] = []
        for kind, items in (("pdu", self.pdus), ("cooling", self.cooling), ("ups", self.ups), ("meter", self.meters)):
            out += [(kind, d.name, d) for d in items if d.snmp is not None]
        return out

    def device_tags(self, kind: str, device) -> dict[str, str]:
        """The identity tags of a device's measurement, per the metric contract."""
        site = self.site
        if kind == "pdu":
            rack = self.rack_by_name[device.rack]
            return {"site": site, "room": rack.room, "rack": rack.rack, "pdu": device.name, "feed": device.feed}
        if kind == "cooling":
            return {"site": site, "room": device.room, "unit": device.name, "kind": device.kind}
        if kind == "ups":
            return {"site": site, "ups": device.name}
        if kind == "meter":
            return {"site": site, "meter": device.name, "role": device.role}
        raise ValueError(f"unknown device kind {kind!r}")


def build_inventory(config: Config) -> Inventory:
    inv = Inventory(config=config)
    site = config.site.name
    for room in config.rooms:
        for row_index, row in enumerate(room.rows):
            for position, rack in enumerate(row.racks):
                _add_rack(inv, site, room.name, row.name, row_index, position, rack)
    return inv


def _add_rack(inv: Inventory, site: str, room: str, row: str, row_index: int, position: int, rack: Rack) -> None:
    inv.racks.append(RackInfo(
        site=site, room=room, row=row, rack=rack.name, tenant=rack.tenant, ashrae_class=rack.ashrae_class,
        power_budget_kw=rack.power_budget_kw,
        position=rack.position if rack.position is not None else position, row_index=row_index,
    ))
    for server in rack.all_servers():
        _add_server(inv, site, room, rack, server)


def _add_server(inv: Inventory, site: str, room: str, rack: Rack, server: Server) -> None:
    inv.servers.append(ServerInfo(
        site=site, room=room, rack=rack.name, host=server.host, gpus=server.gpus, gpu_model=server.gpu_model,
        host_idle_w=server.host_idle_w, host_max_w=server.host_max_w, tenant=rack.tenant,
        agent_url=server.agent_url,
    ))
    for index in range(server.gpus):
        inv.gpus.append(GpuSlot(site=site, room=room, rack=rack.name, host=server.host, index=index,
                                model=server.gpu_model, tenant=rack.tenant))
