"""The one TOML config file, validated with pydantic.

Unknown keys and bad values are rejected with the key's full path (``rooms[0].rows[1].racks[2].ashrae_class``)
and what was expected. Secrets never live in the TOML: the config names an environment variable
(``*_env``) or a file (``*_file``) and :func:`read_secret` fetches the value when it is needed.

Config is found from ``--config``, else ``DCIM_CONFIG``, else the built-in demo facility
(``deploy/demo.toml``).

One module per part of the file: ``base`` (the strict model, checks, errors, secrets), ``site``
(inventory and devices), ``collectors`` (SNMP credentials, polling), ``store``, ``optimizer`` (and
the agent), ``dashboard`` (and the simulator), ``workload``, and ``loading`` (the whole file, its
cross-section checks, reading the TOML). Import names from ``dcim.config``."""

from __future__ import annotations

from dcim.config.base import (
    AGENT_AUTH_HINT,
    DAY_S,
    DEMO_CONFIG,
    INFLUX_AUTH_HINT,
    MAX_SERVER_W,
    MAX_SITE_KW,
    MAX_STALE_AFTER_S,
    MAX_TIMEOUT_S,
    MIN_INTERVAL_S,
    NAME_PATTERN,
    REPO_ROOT,
    STALE_AFTER_POLLS,
    ConfigError,
    Name,
    SecretRef,
    Strict,
    check_host,
    check_name,
    check_url,
    read_secret,
)
from dcim.config.collectors import (
    CollectorSettings,
    SnmpCredentials,
    SnmpSettings,
    SnmpV2c,
    SnmpV3,
)
from dcim.config.dashboard import (
    DashboardSettings,
    SimulatorSettings,
)
from dcim.config.exporter import ExporterSettings
from dcim.config.loading import (
    Config,
    load_config,
    parse_config,
    slowest_poll_s,
)
from dcim.config.optimizer import (
    AgentSettings,
    OptimizerSettings,
)
from dcim.config.site import (
    AshraeClass,
    CoolingUnit,
    Meter,
    Pdu,
    Rack,
    Room,
    Row,
    Server,
    ServerGroup,
    Site,
    SnmpProfileName,
    SnmpTarget,
    Tenant,
    Ups,
)
from dcim.config.store import (
    InfluxSettings,
    SpoolSettings,
    StoreSettings,
)
from dcim.config.workload import (
    JOB_CLASSES,
    DcgmExporterSettings,
    JobClass,
    KubernetesSource,
    ProgressScrape,
    SlurmSource,
    WorkloadSettings,
)

__all__ = [
    "AGENT_AUTH_HINT",
    "AgentSettings",
    "AshraeClass",
    "CollectorSettings",
    "Config",
    "ConfigError",
    "CoolingUnit",
    "DAY_S",
    "DEMO_CONFIG",
    "DashboardSettings",
    "ExporterSettings",
    "DcgmExporterSettings",
    "INFLUX_AUTH_HINT",
    "InfluxSettings",
    "JOB_CLASSES",
    "JobClass",
    "KubernetesSource",
    "MAX_SERVER_W",
    "MAX_SITE_KW",
    "MAX_STALE_AFTER_S",
    "MAX_TIMEOUT_S",
    "MIN_INTERVAL_S",
    "Meter",
    "NAME_PATTERN",
    "Name",
    "OptimizerSettings",
    "Pdu",
    "ProgressScrape",
    "REPO_ROOT",
    "Rack",
    "Room",
    "Row",
    "STALE_AFTER_POLLS",
    "SecretRef",
    "Server",
    "ServerGroup",
    "SimulatorSettings",
    "Site",
    "SlurmSource",
    "SnmpCredentials",
    "SnmpProfileName",
    "SnmpSettings",
    "SnmpTarget",
    "SnmpV2c",
    "SnmpV3",
    "SpoolSettings",
    "StoreSettings",
    "Strict",
    "Tenant",
    "Ups",
    "WorkloadSettings",
    "check_host",
    "check_name",
    "check_url",
    "load_config",
    "parse_config",
    "read_secret",
    "slowest_poll_s",
]
