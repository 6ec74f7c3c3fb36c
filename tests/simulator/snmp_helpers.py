"""Helpers for tests that talk to the twin's SNMP agents with Net-SNMP's command-line tools.

* ``relocated(config)``: the same config with every device moved to its own address under
  127.77.0.0/16 on one free port, so tests never collide with a running ``dcim simulate``
  (127.42.x.x:1161) or with each other.
* ``TEST_SECRETS``: fixed SNMP secrets for the demo config's environment variables.
* ``StubTwin``: a twin whose snapshots the test hands in (the expected values come from them).
* ``NetSnmp``: runs snmpget / snmpwalk / snmpbulkwalk and parses ``-On -Oq -Ot -Oe`` output.
* ``running_service``: a TwinService on a background thread, stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from dcim.config import Config
from simulator.readings import FacilitySnapshot

TEST_SECRETS = {
    "DCIM_SNMP_AUTH_KEY": "test-auth-key-0123",
    "DCIM_SNMP_PRIV_KEY": "test-priv-key-4567",
    "DCIM_SNMP_COMMUNITY": "test-community",
}
V3_USER = "dcim"
HAVE_NET_SNMP = all(shutil.which(tool) for tool in ("snmpget", "snmpwalk", "snmpbulkwalk"))


def free_udp_port(address: str = "127.77.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def relocated(config: Config, prefix: str = "127.77", port: int | None = None) -> Config:
    """Also puts every device but the meters on the v3 credentials: the demo's PDUs answer v2c
    (cheap for the demo), and these tests want the vendor MIBs exercised over v3 authPriv too."""
    port = port or free_udp_port(f"{prefix}.0.1")
    n = 0

    def move(devices, v3: bool = True):
        nonlocal n
        out = []
        for dev in devices:
            n += 1
            update = {"address": f"{prefix}.{n // 250}.{n % 250 + 1}", "port": port}
            if v3:
                update["credentials"] = "default"
            snmp = dev.snmp.model_copy(update=update)
            out.append(dev.model_copy(update={"snmp": snmp}))
        return out

    return config.model_copy(update={
        "pdus": move(config.pdus), "cooling": move(config.cooling), "ups": move(config.ups),
        "meters": move(config.meters, v3=False)})


class StubTwin:
    """Serves the snapshot the test set; ``step`` swaps in the next one from ``queue``."""

    def __init__(self, snapshot: FacilitySnapshot):
        self.snapshot = snapshot
        self.queue: list[FacilitySnapshot] = []
        self.now_ns = snapshot.time_ns

    def step(self, dt_s: float) -> FacilitySnapshot:
        if self.queue:
            self.snapshot = self.queue.pop(0)
            self.now_ns = self.snapshot.time_ns
        return self.snapshot


@dataclass
class NetSnmp:
    """Net-SNMP client settings for one test run (v3 authPriv SHA/AES by default)."""

    auth_key: str = TEST_SECRETS["DCIM_SNMP_AUTH_KEY"]
    priv_key: str = TEST_SECRETS["DCIM_SNMP_PRIV_KEY"]
    community: str = TEST_SECRETS["DCIM_SNMP_COMMUNITY"]
    timeout_s: float = 1.0

    def auth(self, version: str = "3", **override) -> list[str]:
        if version == "2c":
            return ["-v2c", "-c", override.get("community", self.community)]
        return ["-v3", "-l", "authPriv", "-u", override.get("user", V3_USER), "-a", "SHA",
                "-A", override.get("auth_key", self.auth_key),
                "-x", "AES", "-X", override.get("priv_key", self.priv_key)]

    def run(self, tool: str, target: str, oids: list[str], version: str = "3", extra: list[str] | None = None,
            typed: bool = False, **override) -> subprocess.CompletedProcess:
        """Run a Net-SNMP tool; ``typed`` keeps the "OID = TYPE: value" form (no -Oq)."""
        fmt = ["-On", "-Ot", "-Oe"] + ([] if typed else ["-Oq"])
        cmd = [tool, *fmt, "-t", str(self.timeout_s), "-r", "0", *(extra or []),
               *self.auth(version, **override), target, *oids]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"})

    def query(self, tool: str, target: str, oids: list[str], version: str = "3", **kw) -> dict[str, str]:
        proc = self.run(tool, target, oids, version, **kw)
        if proc.returncode != 0:
            raise SnmpFailed(f"{tool} {target}: {proc.stderr.strip() or proc.stdout.strip()}")
        return parse(proc.stdout)

    def get(self, target: str, *oids: str, version: str = "3", **kw) -> dict[str, str]:
        return self.query("snmpget", target, list(oids), version, **kw)

    def walk(self, target: str, oid: str, version: str = "3", **kw) -> dict[str, str]:
        return self.query("snmpwalk", target, [oid], version, **kw)

    def bulkwalk(self, target: str, oid: str, version: str = "3", **kw) -> dict[str, str]:
        return self.query("snmpbulkwalk", target, [oid], version, **kw)


class SnmpFailed(Exception):
    pass


def parse(text: str) -> dict[str, str]:
    """``-On -Oq`` lines (``.1.3.6... value``) into {oid without the leading dot: value}."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("."):
            continue
        oid, _, value = line.partition(" ")
        value = value.strip()
        if value.startswith("No more variables") or value.startswith("No Such"):
            continue
        out[oid[1:]] = value.strip('"')
    return out


def target(config: Config, name: str) -> str:
    for dev in [*config.pdus, *config.cooling, *config.ups, *config.meters]:
        if dev.name == name:
            return f"{dev.snmp.address}:{dev.snmp.port}"
    raise KeyError(name)


@contextlib.contextmanager
def running_service(config: Config, twin, **kw) -> Iterator:
    from simulator.service import TwinService

    svc = TwinService(config, twin=twin, speed=0, **kw)  # speed 0: the test steps the twin itself
    svc.start_background()
    try:
        yield svc
    finally:
        svc.stop_background()
