"""The one TOML config file, validated with pydantic.

Unknown keys and bad values are rejected with the key's full path (``rooms[0].rows[1].racks[2].ashrae_class``)
and what was expected. Secrets never live in the TOML: the config names an environment variable
(``*_env``) or a file (``*_file``) and :func:`read_secret` fetches the value when it is needed.

Config is found from ``--config``, else ``DCIM_CONFIG``, else the built-in demo facility
(``deploy/demo.toml``).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "deploy" / "demo.toml"

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class ConfigError(Exception):
    """A config that cannot be used. ``errors`` is a list of (key path, reason)."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "config"):
        self.errors = errors
        self.source = source
        lines = [f"{source}: {len(errors)} error(s)"] + [f"  {path}: {why}" for path, why in errors]
        super().__init__("\n".join(lines))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
    def _one_source(self) -> "SecretRef":
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


def read_secret(ref: SecretRef | None, what: str) -> str | None:
    """Resolve a secret reference. Raises ConfigError naming *what* (never the value)."""
    if ref is None:
        return None
    if ref.env:
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError([(what, f"environment variable {ref.env} is not set")])
        return value
    try:
        value = Path(ref.file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([(what, f"cannot read secret file {ref.file}: {exc.strerror}")]) from None
    if not value:
        raise ConfigError([(what, f"secret file {ref.file} is empty")])
    return value


# --- site and inventory ------------------------------------------------------------------------


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
    host_idle_w: float = Field(900.0, ge=0)
    host_max_w: float = Field(2200.0, ge=0)
    agent_url: str | None = None


class ServerGroup(Strict):
    """Shorthand for N identical servers, named ``{rack}-n{i:02d}``."""

    count: int = Field(ge=1, le=64)
    gpus: int = Field(8, ge=0, le=64)
    gpu_model: str = "NVIDIA H100 80GB HBM3"
    host_idle_w: float = Field(900.0, ge=0)
    host_max_w: float = Field(2200.0, ge=0)


AshraeClass = Literal["A1", "A2", "A3", "A4", "H1"]


class Rack(Strict):
    name: Name
    ashrae_class: AshraeClass = "A1"
    power_budget_kw: float = Field(40.0, gt=0, le=500)
    tenant: Name | None = None
    servers: list[Server] = []
    server_group: ServerGroup | None = None
    # Floor position for the heat map, in tiles; defaults to the order in its row.
    position: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _servers_xor_group(self) -> "Rack":
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
    interval_s: float | None = Field(None, gt=0, le=3600)
    timeout_s: float | None = Field(None, gt=0, le=60)
    retries: int | None = Field(None, ge=0, le=10)
    max_oids_per_request: int | None = Field(None, ge=1, le=200)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not value or len(value) > 253 or any(c.isspace() for c in value):
                raise ValueError(f"not an IP address or host name: {value!r}") from None
        return value


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


# --- SNMP credentials --------------------------------------------------------------------------


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


# --- services ----------------------------------------------------------------------------------


class InfluxSettings(Strict):
    url: str = "http://127.0.0.1:8086"
    database: Name = "dcim"
    auth: Literal["none", "basic", "token"] = "none"
    username: str | None = None
    password: SecretRef | None = None
    token: SecretRef | None = None
    batch_size: int = Field(5000, ge=1, le=100000)
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    gzip: bool = True
    timeout_s: float = Field(10.0, gt=0, le=300)
    max_retries: int = Field(5, ge=0, le=100)
    create_database: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth_needs(self) -> "InfluxSettings":
        if self.auth == "basic" and (self.username is None or self.password is None):
            raise ValueError("auth = 'basic' needs 'username' and 'password'")
        if self.auth == "token" and self.token is None:
            raise ValueError("auth = 'token' needs 'token'")
        return self


class SpoolSettings(Strict):
    path: Path = Path("var/spool")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)


class StoreSettings(Strict):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    path: Path = Path("var/dcim.sqlite")
    raw_retention_days: float = Field(7.0, gt=0, le=36500)  # ns must fit SQLite INTEGER
    rollup_1m_retention_days: float = Field(90.0, gt=0, le=36500)
    influxdb: InfluxSettings = InfluxSettings()
    spool: SpoolSettings = SpoolSettings()


class CollectorSettings(Strict):
    snmp_interval_s: float = Field(10.0, gt=0, le=3600)
    gpu_interval_s: float = Field(5.0, gt=0, le=3600)
    timeout_s: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=10)
    max_oids_per_request: int = Field(50, ge=1, le=200)
    jitter_pct: float = Field(10.0, ge=0, le=50)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)
    # The local IPv4 address SNMP polling sockets bind to (the management interface); None: the OS
    # chooses, and the v2c socket takes datagrams sent to any of the host's addresses.
    snmp_source_address: str | None = None

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


class OptimizerSettings(Strict):
    mode: Literal["off", "advise", "enforce"] = "advise"
    interval_s: float = Field(60.0, gt=0, le=3600)
    lease_s: float = Field(300.0, gt=0, le=86400)
    max_step_w: float = Field(50.0, gt=0, le=500)
    stale_after_s: float = Field(120.0, gt=0)
    cap_fraction_floor: float = Field(0.5, gt=0, le=1)
    # Largest throughput loss each job class may suffer from capping (0.05 = 5 %).
    throughput_loss_bound: dict[str, float] = {
        "training": 0.05, "fine_tuning": 0.05, "inference": 0.0, "batch": 0.10,
    }
    breaker_derate: float = Field(0.8, gt=0, le=1)
    site_power_budget_kw: float | None = Field(None, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(8087, ge=0, le=65535)
    token: SecretRef | None = None
    model_path: Path = Path("var/pue_model.pkl")
    report_dir: Path = Path("var/reports")

    @field_validator("throughput_loss_bound")
    @classmethod
    def _bounds(cls, value: dict[str, float]) -> dict[str, float]:
        for key, bound in value.items():
            if not 0 <= bound <= 1:
                raise ValueError(f"bound for {key!r} must be between 0 and 1, got {bound}")
        return value


class DashboardSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)
    lang: Literal["en", "ko"] = "en"
    refresh_s: float = Field(10.0, ge=1, le=3600)
    kiosk_rotate_s: float = Field(30.0, ge=5, le=3600)
    auth_user: str | None = None
    auth_password: SecretRef | None = None

    @model_validator(mode="after")
    def _auth_pair(self) -> "DashboardSettings":
        if (self.auth_user is None) != (self.auth_password is None):
            raise ValueError("basic auth needs both 'auth_user' and 'auth_password'")
        return self


class AgentSettings(Strict):
    """The GPU-node agent (``dcim agent``) on each GPU server."""

    # Where the optimizer serves desired state; the token is the optimizer's API token.
    optimizer_url: str = "http://127.0.0.1:8087"
    token: SecretRef | None = None
    # This server's host name in the inventory; default: the machine's host name.
    host: str | None = None
    # Each cap's own lease (set by the optimizer's lease_s) bounds how long it outlives contact.
    poll_interval_s: float = Field(15.0, gt=0, le=600)

    @field_validator("optimizer_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class SimulatorSettings(Strict):
    seed: int = 42
    speed: float = Field(1.0, gt=0, le=100000)
    backfill_days: float = Field(14.0, ge=0, le=400)
    weather: Literal["daejeon", "seoul", "constant"] = "daejeon"


# --- the whole file ----------------------------------------------------------------------------


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


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _pydantic_errors(exc: ValidationError) -> list[tuple[str, str]]:
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
            msg += f" (got {err['input']!r})"
        errors.append((_path(loc), msg))
    return errors


def _reference_errors(cfg: Config) -> list[tuple[str, str]]:
    """Cross-references pydantic cannot see: names that must exist, be unique, addresses used once."""
    errors: list[tuple[str, str]] = []
    tenants = {t.name for t in cfg.tenants}
    seen_tenant: set[str] = set()
    for i, t in enumerate(cfg.tenants):
        if t.name in seen_tenant:
            errors.append((f"tenants[{i}].name", f"duplicate tenant {t.name!r}"))
        seen_tenant.add(t.name)

    rooms = {}
    racks = {}
    hosts: set[str] = set()
    for ri, room in enumerate(cfg.rooms):
        if room.name in rooms:
            errors.append((f"rooms[{ri}].name", f"duplicate room {room.name!r}"))
        rooms[room.name] = room
        for wi, row in enumerate(room.rows):
            for ki, rack in enumerate(row.racks):
                where = f"rooms[{ri}].rows[{wi}].racks[{ki}]"
                if rack.name in racks:
                    errors.append((f"{where}.name", f"duplicate rack {rack.name!r}"))
                racks[rack.name] = room.name
                if rack.tenant is not None and rack.tenant not in tenants:
                    errors.append((f"{where}.tenant", f"no tenant named {rack.tenant!r} in [[tenants]]"))
                for si, server in enumerate(rack.all_servers()):
                    if server.host in hosts:
                        errors.append((f"{where}.servers[{si}].host", f"duplicate host {server.host!r}"))
                    hosts.add(server.host)

    devices: dict[str, str] = {}
    addresses: dict[tuple[str, int], str] = {}
    groups = [("pdus", cfg.pdus), ("cooling", cfg.cooling), ("ups", cfg.ups), ("meters", cfg.meters)]
    for group, items in groups:
        for i, dev in enumerate(items):
            where = f"{group}[{i}]"
            if dev.name in devices:
                errors.append((f"{where}.name", f"duplicate device name {dev.name!r} (also in {devices[dev.name]})"))
            devices[dev.name] = where
            snmp = dev.snmp
            if snmp is not None:
                key = (snmp.address, snmp.port)
                if key in addresses:
                    errors.append((f"{where}.snmp.address",
                                   f"{snmp.address}:{snmp.port} is already used by {addresses[key]}"))
                addresses[key] = where
                if snmp.credentials not in cfg.snmp.credentials:
                    errors.append((f"{where}.snmp.credentials",
                                   f"no [snmp.credentials.{snmp.credentials}] section"))
    for i, pdu in enumerate(cfg.pdus):
        if pdu.rack not in racks:
            errors.append((f"pdus[{i}].rack", f"no rack named {pdu.rack!r}"))
    for i, unit in enumerate(cfg.cooling):
        if unit.room not in rooms:
            errors.append((f"cooling[{i}].room", f"no room named {unit.room!r}"))
        for j, rack in enumerate(unit.racks):
            if rack not in racks:
                errors.append((f"cooling[{i}].racks[{j}]", f"no rack named {rack!r}"))
    for i, ups in enumerate(cfg.ups):
        for j, room in enumerate(ups.rooms):
            if room not in rooms:
                errors.append((f"ups[{i}].rooms[{j}]", f"no room named {room!r}"))
    return errors


def parse_config(data: dict, source: str = "config") -> Config:
    """Validate a parsed TOML document. Raises ConfigError with every problem found."""
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_errors(exc), source) from None
    errors = _reference_errors(cfg)
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
