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
import re
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dcim.alerts_config import AlertsSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
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
    host_idle_w: float = Field(900.0, ge=0, le=MAX_SERVER_W)
    host_max_w: float = Field(2200.0, ge=0, le=MAX_SERVER_W)
    agent_url: str | None = None

    @field_validator("agent_url")
    @classmethod
    def _agent_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "give the agent's address only")

    @model_validator(mode="after")
    def _idle_below_max(self) -> "Server":
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
    def _idle_below_max(self) -> "ServerGroup":
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
    def _auth_needs(self) -> "InfluxSettings":
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


class OptimizerSettings(Strict):
    mode: Literal["off", "advise", "enforce"] = "advise"
    # A cycle reads the store fleet-wide: more than once a second only loads it.
    interval_s: float = Field(60.0, ge=1, le=3600)
    # A cap outlives the daemon by at most its lease: an hour bounds how long a dead daemon's caps stay.
    lease_s: float = Field(300.0, ge=1, le=3600)
    max_step_w: float = Field(50.0, gt=0, le=500)
    # Also at most STALE_AFTER_POLLS polls of the slowest collector (checked across sections).
    stale_after_s: float = Field(120.0, ge=1, le=MAX_STALE_AFTER_S)
    cap_fraction_floor: float = Field(0.5, ge=0.1, le=1)
    # Largest throughput loss each job class may suffer from capping (0.05 = 5 %).
    throughput_loss_bound: dict[Name, float] = {
        "training": 0.05, "fine_tuning": 0.05, "inference": 0.0, "batch": 0.10,
    }
    # Demand response: the largest throughput loss per job class while a DR budget holds
    # (separate from the efficiency bound above; a class not listed keeps its efficiency bound).
    dr_loss_bound: dict[Name, float] = {"training": 0.20, "fine_tuning": 0.20, "inference": 0.0, "batch": 0.40}
    # Step bound while a DR budget holds and on the cycle it ends: a grid signal is met in one
    # cycle and its caps are released in one (an H100's whole 200–700 W range is 500 W).
    dr_max_step_w: float = Field(500.0, gt=0, le=2000)
    # Jobs that report no progress get only this static cap per class, as a fraction of the GPU's
    # max limit (the MIT Lincoln Lab approach, 0.6-0.8 of TDP), never deeper than the pessimistic
    # end of the published curves allows for the class's loss bound (optimizer/static_policy.py).
    # A class not listed (or unknown) is not capped.
    static_cap_fraction: dict[Name, float] = {"training": 0.75, "fine_tuning": 0.75, "batch": 0.7}
    # M&V: this share of jobs (drawn per job by a hash of its id and control_seed) stays at default
    # limits as a control group for the measured saving; 0 turns the control group off.
    control_share: float = Field(0.1, ge=0, le=0.5)
    control_seed: int = Field(0, ge=0)
    breaker_derate: float = Field(0.8, ge=0.5, le=1)
    # "2N": each of a rack's A/B feeds must carry the whole rack on failover, so its budget is the
    # weakest single feed; "shared": the feeds share the load, budget = their sum. Per rack too.
    feed_redundancy: Literal["2N", "shared"] = "2N"
    site_power_budget_kw: float | None = Field(None, gt=0, le=MAX_SITE_KW)
    host: str = "127.0.0.1"
    port: int = Field(8087, ge=0, le=65535)  # 0: any free port
    # POST /v1/progress on its own listener (uvicorn; see optimizer/progress_server.py); 0: any free port
    progress_port: int = Field(8088, ge=0, le=65535)
    token: SecretRef | None = None
    model_path: Path = Path("var/pue_model.pkl")
    report_dir: Path = Path("var/reports")

    @field_validator("static_cap_fraction")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for key, frac in value.items():
            if not 0.1 <= frac <= 1:
                raise ValueError(f"static_cap_fraction for {key!r} must be between 0.1 and 1, got {frac}")
        return value

    @field_validator("throughput_loss_bound", "dr_loss_bound")
    @classmethod
    def _bounds(cls, value: dict[str, float]) -> dict[str, float]:
        for key, bound in value.items():
            if not 0 <= bound <= 1:
                raise ValueError(f"bound for {key!r} must be between 0 and 1, got {bound}")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)


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
    def _auth_pair(self) -> "DashboardSettings":
        if (self.auth_user is None) != (self.auth_password is None):
            raise ValueError("basic auth needs both 'auth_user' and 'auth_password'")
        return self


class AgentSettings(Strict):
    """The GPU-node agent (``dcim agent``) on each GPU server."""

    # Where the optimizer serves desired state; the token is the optimizer's API token.
    optimizer_url: str = "http://127.0.0.1:8087"
    token: SecretRef | None = None
    # This server's host name in the inventory (a Name, like [[...servers]] host: it becomes the
    # store's host tag and a report cell); default: the machine's host name.
    host: Name | None = None
    # Each cap's own lease (set by the optimizer's lease_s) bounds how long it outlives contact.
    poll_interval_s: float = Field(15.0, ge=MIN_INTERVAL_S, le=600)
    # The caps this agent set and has not yet reverted (written before each set), so that a
    # restarted agent, or `dcim agent --revert` after a crash, returns them to default.
    cap_record_path: Path = Path("var/agent-caps.json")

    @field_validator("optimizer_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return check_url(value, AGENT_AUTH_HINT)


class SimulatorSettings(Strict):
    seed: int = Field(42, ge=-(2**63), lt=2**63)  # what TOML's integers hold
    speed: float = Field(1.0, gt=0, le=100000)
    backfill_days: float = Field(14.0, ge=0, le=400)
    weather: Literal["daejeon", "seoul", "constant"] = "daejeon"
    # Scheduled twin faults (simulator/twin_faults.py): "cooling:UNIT:HH:MM-HH:MM" daily in the
    # site's time zone, or "cooling:UNIT:+2m-+12m" once after the twin starts.
    faults: list[str] = Field(default_factory=list, max_length=100)


# --- workload: which job holds which GPU, from the site's scheduler ------------------------------

JOB_CLASSES = ("training", "fine_tuning", "inference", "batch", "unknown")
JobClass = Literal["training", "fine_tuning", "inference", "batch", "unknown"]


class SlurmSource(Strict):
    """Slurm 22.05+: ``squeue --json`` on a host that is a Slurm client, or slurmrestd."""

    mode: Literal["cli", "rest"] = "cli"
    squeue: str = "squeue"  # the command (a path, or a name on PATH); run as an argv list, no shell
    slurm_conf: Path | None = None  # SLURM_CONF for the command; default: Slurm's own
    rest_url: str | None = None  # slurmrestd, e.g. http://slurm-ctl:6820
    rest_user: Name | None = None  # X-SLURM-USER-NAME
    rest_token: SecretRef | None = None  # X-SLURM-USER-TOKEN (a JWT from `scontrol token`)
    timeout_s: float = Field(10.0, ge=0.05, le=MAX_TIMEOUT_S)

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "slurmrestd authenticates with rest_user and rest_token")

    @model_validator(mode="after")
    def _rest_needs_url(self) -> "SlurmSource":
        if self.mode == "rest" and self.rest_url is None:
            raise ValueError("mode = 'rest' needs 'rest_url'")
        return self


class KubernetesSource(Strict):
    """Kubernetes: the kubelet's PodResources API on each GPU node (read by ``dcim agent``)."""

    pod_resources_socket: Path = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
    # The pod label whose value names the job class (mapped through [workload] job_classes).
    class_label: str = Field("dcim.io/job-class", min_length=1, max_length=253)
    # The pod label (or annotation) naming the job; default: the pod's namespace/name.
    job_label: str | None = Field(None, min_length=1, max_length=253)
    timeout_s: float = Field(5.0, ge=0.05, le=MAX_TIMEOUT_S)


class DcgmExporterSettings(Strict):
    """An existing dcgm-exporter on each GPU node: GPU telemetry and (on Kubernetes) pod labels."""

    urls: list[str] = []  # each node's /metrics, e.g. http://gpu-node-1:9400/metrics
    # `dcim collect` scrapes GPU telemetry from these instead of a dcim agent on every node.
    telemetry: bool = False
    interval_s: float = Field(10.0, ge=1, le=3600)
    timeout_s: float = Field(5.0, ge=0.05, le=MAX_TIMEOUT_S)
    # The pod label dcgm-exporter exports (with --kubernetes-enable-pod-labels) naming the job class.
    class_label: str = Field("dcim.io/job-class", min_length=1, max_length=253)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [check_url(u, "dcgm-exporter takes no credentials") for u in value]


class WorkloadSettings(Strict):
    """Which job holds which GPU, polled by the collector from the site's scheduler."""

    source: Literal["none", "slurm", "kubernetes", "dcgm"] = "none"
    interval_s: float = Field(30.0, ge=1, le=3600)
    # Scheduler identity → tenant: a Slurm account, or a Kubernetes namespace. Unlisted ones are
    # recorded as tenant "unmapped:<account>": visible in reports, never dropped.
    tenants: dict[str, Name] = {}
    # Job class by Slurm partition, QoS, or the Kubernetes class label's value (first match in
    # that order); unlisted: "unknown", which the optimizer never caps.
    job_classes: dict[str, JobClass] = {}
    # User names are personal data: recorded only when billing needs them.
    record_users: bool = False
    slurm: SlurmSource = SlurmSource()
    kubernetes: KubernetesSource = KubernetesSource()


class ProgressScrape(Strict):
    """[[progress_scrape]]: an inference server whose Prometheus /metrics counts a job's work."""

    name: Name
    url: str  # its /metrics, e.g. http://vllm-1:8000/metrics
    kind: Literal["vllm", "triton", "tgi", "custom"]
    metric: str | None = Field(None, pattern=r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$")  # custom: the counter
    labels: dict[str, str] = {}  # only series with these label values (e.g. Triton's model)
    job: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/+@-]{0,252}$")  # as the workload source names it
    tenant: Name | None = None
    unit: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,31}$")  # default: tokens (vllm, tgi), samples
    interval_s: float = Field(15.0, ge=1, le=3600)
    timeout_s: float = Field(5.0, ge=0.05, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, "inference servers' /metrics take no credentials here")

    @model_validator(mode="after")
    def _custom_needs_metric(self) -> "ProgressScrape":
        if self.kind == "custom" and self.metric is None:
            raise ValueError("kind = 'custom' needs 'metric'")
        return self


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
    workload: WorkloadSettings = WorkloadSettings()
    dcgm_exporter: DcgmExporterSettings = DcgmExporterSettings()
    progress_scrape: list[ProgressScrape] = []
    alerts: AlertsSettings = AlertsSettings()  # the alarm engine (dcim/alerts_config.py)


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
            msg += f" (got {_without_userinfo(err['input'])!r})"
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
        if unit.rooms and unit.kind != "chiller":
            errors.append((f"cooling[{i}].rooms", "only a chiller serves rooms; an air unit serves 'racks'"))
        for j, room in enumerate(unit.rooms):
            if room not in rooms:
                errors.append((f"cooling[{i}].rooms[{j}]", f"no room named {room!r}"))
    for i, ups in enumerate(cfg.ups):
        for j, room in enumerate(ups.rooms):
            if room not in rooms:
                errors.append((f"ups[{i}].rooms[{j}]", f"no room named {room!r}"))
    for account, tenant in cfg.workload.tenants.items():
        if tenant not in tenants:
            errors.append((f"workload.tenants.{account}", f"no tenant named {tenant!r} in [[tenants]]"))
    if (cfg.workload.source == "dcgm" or cfg.dcgm_exporter.telemetry) and not cfg.dcgm_exporter.urls:
        errors.append(("dcgm_exporter.urls", "workload.source = 'dcgm' and dcgm_exporter.telemetry read "
                                             "dcgm-exporter: list its endpoints"))
    return errors


def slowest_poll_s(cfg: Config) -> float:
    """The longest interval at which any telemetry the optimizer reads arrives (GPU, SNMP, per device)."""
    intervals = [cfg.collectors.gpu_interval_s, cfg.collectors.snmp_interval_s]
    for dev in [*cfg.pdus, *cfg.cooling, *cfg.ups, *cfg.meters]:
        if dev.snmp is not None and dev.snmp.interval_s is not None:
            intervals.append(dev.snmp.interval_s)
    return max(intervals)


def _rail_errors(cfg: Config) -> list[tuple[str, str]]:
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
