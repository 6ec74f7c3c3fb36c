"""The whole file: the :class:`Config` model, the cross-section checks pydantic cannot see (names that
must exist or be unique, safety rails that span keys), pydantic's errors turned into key paths, and
loading the TOML from ``--config``, ``$DCIM_CONFIG`` or the demo facility."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field, ValidationError

from dcim.config.alerts import AlertsSettings
from dcim.config.base import DEMO_CONFIG, MAX_STALE_AFTER_S, STALE_AFTER_POLLS, ConfigError, Strict
from dcim.config.collectors import CollectorSettings, SnmpSettings
from dcim.config.dashboard import DashboardSettings, SimulatorSettings
from dcim.config.exporter import ExporterSettings
from dcim.config.optimizer import AgentSettings, OptimizerSettings
from dcim.config.site import CoolingUnit, Meter, Pdu, Room, Site, SnmpTarget, Tenant, Ups
from dcim.config.store import StoreSettings
from dcim.config.workload import DcgmExporterSettings, ProgressScrape, WorkloadSettings

Errors = list[tuple[str, str]]


class Config(Strict):
    site: Site
    tenants: list[Tenant] = []
    rooms: list[Room] = Field(min_length=1)
    pdus: list[Pdu] = []
    cooling: list[CoolingUnit] = []
    ups: list[Ups] = []
    meters: list[Meter] = []
    snmp: SnmpSettings = SnmpSettings()
    store: StoreSettings = StoreSettings()
    collectors: CollectorSettings = CollectorSettings()
    optimizer: OptimizerSettings = OptimizerSettings()
    dashboard: DashboardSettings = DashboardSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    agent: AgentSettings = AgentSettings()
    workload: WorkloadSettings = WorkloadSettings()
    dcgm_exporter: DcgmExporterSettings = DcgmExporterSettings()
    progress_scrape: list[ProgressScrape] = []
    alerts: AlertsSettings = AlertsSettings()  # the alarm engine (dcim/config/alerts.py)
    exporter: ExporterSettings = ExporterSettings()  # Prometheus /metrics of the store (dcim/exposition.py)


# --- pydantic's errors as key paths ---------------------------------------------------------------


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _without_userinfo(value):
    """A refused URL echoed in an error, with any ``user:password@`` replaced: never print a password."""
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        netloc, slash, path = rest.partition("/")
        return f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{path}"
    return value


def _pydantic_errors(exc: ValidationError) -> Errors:
    errors = []
    for err in exc.errors(include_url=False):
        # Drop the discriminator tag pydantic inserts into union locations ('2c', '3').
        loc = tuple(p for p in err["loc"] if p not in ("2c", "3") and not str(p).startswith("function-"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if "input" in err and err["type"] not in ("extra_forbidden", "missing") and not isinstance(err["input"], dict | list):
            msg += f" (got {_without_userinfo(err['input'])!r})"
        errors.append((_path(loc), msg))
    return errors


# --- cross-references -------------------------------------------------------------------------------


def _reference_errors(cfg: Config) -> Errors:
    """Cross-references pydantic cannot see: names that must exist, be unique, addresses used once."""
    tenants = {t.name for t in cfg.tenants}
    errors = _tenant_errors(cfg)
    room_names, rack_names, inventory_errors = _inventory_errors(cfg, tenants)
    errors += inventory_errors
    errors += _device_errors(cfg)
    errors += _placement_errors(cfg, room_names, rack_names)
    errors += _workload_errors(cfg, tenants)
    return errors


def _tenant_errors(cfg: Config) -> Errors:
    errors: Errors = []
    seen_tenant: set[str] = set()
    for i, t in enumerate(cfg.tenants):
        if t.name in seen_tenant:
            errors.append((f"tenants[{i}].name", f"duplicate tenant {t.name!r}"))
        seen_tenant.add(t.name)
    return errors


def _inventory_errors(cfg: Config, tenants: set[str]) -> tuple[set[str], set[str], Errors]:
    """Rooms, racks and hosts named once, racks' tenants listed; also the room and rack names found."""
    errors: Errors = []
    rooms: set[str] = set()
    racks: set[str] = set()
    hosts: set[str] = set()
    for ri, room in enumerate(cfg.rooms):
        if room.name in rooms:
            errors.append((f"rooms[{ri}].name", f"duplicate room {room.name!r}"))
        rooms.add(room.name)
        for wi, row in enumerate(room.rows):
            for ki, rack in enumerate(row.racks):
                where = f"rooms[{ri}].rows[{wi}].racks[{ki}]"
                if rack.name in racks:
                    errors.append((f"{where}.name", f"duplicate rack {rack.name!r}"))
                racks.add(rack.name)
                if rack.tenant is not None and rack.tenant not in tenants:
                    errors.append((f"{where}.tenant", f"no tenant named {rack.tenant!r} in [[tenants]]"))
                for si, server in enumerate(rack.all_servers()):
                    if server.host in hosts:
                        errors.append((f"{where}.servers[{si}].host", f"duplicate host {server.host!r}"))
                    hosts.add(server.host)
    return rooms, racks, errors


def _device_errors(cfg: Config) -> Errors:
    """Device names unique across kinds; each SNMP address:port used once, with known credentials."""
    errors: Errors = []
    devices: dict[str, str] = {}
    addresses: dict[tuple[str, int], str] = {}
    groups: list[tuple[str, Sequence[Pdu | CoolingUnit | Ups | Meter]]] = [
        ("pdus", cfg.pdus), ("cooling", cfg.cooling), ("ups", cfg.ups), ("meters", cfg.meters)]
    for group, items in groups:
        for i, dev in enumerate(items):
            where = f"{group}[{i}]"
            if dev.name in devices:
                errors.append((f"{where}.name", f"duplicate device name {dev.name!r} (also in {devices[dev.name]})"))
            devices[dev.name] = where
            if dev.snmp is not None:
                errors += _snmp_target_errors(cfg, dev.snmp, where, addresses)
    return errors


def _snmp_target_errors(cfg: Config, snmp: SnmpTarget, where: str, addresses: dict[tuple[str, int], str]) -> Errors:
    errors: Errors = []
    key = (snmp.address, snmp.port)
    if key in addresses:
        errors.append((f"{where}.snmp.address", f"{snmp.address}:{snmp.port} is already used by {addresses[key]}"))
    addresses[key] = where
    if snmp.credentials not in cfg.snmp.credentials:
        errors.append((f"{where}.snmp.credentials", f"no [snmp.credentials.{snmp.credentials}] section"))
    return errors


def _placement_errors(cfg: Config, rooms: set[str], racks: set[str]) -> Errors:
    """PDUs, cooling units and UPSes name racks and rooms that exist."""
    errors: Errors = []
    for i, pdu in enumerate(cfg.pdus):
        if pdu.rack not in racks:
            errors.append((f"pdus[{i}].rack", f"no rack named {pdu.rack!r}"))
    for i, unit in enumerate(cfg.cooling):
        if unit.room not in rooms:
            errors.append((f"cooling[{i}].room", f"no room named {unit.room!r}"))
        for j, rack_name in enumerate(unit.racks):
            if rack_name not in racks:
                errors.append((f"cooling[{i}].racks[{j}]", f"no rack named {rack_name!r}"))
        if unit.rooms and unit.kind != "chiller":
            errors.append((f"cooling[{i}].rooms", "only a chiller serves rooms; an air unit serves 'racks'"))
        for j, room_name in enumerate(unit.rooms):
            if room_name not in rooms:
                errors.append((f"cooling[{i}].rooms[{j}]", f"no room named {room_name!r}"))
    for i, ups in enumerate(cfg.ups):
        for j, room_name in enumerate(ups.rooms):
            if room_name not in rooms:
                errors.append((f"ups[{i}].rooms[{j}]", f"no room named {room_name!r}"))
    return errors


def _workload_errors(cfg: Config, tenants: set[str]) -> Errors:
    errors: Errors = []
    for account, tenant in cfg.workload.tenants.items():
        if tenant not in tenants:
            errors.append((f"workload.tenants.{account}", f"no tenant named {tenant!r} in [[tenants]]"))
    if (cfg.workload.source == "dcgm" or cfg.dcgm_exporter.telemetry) and not cfg.dcgm_exporter.urls:
        errors.append(("dcgm_exporter.urls", "workload.source = 'dcgm' and dcgm_exporter.telemetry read "
                                             "dcgm-exporter: list its endpoints"))
    return errors


# --- safety rails that span sections ----------------------------------------------------------------


def slowest_poll_s(cfg: Config) -> float:
    """The longest interval at which any telemetry the optimizer reads arrives (GPU, SNMP, per device)."""
    intervals = [cfg.collectors.gpu_interval_s, cfg.collectors.snmp_interval_s]
    devices: list[Pdu | CoolingUnit | Ups | Meter] = [*cfg.pdus, *cfg.cooling, *cfg.ups, *cfg.meters]
    for dev in devices:
        if dev.snmp is not None and dev.snmp.interval_s is not None:
            intervals.append(dev.snmp.interval_s)
    return max(intervals)


def _rail_errors(cfg: Config) -> Errors:
    """Safety rails that span keys: a freshness window so wide that stale data counts as fresh, a
    lease so short that caps lapse between cycles."""
    errors = []
    opt = cfg.optimizer
    slowest_s = slowest_poll_s(cfg)
    limit_s = min(MAX_STALE_AFTER_S, STALE_AFTER_POLLS * slowest_s)
    if opt.stale_after_s > limit_s:
        errors.append(("optimizer.stale_after_s",
                       f"must be at most {limit_s:g} s ({STALE_AFTER_POLLS} polls of the slowest collector, every "
                       f"{slowest_s:g} s, and never over {MAX_STALE_AFTER_S:g} s): the optimizer acts only on "
                       f"telemetry fresher than this (got {opt.stale_after_s:g})"))
    if opt.lease_s < opt.interval_s:
        errors.append(("optimizer.lease_s",
                       f"must be at least optimizer.interval_s ({opt.interval_s:g} s): a shorter lease lapses "
                       f"between cycles and every cap flaps back to default (got {opt.lease_s:g})"))
    return errors


def parse_config(data: dict, source: str = "config") -> Config:
    """Validate a parsed TOML document. Raises ConfigError with every problem found."""
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_errors(exc), source) from None
    errors = _reference_errors(cfg) + _rail_errors(cfg)
    if errors:
        raise ConfigError(errors, source)
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load the config from *path*, else ``$DCIM_CONFIG``, else the built-in demo facility.

    Relative store/spool/model paths stay relative to the working directory.
    """
    if path is None:
        path = os.environ.get("DCIM_CONFIG") or DEMO_CONFIG
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", str(exc))], str(path)) from None
    return parse_config(data, str(path))
