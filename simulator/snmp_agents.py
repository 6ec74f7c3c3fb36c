"""Real SNMP agents for the facility twin: every PDU, cooling unit, UPS and meter of a config,
each on its own loopback address, all served by one pysnmp command-responder engine.

How it works
* Each device gets its own UDP endpoint (own address:port), so it looks like a separate box.
* SNMPv3 devices: one ``SnmpEngine`` per process (asyncio), one transport (own transport domain)
  per device; the responders look at the transport domain a request arrived on to know which
  device is asked.
* SNMPv2c devices: a fast path without pysnmp (``V2cAgent``, a plain asyncio datagram protocol
  per device): requests are decoded and responses encoded with ``dcim.snmp_ber``, GET / GETNEXT /
  GETBULK answered from the device's sorted table. pysnmp's pyasn1 message handling cost ~175 µs
  per OID and was most of ``dcim up``'s CPU.
* Access is by the device's configured credentials only: a v3 device answers its USM user at
  authPriv, a v2c device its community. Anything else is dropped silently (no answer), as a real
  agent does for a bad community.
* Values are live: each request reads ``snapshot_provider()``. A device's MIB is a sorted OID
  table rebuilt lazily when the snapshot (or the device's faults) changed since its last request,
  so a walk costs a bisect per varbind, not a MIB-object tree traversal. Table values are held
  BER-encoded (what the v2c path sends as is); the pysnmp path converts the ones it serves.
* The MIBs themselves are data (``simulator/mib_*.py``): OID, syntax, scale, how to compute the
  value from the reading.

Where each part lives: this module starts, stops and configures the set (:class:`AgentSet`);
``snmp_profiles`` picks each device's MIB; ``snmp_device`` holds a device's table and faults;
``snmp_v3`` is the pysnmp path, ``snmp_v2c`` the fast path.

Profiles (``agent_profile_for``; a device's ``snmp.profile`` wins when it names one we serve;
names match ``collectors/snmp/profiles``):

* pdu: ``apc_rpdu2`` / ``raritan_pdu2``, by default alternating by the order of the rack's room
  in the config (1st, 3rd... room APC; 2nd, 4th... Raritan), so the demo has hall-1 APC, hall-2 Raritan.
* cooling: in-row → ``apc_inrow``; CRAH and chiller → ``liebert_env``.
* ups: ``eaton_xups`` (UPS-MIB + XUPS input watts; default) or ``ups_mib``.
* meter: ``entity_sensor_meter`` (ENTITY-SENSOR-MIB + ENERGY-OBJECT-MIB energy).

Faults for tests (``AgentSet.set_fault(name, ...)``): ``dead`` (no answer), ``delay_s`` (answer
late), ``garbage`` (measurements come back as OCTET STRINGs), ``sentinel`` (measurements are -1),
``profile`` (the device was swapped for another model: other MIB and sysObjectID),
``sys_object_id`` (only the sysObjectID changes).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import context

from dcim.config import Config, CoolingUnit, Meter, Pdu, SnmpV2c, SnmpV3, Ups, read_secret
from dcim.inventory import Inventory, build_inventory
from simulator.readings import FacilitySnapshot
from simulator.snmp_device import AgentFault, DeviceAgent, to_pyasn1
from simulator.snmp_profiles import PROFILES, agent_profile_for, normalise_profile
from simulator.snmp_v2c import MAX_V2C_MESSAGE, V2cAgent
from simulator.snmp_v3 import RESPONDERS, USM_AUTH, USM_PRIV, Router

# What the agents' users import from here (simulator/backfill.py, the tests, the benchmarks).
__all__ = ["AgentFault", "AgentSet", "DeviceAgent", "MAX_V2C_MESSAGE", "PROFILES", "Router", "V2cAgent",
           "agent_profile_for", "normalise_profile"]
# The names these had before the split into modules (tests/simulator/test_snmp_fast_v2c.py and
# bench/snmp_agents.py still use them): remove once they import the new names.
_V2cAgent, _Router, _pyasn1 = V2cAgent, Router, to_pyasn1

log = logging.getLogger(__name__)


class AgentSet:
    """All the twin's SNMP agents in this process. Start and stop it inside a running asyncio loop.

    ``devices``: restrict to these device names (default: every device with an ``snmp`` target).
    IPv4 only: on Linux the whole 127.0.0.0/8 is on loopback, so every device gets its own address.
    """

    def __init__(self, config: Config, snapshot_provider: Callable[[], FacilitySnapshot], *,
                 inventory: Inventory | None = None, devices: list[str] | None = None):
        self.config = config
        self.inventory = inventory or build_inventory(config)
        self.snapshot_provider = snapshot_provider
        self.agents: dict[str, DeviceAgent] = {}
        self._by_domain: dict[tuple, DeviceAgent] = {}
        self._current: DeviceAgent | None = None
        self._engine: snmp_engine.SnmpEngine | None = None
        self._v2c: dict[str, V2cAgent] = {}  # v2c devices: served by the fast path, not pysnmp
        self.v2c_max_message = MAX_V2C_MESSAGE
        self._start_time = time.monotonic()
        wanted = set(devices) if devices is not None else None
        for kind, name, dev in self.inventory.snmp_devices():
            if wanted is not None and name not in wanted:
                continue
            assert isinstance(dev, Pdu | CoolingUnit | Ups | Meter) and dev.snmp is not None  # snmp_devices() lists these
            creds = config.snmp.credentials[dev.snmp.credentials]
            self.agents[name] = DeviceAgent(
                name=name, kind=kind, device=dev, profile=agent_profile_for(kind, dev, self.inventory),
                address=dev.snmp.address, port=dev.snmp.port, credentials=dev.snmp.credentials,
                version=creds.version,
                security_name=creds.user if isinstance(creds, SnmpV3) else f"community-{dev.snmp.credentials}",
            )

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._engine is not None

    async def start(self) -> None:
        if self._engine is not None:
            return
        eng = snmp_engine.SnmpEngine()
        loop = asyncio.get_running_loop()
        try:
            communities = self._configure_credentials(eng)
            for i, agent in enumerate(self.agents.values(), 1):
                sock = _bind(agent.address, agent.port)  # bind here, so "address in use" is raised now
                if agent.version == "2c":
                    protocol = V2cAgent(self, agent, communities[agent.credentials])
                    try:
                        await loop.create_datagram_endpoint(_returning(protocol), sock=sock)
                    except BaseException:
                        sock.close()
                        raise
                    self._v2c[agent.name] = protocol
                    continue
                domain = udp.DOMAIN_NAME + (i,)
                snmp_config.add_transport(eng, domain, udp.UdpTransport().open_server_mode(sock=sock))
                self._by_domain[domain] = agent
            ctx = context.SnmpContext(eng)
            ctx.unregister_context_name(b"")
            ctx.register_context_name(b"", Router(self))
            for cls in RESPONDERS:
                responder = cls(eng, ctx)
                responder.agents = self
            if eng.transport_dispatcher is not None:  # None when there is no v3 device
                eng.transport_dispatcher.job_started(1)
            await asyncio.sleep(0)  # let the datagram endpoints come up
        except BaseException:
            eng.close_dispatcher()
            self._by_domain.clear()
            self._close_v2c()
            raise
        self._engine = eng
        self._start_time = time.monotonic()
        log.info("SNMP agents serving %d devices", len(self.agents))

    async def stop(self) -> None:
        eng, self._engine = self._engine, None
        if eng is None:
            return
        self._close_v2c()
        # Close the sockets first and let datagrams already queued on the loop reach the gate
        # (which drops them now): after close_dispatcher they would hit unregistered transports.
        dispatcher = eng.transport_dispatcher
        for domain in self._by_domain:
            transport = dispatcher.get_transport(domain)
            if transport is not None and transport.transport is not None:
                transport.transport.close()
        for _ in range(3):
            await asyncio.sleep(0)
        if dispatcher is not None:
            dispatcher.job_finished(1)
        eng.close_dispatcher()
        self._by_domain.clear()

    def _close_v2c(self) -> None:
        for protocol in self._v2c.values():
            if protocol.transport is not None:
                protocol.transport.close()
        self._v2c.clear()

    def _configure_credentials(self, eng) -> dict[str, bytes]:
        """USM users of the v3 devices into *eng*; returns the v2c communities by credential name."""
        used = {a.credentials for a in self.agents.values()}
        users: dict[str, str] = {}
        communities: dict[str, bytes] = {}
        for cred_name in sorted(used):
            creds = self.config.snmp.credentials[cred_name]
            where = f"snmp.credentials.{cred_name}"
            if isinstance(creds, SnmpV2c):
                community = read_secret(creds.community, f"{where}.community")
                if not community:
                    raise ValueError(f"{where}.community: no community set")
                communities[cred_name] = community.encode()  # served by V2cAgent, not by pysnmp
            else:
                if creds.user in users:
                    # USM has one entry per user name and engine: two credential sets cannot share one
                    raise ValueError(f"{where}: SNMPv3 user {creds.user!r} is also defined in "
                                     f"snmp.credentials.{users[creds.user]}; the simulator needs distinct users")
                users[creds.user] = cred_name
                snmp_config.add_v3_user(
                    eng, creds.user,
                    USM_AUTH[creds.auth_protocol], read_secret(creds.auth_key, f"{where}.auth_key"),
                    USM_PRIV[creds.priv_protocol], read_secret(creds.priv_key, f"{where}.priv_key"),
                )
        return communities

    # --- serving --------------------------------------------------------------------------------

    def _serving(self) -> tuple[DeviceAgent, FacilitySnapshot, float]:
        agent = self._current
        if agent is None:  # only reachable if pysnmp calls the controller outside _Gate
            raise RuntimeError("no device selected for this request")
        return agent, self.snapshot_provider(), self._start_time

    # --- faults ---------------------------------------------------------------------------------

    def set_fault(self, name: str, **changes) -> AgentFault:
        """Change one device's faults, e.g. ``set_fault("pdu-A01-a", dead=True)``; returns the new fault.

        Unknown device names raise KeyError; unknown fault names raise TypeError; an unknown
        ``profile`` raises ValueError.
        """
        agent = self.agents[name]
        if changes.get("profile") is not None:
            profile = normalise_profile(changes["profile"])
            if profile is None:
                raise ValueError(f"unknown profile {changes['profile']!r}; known: {', '.join(sorted(PROFILES))}")
            changes["profile"] = profile
        agent.fault = replace(agent.fault, **changes)  # a new object: the table cache key changes
        return agent.fault

    def clear_faults(self, name: str | None = None) -> None:
        for agent in ([self.agents[name]] if name else self.agents.values()):
            agent.fault = AgentFault()

    # --- what is served where -------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """One row per device: name, kind, profile, vendor, address, port, SNMP version, credentials."""
        return [
            {"name": a.name, "kind": a.kind, "profile": a.served_profile.name, "vendor": a.served_profile.vendor,
             "address": a.address, "port": a.port, "version": a.version, "credentials": a.credentials,
             "sys_object_id": a.fault.sys_object_id or a.served_profile.sys_object_id}
            for a in self.agents.values()
        ]


def _returning(protocol: V2cAgent) -> Callable[[], V2cAgent]:
    """The protocol factory asyncio wants, for a protocol made already."""
    return lambda: protocol


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot serve SNMP on {address}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
