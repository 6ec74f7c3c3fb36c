"""The SNMP poller: one process-wide client (client.py: one UDP socket, hand-rolled BER, SNMPv2c
and SNMPv3/USM on the same code path), every target polled concurrently, with at most
``max_in_flight`` requests outstanding (the rest wait for a slot before they are sent).

Hot-path rules (reference §4.1, §6): numeric OIDs only; up to ``max_oids`` varbinds per GET PDU;
GETBULK for table walks. A request that times out aborts the rest of that target's requests, so
a dead device costs its own timeout x (retries + 1) and nobody else's. pysnmp is no longer on
this path: its pyasn1 decoding cost ~210 us per OID and put SNMPv3 at 0.69x forked Net-SNMP per
core; ``bench/snmp_poll.py`` compares this client with Net-SNMP in process (ezsnmp).

Values come back as plain Python (``snmp_types.py``): ``int`` for every integer type, ``str`` for
strings, :class:`Oid` for object identifiers, :class:`Missing` for noSuchObject / noSuchInstance /
endOfMibView and for types we cannot use (Opaque, IpAddress, ...). Secrets live only in the
auth objects, whose ``repr`` hides them, and never appear in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from collectors.snmp.client import AgentRefused, BerError, SnmpClient
from collectors.snmp.snmp_types import (  # noqa: F401 (the poller's public names)
    END_OF_MIB,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    V3,
    Endpoint,
    Missing,
    Oid,
    V2c,
)
from collectors.snmp.usm import AUTH_PROTOCOLS, PRIV_PROTOCOLS, protocol_name  # noqa: F401

log = logging.getLogger(__name__)

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"


# --- errors ----------------------------------------------------------------------------------------


class SnmpError(Exception):
    """A request failed as a whole. ``reason`` is short and safe to log (never a secret)."""

    def __init__(self, reason: str, endpoint: Endpoint | None = None):
        self.reason = reason
        super().__init__(f"{endpoint}: {reason}" if endpoint else reason)


TIMEOUT_REASON = "timeout: no response (device down, wrong address, or wrong v2c community)"
TIMEOUT_REASON_V3 = "timeout: no response (device down, wrong address, or wrong v3 priv key or protocol)"


# --- the engine ----------------------------------------------------------------------------------


# Requests outstanding at once, per process. Every answer lands in one UDP socket: 400 devices
# asked at once answer faster than a busy event loop drains the socket, the kernel drops the
# overflow (RcvbufErrors) and those requests time out and are retried, costing more. A request
# waiting for a slot has not been sent, so its timeout has not started.
MAX_IN_FLIGHT = 64

_ERROR_STATUS = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
                 7: "wrongType", 16: "authorizationError", 17: "notWritable"}


class SnmpPoller:
    """Owns the process's SNMP client and the limit on requests in flight.

    *max_in_flight* (default ``MAX_IN_FLIGHT``, or ``DCIM_SNMP_MAX_IN_FLIGHT``): requests
    outstanding at once. *source_address*: the local IPv4 address the polling socket binds to
    (``[collectors] snmp_source_address``; None: the OS chooses, and the socket listens on every
    address). *fast_v2c* is accepted for callers written when there were two paths; ignored.
    """

    def __init__(self, fast_v2c: bool | None = None, max_in_flight: int | None = None,
                 source_address: str | None = None) -> None:
        del fast_v2c  # one path for every version now
        self.source_address = source_address
        if max_in_flight is None:
            max_in_flight = int(os.environ.get("DCIM_SNMP_MAX_IN_FLIGHT", "0") or 0) or MAX_IN_FLIGHT
        self.max_in_flight = max(1, max_in_flight)
        self._slots: tuple | None = None
        self.client = SnmpClient(source_address)
        self.requests = 0   # PDUs sent (for the benchmark and /metrics)
        self.varbinds = 0

    def stats(self) -> dict[str, int]:
        """Counters for /metrics and the ``collector`` measurement. ``replies_unsolicited``:
        datagrams dropped unread (not from a polled address, or an unknown request id / msgID or
        community) plus SNMPv3 replies that failed USM's checks (``replies_rejected``: wrong engine
        ID or user, bad digest, outside the time window: not the agent's answer);
        ``replies_garbled``: datagrams that are not an SNMP message; ``replies_bad``: genuine answers
        whose varbinds did not decode."""
        c = self.client
        rejected = sum(c.rejected.values())
        return {"requests": self.requests, "varbinds": self.varbinds,
                "replies_unsolicited": c.unsolicited + rejected, "replies_garbled": c.garbled,
                "replies_bad": c.bad_replies, "replies_rejected": rejected}

    # The name of the client when it was the v2c-only "fast path" (tests swap a stand-in in).
    @property
    def _fast(self) -> SnmpClient:
        return self.client

    @_fast.setter
    def _fast(self, client) -> None:
        self.client = client

    @property
    def rejected(self) -> dict[str, int]:
        """SNMPv3 replies dropped by USM's checks, by reason."""
        return dict(self.client.rejected)

    @property
    def local_address(self) -> tuple[str, int] | None:
        """(address, port) of the IPv4 polling socket, once a request has opened it."""
        return self.client.local_address

    def _slot(self) -> asyncio.Semaphore:
        """At most ``max_in_flight`` requests outstanding in this process (per event loop)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.max_in_flight))
        return self._slots[1]

    @contextlib.asynccontextmanager
    async def _request(self, ep: Endpoint):
        """One exchange: a request slot, and its failures as SnmpError reasons."""
        self.requests += 1
        async with self._slot():
            try:
                yield
            except TimeoutError:
                raise SnmpError(TIMEOUT_REASON_V3 if isinstance(ep.auth, V3) else TIMEOUT_REASON, ep) from None
            except AgentRefused as exc:
                raise SnmpError(exc.reason, ep) from None
            except BerError as exc:
                raise SnmpError(f"garbled response: {exc}", ep) from None
            except ValueError as exc:  # an unsupported v3 protocol or an empty password
                raise SnmpError(str(exc), ep) from None
            except OSError as exc:     # a name that does not resolve, an unreachable network
                raise SnmpError(f"network error: {exc.strerror or exc}", ep) from None

    async def get(self, ep: Endpoint, oids: list[str]) -> dict[str, int | str | Oid | Missing]:
        """GET *oids* in PDUs of at most ``ep.max_oids`` varbinds. Raises SnmpError if a request
        fails as a whole (the remaining batches are not sent: the device is not answering)."""
        out: dict[str, int | str | Oid | Missing] = {}
        size = max(1, ep.max_oids)
        pending = [oids[i:i + size] for i in range(0, len(oids), size)]
        while pending:
            batch = pending.pop(0)
            async with self._request(ep):
                status, index, values = await self.client.get(ep.host, ep.port, ep.auth, batch, ep.timeout_s,
                                                              ep.retries)
            if status:
                name = _ERROR_STATUS.get(status, f"error-status {status}")
                if name == "tooBig" and len(batch) > 1:
                    half = len(batch) // 2
                    pending[:0] = [batch[:half], batch[half:]]
                    continue
                if name == "noSuchName" and 0 < index <= len(batch):
                    # SNMPv1-style agents reject the whole PDU for one bad OID: mark it, ask the rest
                    out[batch[index - 1]] = NO_SUCH_OBJECT
                    rest = batch[:index - 1] + batch[index:]
                    if rest:
                        pending.insert(0, rest)
                    continue
                raise SnmpError(f"agent error {name}", ep)
            self.varbinds += len(values)
            out.update(zip(batch, values))
        return out

    async def walk(self, ep: Endpoint, root: str, max_rows: int = 10000) -> list[tuple[str, int | str | Oid | Missing]]:
        """Walk the subtree under *root* with GETBULK; return (full OID, value) in order."""
        prefix = root + "."
        rows: list[tuple[str, int | str | Oid | Missing]] = []
        cursor = root
        while len(rows) < max_rows:
            async with self._request(ep):
                status, index, table = await self.client.bulk(ep.host, ep.port, ep.auth, cursor,
                                                              max(1, ep.max_repetitions), ep.timeout_s, ep.retries)
            if status:
                name = _ERROR_STATUS.get(status, f"error-status {status}")
                if name == "noSuchName":  # v1 semantics: end of the MIB
                    break
                raise SnmpError(f"agent error {name}", ep)
            if not table:
                break
            self.varbinds += len(table)
            done = False
            last = cursor
            for oid, value in table:
                if not oid.startswith(prefix) or value is END_OF_MIB:
                    done = True
                    break
                rows.append((oid, value))
                last = oid
            if done or last == cursor:
                break
            cursor = last
        return rows

    def close(self) -> None:
        self.client.close()
