"""SNMP under hostile packets: a stranger spraying the poller's UDP socket, a spoofed reply with the
right request id, an agent answering a GETBULK with a 4,300-digit arc.

Everything here is real UDP on loopback: snmpsim (tests/fixtures/snmpsim.py) is the healthy agent,
a plain socket in a thread is the attacker, ``dcim probe`` runs as a subprocess. Run this file as a
script for the standalone figures (CPU seconds per hostile 65 KB datagram, healthy polls lost
under 5 hostile datagrams a second for 15 s):

    .venv/bin/python tests/faults/test_snmp_hostile.py
"""

from __future__ import annotations

import asyncio
import random
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

if __name__ == "__main__":  # the standalone measurement imports the project from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.device import SnmpDevice
from collectors.snmp.engine import SYS_OBJECT_ID, Endpoint, SnmpError, SnmpPoller, V2c
from dcim import snmp_ber as ber

RECORDING = "UPS/apc-8641"   # a real APC UPS recording snmpsim serves (community = path)
HOSTILE_PER_S = 5
DATAGRAM_BYTES = 65_000


# --- hostile datagrams -----------------------------------------------------------------------------


def base128(n: int) -> bytes:
    """One sub-identifier, any size (the codec under test refuses to encode these)."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def long_subid_response(rid: int, community: bytes = b"public", size_bytes: int = DATAGRAM_BYTES) -> bytes:
    """A v2c Response whose one value is an OID made of a single ~65 KB sub-identifier: decoding
    it the naive way (shift-or per octet on a growing int) is quadratic."""
    value = ber.tlv(ber.OBJECT_IDENTIFIER, b"\x2b" + b"\xff" * (size_bytes - 80) + b"\x7f")
    vb = ber.varbind(ber.encode_oid(SYS_OBJECT_ID), value)
    return ber.encode_v2c(community, ber.GET_RESPONSE, rid, 0, 0, [vb])


def huge_arc_oid_tlv(prefix: str, digits: int = 4400) -> bytes:
    """OID TLV *prefix*.<an arc of *digits* decimal digits> (past int-to-str's 4,300-digit limit)."""
    body = ber.oid_body(prefix) + base128(10 ** (digits - 1))  # int("9" * digits) hits the same limit
    return ber.tlv(ber.OBJECT_IDENTIFIER, body)


def hostile_datagrams(rng: random.Random) -> list[bytes]:
    """One of each kind a stranger sends, each with a random request id."""
    rid = rng.randrange(1, 1 << 31)
    bulk_row = ber.varbind(huge_arc_oid_tlv("1.3.6.1.4.1.318.1.1.1.9.2.3.1.9"), ber.encode_integer(1))
    return [
        long_subid_response(rid),
        ber.encode_v2c(b"public", ber.GET_RESPONSE, rid + 1, 0, 0, [bulk_row]),
        bytes(rng.randrange(256) for _ in range(DATAGRAM_BYTES)),
    ]


class Sprayer:
    """A real UDP socket on 127.0.0.1 sending *per_s* hostile datagrams a second to *target*."""

    def __init__(self, target: tuple[str, int], per_s: float = HOSTILE_PER_S, kinds: list[bytes] | None = None):
        self.target = target
        self.period_s = 1.0 / per_s
        self.kinds = kinds or hostile_datagrams(random.Random(20))
        self.sent = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self._sock.sendto(self.kinds[self.sent % len(self.kinds)], self.target)
                self.sent += 1
            except OSError:
                pass
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def __enter__(self) -> Sprayer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


# --- healthy polls under a hostile stream ----------------------------------------------------------


async def _polls_under_spray(collector: SnmpCollector, device: str, polls: int, every_s: float,
                             spray_to: tuple[str, int] | None, kinds: list[bytes] | None = None
                             ) -> tuple[int, int, dict[str, int], list]:
    """(polls lost, datagrams sprayed, dropped replies the collector reported, its results) while a
    Sprayer sends *kinds* to *spray_to* (None: the poller's own socket)."""
    await collector.poll(5.0)  # discovery, and the socket is open
    reported: dict[str, int] = {}
    every = []
    target = spray_to or ("127.0.0.1", collector.poller.local_address[1])
    lost = 0
    give_up = time.monotonic() + polls * every_s * 3  # a stalled loop (the bug) ends the test, lost
    with Sprayer(target, kinds=kinds) as sprayer:
        for made in range(polls):
            if time.monotonic() > give_up:
                lost += polls - made
                break
            t0 = time.monotonic()
            results = await collector.poll(every_s * 2)
            every += results
            if not {r.target: r for r in results}[device].ok:
                lost += 1
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - t0)))
        await asyncio.sleep(0.3)  # the last datagrams in flight reach the socket
        sent = sprayer.sent
    every += await collector.poll(every_s * 2)  # reports the drops since the last poll
    for r in every:
        for name, n in r.counters.items():
            reported[name] = reported.get(name, 0) + n
    return lost, sent, reported, every


def _collector(host: str, port: int, timeout_s: float = 1.0, source_address: str | None = None) -> SnmpCollector:
    device = SnmpDevice("ups-1", "ups", Endpoint(host, port, V2c(RECORDING), timeout_s=timeout_s, retries=0),
                        {"site": "s", "ups": "ups-1"})
    return SnmpCollector([device], SnmpPoller(source_address=source_address), interval_s=1.0)


def test_healthy_polls_lose_nothing_under_5_hostile_datagrams_a_second(snmpsim_agent):
    """Issue: one 65 KB datagram with a single long sub-identifier cost 0.28 s CPU; five a second
    failed 4 of 5 polls. Now a stranger's datagram is dropped after its header, counted."""
    col = _collector(snmpsim_agent.host, snmpsim_agent.port)

    async def go():
        try:
            cpu0 = time.process_time()
            # the stream: 65 KB datagrams, each one long sub-identifier, 5 a second
            stream = [long_subid_response(rid) for rid in (11, 12, 13)]
            lost, sent, reported, results = await _polls_under_spray(col, "ups-1", polls=8, every_s=0.5,
                                                                      spray_to=None, kinds=stream)
            return lost, sent, reported, results, time.process_time() - cpu0, col.poller.stats()
        finally:
            await col.close()

    polls = 8
    lost, sent, reported, results, cpu_s, stats = asyncio.run(go())
    print(f"healthy polls lost under {HOSTILE_PER_S} hostile datagrams/s: {lost} of {polls} "
          f"({sent} hostile datagrams, {cpu_s:.2f} s CPU in the poller's process)")
    assert sent >= 15
    assert lost == 0, f"{lost} of {polls} healthy polls lost"
    # Every hostile datagram was counted, as unsolicited: dropped after its header, never decoded.
    assert sent - 2 <= stats["replies_unsolicited"] <= sent and stats["replies_bad"] == 0, (stats, sent)
    # ... and the collector reported each of them once, on its ``collector`` health points.
    assert reported == {"replies_unsolicited": stats["replies_unsolicited"]}, reported
    from collectors.runner import Runner
    from dcim.metrics import validate_point

    points = Runner.health_points("snmp", results)
    for point in points:
        validate_point(point)
    assert sum(p.fields.get("replies_unsolicited", 0) for p in points) == stats["replies_unsolicited"]


# --- a spoofed reply carrying the right request id ---------------------------------------------------


class SpoofingAgent:
    """Answers each GET twice: first from ANOTHER socket (a spoofer who learnt the request id)
    with a hostile value, then from its own address with the true answer (INTEGER 42 per OID)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.spoof.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
                _, community, _, rid, _, _, vbs = ber.decode_message(data)
            except (OSError, ber.BerError):
                continue
            self.requests += 1
            self.spoof.sendto(long_subid_response(rid, community), addr)
            time.sleep(0.02)  # the spoofed one lands first
            good = [ber.varbind(oid, ber.encode_integer(42)) for oid, _, _, _ in vbs]
            self.sock.sendto(ber.encode_v2c(community, ber.GET_RESPONSE, rid, 0, 0, good), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.spoof.close()


def test_spoofed_reply_with_the_right_request_id_is_dropped_unread():
    agent = SpoofingAgent()
    oids = ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"]
    ep = Endpoint("127.0.0.1", agent.port, V2c("public"), timeout_s=2.0, retries=0)

    async def go():
        poller = SnmpPoller()
        try:
            cpu0 = time.process_time()
            values = [await poller.get(ep, oids) for _ in range(3)]
            return values, time.process_time() - cpu0, poller.stats()
        finally:
            poller.close()

    try:
        values, cpu_s, stats = asyncio.run(go())
    finally:
        agent.close()
    assert values == [{o: 42 for o in oids}] * 3
    assert stats["replies_unsolicited"] == 3 and stats["replies_bad"] == 0, stats
    # Dropped before its varbinds were decoded: the quadratic decode cost ~0.3-0.5 s per datagram.
    assert cpu_s < 0.25, cpu_s


# --- the source address --------------------------------------------------------------------------------


def test_source_address_keeps_datagrams_to_other_local_addresses_out(snmpsim_agent):
    """Bound to 0.0.0.0 the poller's socket takes datagrams sent to any of the host's addresses
    (127.0.0.2 here); bound to the configured source address it takes none of them."""
    from dcim.config import CollectorSettings

    def counted(source_address):
        settings = CollectorSettings(snmp_source_address=source_address)
        col = _collector(snmpsim_agent.host, snmpsim_agent.port, source_address=settings.snmp_source_address)

        async def go():
            try:
                await col.poll(5.0)  # opens the socket
                bound = col.poller.local_address
                lost, sent, _, _ = await _polls_under_spray(col, "ups-1", polls=2, every_s=0.5,
                                                            spray_to=("127.0.0.2", bound[1]))
                stats = col.poller.stats()
                return bound, lost, sent, stats["replies_unsolicited"] + stats["replies_garbled"]
            finally:
                await col.close()
        return asyncio.run(go())

    bound, lost, sent, dropped = counted(None)
    assert bound[0] == "0.0.0.0" and lost == 0 and dropped >= sent - 2 and sent >= 4
    bound, lost, sent, dropped = counted("127.0.0.1")
    assert bound[0] == "127.0.0.1" and lost == 0 and dropped == 0 and sent >= 4


def test_source_address_binds_the_v3_path_too(snmpsim_agent):
    """SNMPv3 shares the v2c socket, bound to the source address, and still reads."""
    from collectors.snmp.engine import V3
    from tests.fixtures.snmpsim import SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, SNMPSIM_V3_USER

    auth = V3(SNMPSIM_V3_USER, SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, "SHA", "AES", RECORDING)
    ep = Endpoint(snmpsim_agent.host, snmpsim_agent.port, auth, timeout_s=2.0, retries=0)

    async def go():
        poller = SnmpPoller(source_address="127.0.0.1")
        try:
            values = await poller.get(ep, [SYS_OBJECT_ID])
            return values, poller.local_address
        finally:
            poller.close()

    values, bound = asyncio.run(go())
    assert values[SYS_OBJECT_ID].startswith("1.3.6.1.4.1.318.") and bound[0] == "127.0.0.1"


@pytest.mark.parametrize("value,why", [("::1", "IPv4"), ("0.0.0.0", "IPv4 unicast"),
                                       ("pdu-mgmt.example", "not an IP address")])
def test_source_address_is_validated_naming_the_key(tmp_path, value, why):
    from dcim.config import ConfigError, load_config

    text = (Path(__file__).resolve().parents[2] / "deploy" / "demo.toml").read_text(encoding="utf-8")
    assert "\n[collectors]\n" in text
    path = tmp_path / "dcim.toml"
    path.write_text(text.replace("\n[collectors]\n", f'\n[collectors]\nsnmp_source_address = "{value}"\n'),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "collectors.snmp_source_address" in message and why in message, message


def test_source_address_reaches_the_collectors_poller(demo_config):
    from dcim.inventory import build_inventory

    settings = demo_config.collectors.model_copy(update={"snmp_source_address": "127.0.0.1"})
    col = SnmpCollector.from_inventory(build_inventory(demo_config), settings)
    assert col.poller.source_address == "127.0.0.1" and col.poller._fast.source_address == "127.0.0.1"


# --- OID bounds ----------------------------------------------------------------------------------------


def test_oid_decoding_is_bounded_and_linear():
    ok = (1, 3, 6, 1, 4, 1, 2**32 - 1) + (7,) * 121  # 128 arcs, the largest arc
    assert ber.decode_oid_parts(ber.oid_body(ok)) == ok
    refused = [b"\x2b" + base128(2**32),                      # arc above 2^32-1 (5 octets)
               b"\x2b" + b"\x81" * 5 + b"\x01",               # 6-octet sub-identifier
               ber.oid_body((1, 3) + (1,) * 126) + b"\x01",   # 129 arcs
               b"\x2b" + b"\xff" * 65_000 + b"\x7f"]          # the 65 KB sub-identifier
    for body in refused:
        t0 = time.process_time()
        with pytest.raises(ber.BerError):
            ber.decode_oid_parts(body)
        assert time.process_time() - t0 < 0.01
    with pytest.raises(ValueError):
        ber.oid_body((1, 3, 2**32))


# --- dcim probe against a 4,300-digit arc ----------------------------------------------------------------


class HugeArcAgent:
    """A v2c agent on 127.0.0.1: sysName/sysDescr/sysObjectID (an APC UPS) for GETs, and for every
    GETBULK one row whose OID ends in an arc of 4,300 decimal digits."""

    SYS = {"1.3.6.1.2.1.1.5.0": ber.encode_octets("ups-evil"), "1.3.6.1.2.1.1.1.0": ber.encode_octets("APC"),
           SYS_OBJECT_ID: ber.encode_oid("1.3.6.1.4.1.318.1.3.27")}

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.bulks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _answer(self, data: bytes) -> bytes | None:
        _, community, pdu, rid, _, _, vbs = ber.decode_message(data)
        names = [ber.decode_oid(oid[2:]) for oid, _, _, _ in vbs]
        if pdu == ber.GET_BULK_REQUEST:
            self.bulks += 1
            row = ber.varbind(huge_arc_oid_tlv(names[0]), ber.encode_integer(1))
            return ber.encode_v2c(community, ber.GET_RESPONSE, rid, 0, 0, [row])
        values = [self.SYS.get(n, ber.NO_SUCH_INSTANCE_TLV) for n in names]
        return ber.encode_v2c(community, ber.GET_RESPONSE, rid, 0, 0,
                              [ber.varbind(oid, v) for (oid, _, _, _), v in zip(vbs, values)])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
                reply = self._answer(data)
            except (OSError, ber.BerError):
                continue
            self.sock.sendto(reply, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_probe_of_a_getbulk_row_with_a_4300_digit_arc_is_a_clear_error(no_traceback):
    from tests.faults.conftest import run_dcim

    agent = HugeArcAgent()
    try:
        proc = run_dcim("probe", f"127.0.0.1:{agent.port}", "--timeout", "1", "--retries", "0", timeout=60)
    finally:
        agent.close()
    no_traceback(proc.stdout + proc.stderr)
    assert agent.bulks >= 1  # the walk reached the hostile row
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert f"127.0.0.1:{agent.port}: garbled response" in proc.stderr and "OID" in proc.stderr, proc.stderr


# --- the standalone measurement --------------------------------------------------------------------------


def _healthy_agent(port_q, stop) -> None:
    """A minimal v2c agent (answers every GET with INTEGER 42) in its own process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    port_q.put(sock.getsockname()[1])
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65535)
            _, community, _, rid, _, _, vbs = ber.decode_message(data)
        except (OSError, ber.BerError):
            continue
        good = [ber.varbind(oid, ber.encode_integer(42)) for oid, _, _, _ in vbs]
        sock.sendto(ber.encode_v2c(community, ber.GET_RESPONSE, rid, 0, 0, good), addr)


def measure(duration_s: float = 15.0) -> None:
    """CPU seconds per hostile 65 KB datagram in the poller's process, and healthy polls lost (one
    GET a second, timeout 1 s, no retry) under HOSTILE_PER_S of them a second, for *duration_s*."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    port_q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_healthy_agent, args=(port_q, stop), daemon=True)
    proc.start()
    ep = Endpoint("127.0.0.1", port_q.get(timeout=30), V2c("public"), timeout_s=1.0, retries=0)
    kinds = [long_subid_response(random.Random(1).randrange(1, 1 << 31))]

    async def run(spray: bool) -> tuple[int, int, int, float]:
        poller = SnmpPoller()
        try:
            await poller.get(ep, [SYS_OBJECT_ID])
            port = poller.local_address[1]
            sprayer = Sprayer(("127.0.0.1", port), kinds=kinds)
            lost = polls = 0
            cpu0 = time.process_time()
            if spray:
                sprayer.__enter__()
            end = time.monotonic() + duration_s
            while time.monotonic() < end:
                t0 = time.monotonic()
                polls += 1
                try:
                    await poller.get(ep, [SYS_OBJECT_ID])
                except SnmpError:
                    lost += 1
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            if spray:
                sprayer.__exit__()
            return lost, polls, sprayer.sent, time.process_time() - cpu0
        finally:
            poller.close()

    try:
        _, _, _, clean_cpu = asyncio.run(run(False))
        lost, polls, sent, cpu = asyncio.run(run(True))
    finally:
        stop.set()
        proc.join(5)
    per = (cpu - clean_cpu) / max(1, sent)
    print(f"{sent} hostile {len(kinds[0])}-byte datagrams in {duration_s:.0f} s: {cpu:.2f} s CPU "
          f"(clean run {clean_cpu:.2f} s) = {per:.4f} s CPU per datagram; healthy polls lost {lost} of {polls}")


if __name__ == "__main__":
    measure(float(sys.argv[1]) if len(sys.argv) > 1 else 15.0)
