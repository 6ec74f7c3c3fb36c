"""The SNMPv3 path: pysnmp's command responders, gated per device (credentials, dead/delay
faults) and answered from the device's table through one MIB instrumentation (:class:`Router`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pysnmp.entity import config as snmp_config
from pysnmp.entity.rfc3413 import cmdrsp
from pysnmp.smi.instrum import AbstractMibInstrumController

from simulator.snmp_device import DeviceAgent, object_name

if TYPE_CHECKING:
    from simulator.snmp_agents import AgentSet

USM_AUTH = {"MD5": snmp_config.USM_AUTH_HMAC96_MD5, "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
         "SHA224": snmp_config.USM_AUTH_HMAC128_SHA224, "SHA256": snmp_config.USM_AUTH_HMAC192_SHA256,
         "SHA384": snmp_config.USM_AUTH_HMAC256_SHA384, "SHA512": snmp_config.USM_AUTH_HMAC384_SHA512}
# AES192/256 as pysnmp's own client speaks them (Reeder key extension).
USM_PRIV = {"DES": snmp_config.USM_PRIV_CBC56_DES, "AES": snmp_config.USM_PRIV_CFB128_AES,
         "AES192": snmp_config.USM_PRIV_CFB192_AES, "AES256": snmp_config.USM_PRIV_CFB256_AES}


def _as_tuple(name) -> tuple[int, ...]:
    # pyasn1's asTuple() hands back the stored tuple; tuple(name) iterates it item by item (3x slower)
    return name.asTuple() if hasattr(name, "asTuple") else tuple(name)


class Router(AbstractMibInstrumController):
    """The MIB instrumentation of every device: serves the device the current request came to."""

    def __init__(self, agents: AgentSet):
        self.agents = agents

    def read_variables(self, *var_binds, **context):
        agent, snapshot, t0 = self.agents._serving()
        return [(name, agent.get(snapshot, _as_tuple(name), t0)) for name, _ in var_binds]

    def read_next_variables(self, *var_binds, **context):
        agent, snapshot, t0 = self.agents._serving()
        out = []
        for name, _ in var_binds:
            found, value = agent.get_next(snapshot, _as_tuple(name), t0)
            out.append((name if found is None else object_name(found), value))
        return out

    def write_variables(self, *var_binds, **context):
        raise NotImplementedError  # no SET responder is registered: the agents are read-only


class _Gate:
    """Picks the device by the transport a request arrived on, checks its credentials and
    applies the dead/delay faults before the standard responder logic runs."""

    agents: AgentSet

    def process_pdu(self, snmp_engine, mp_model, security_model, security_name, security_level,
                    context_engine_id, context_name, pdu_version, pdu, max_size, state_reference):
        args = (snmp_engine, mp_model, security_model, security_name, security_level, context_engine_id,
                context_name, pdu_version, pdu, max_size, state_reference)
        if not self.agents.running:
            return  # stopping
        request = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        agent = self.agents._by_domain.get(tuple(request["transportDomain"]))
        if agent is None or not agent.accepts(security_model, security_name, security_level):
            return  # wrong credentials for this device: no answer
        fault = agent.fault
        if fault.dead:
            return
        agent.requests += 1
        if fault.delay_s > 0:
            asyncio.get_running_loop().call_later(fault.delay_s, self._answer, agent, args)
            return
        self._answer(agent, args)

    def _answer(self, agent: DeviceAgent, args) -> None:
        if not self.agents.running:  # a delayed answer that outlived stop()
            return
        self.agents._current = agent
        try:
            super().process_pdu(*args)  # type: ignore[misc]
        finally:
            self.agents._current = None


class _Get(_Gate, cmdrsp.GetCommandResponder):
    pass


class _Next(_Gate, cmdrsp.NextCommandResponder):
    pass


class _Bulk(_Gate, cmdrsp.BulkCommandResponder):
    pass



RESPONDERS = (_Get, _Next, _Bulk)  # GET, GETNEXT, GETBULK; no SET: the agents are read-only
