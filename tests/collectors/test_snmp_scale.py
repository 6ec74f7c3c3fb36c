"""What keeps a 400-device site collected every cycle: discovery bounded and not restarted from
scratch at every cycle deadline, requests in flight bounded, v2c walks on the lean path."""

from __future__ import annotations

import asyncio
import time

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.device import Plan, SnmpDevice
from collectors.snmp.engine import Endpoint, SnmpPoller, V2c


def test_fast_walk_matches_the_pysnmp_walk(snmpsim_agent):
    async def run(fast):
        poller = SnmpPoller(fast_v2c=fast)
        ep = Endpoint(snmpsim_agent.host, snmpsim_agent.port, V2c("UPS/apc-8641"), max_repetitions=3)
        try:
            return [await poller.walk(ep, root) for root in ("1.3.6.1.2.1.1", "1.3.6.1.4.1.318", "1.3.6.1.9.9.9")], \
                poller.requests
        finally:
            poller.close()

    fast, fast_requests = asyncio.run(run(True))
    slow, slow_requests = asyncio.run(run(False))
    # same rows in the same order, same value types (some recorded values vary between reads)
    assert [[(o, type(v)) for o, v in rows] for rows in fast] == [[(o, type(v)) for o, v in rows] for rows in slow]
    assert [v for o, v in fast[0] if o != "1.3.6.1.2.1.1.3.0"] == [v for o, v in slow[0] if o != "1.3.6.1.2.1.1.3.0"]
    assert len(fast[0]) > 3 and len(fast[1]) > 10 and fast[2] == []
    assert fast_requests == slow_requests > 3   # same GETBULK sequence (3 rows each)


class _Poller:
    """Counts requests in flight; discovery of every device takes *walk_s*."""

    def __init__(self, walk_s):
        self.walk_s = walk_s
        self.discovering = 0
        self.peak = 0
        self.discoveries = 0

    async def get(self, ep, oids):
        return {o: 1 for o in oids}

    def close(self):
        pass


class _Device(SnmpDevice):
    async def discover(self, poller, sys_oid=None):
        poller.discoveries += 1
        poller.discovering += 1
        poller.peak = max(poller.peak, poller.discovering)
        try:
            await asyncio.sleep(poller.walk_s)
        finally:
            poller.discovering -= 1
        self.plan = Plan(_PROFILE, "1.3.6.1.4.1.9", [], time.monotonic())
        return self.plan

    def decode(self, plan, values, time_ns=None):
        return ["point"]


_PROFILE = type("P", (), {"max_oids": 0, "max_repetitions": 0, "readings": (), "post": ()})()


def test_discovery_is_bounded_and_survives_the_cycle_deadline():
    poller = _Poller(walk_s=0.25)
    devices = [_Device(f"d{i}", "pdu", Endpoint("127.0.0.1", 9, V2c("x"))) for i in range(12)]
    col = SnmpCollector(devices, poller, interval_s=1.0)
    col.max_discoveries = 4

    async def go():
        cycles = []
        for _ in range(3):
            results = await col.poll(0.4)   # 12 devices x 0.25 s, 4 at a time: 0.75 s > one deadline
            cycles.append(sum(r.ok for r in results))
        return cycles

    cycles = asyncio.run(go())
    assert poller.peak == 4                     # never more than max_discoveries at once
    assert poller.discoveries == 12             # each device discovered once: not restarted per cycle
    assert cycles[0] < 12 and cycles[-1] == 12  # late ones carried on in the background
    late = asyncio.run(_first_cycle_errors())
    assert late and all(e.startswith("deadline: discovery not finished") for e in late)


async def _first_cycle_errors():
    poller = _Poller(walk_s=0.3)
    col = SnmpCollector([_Device(f"d{i}", "pdu", Endpoint("127.0.0.1", 9, V2c("x"))) for i in range(3)], poller)
    col.max_discoveries = 1
    try:
        return [r.error for r in await col.poll(0.4) if not r.ok]
    finally:
        await col.close()


def test_requests_in_flight_are_bounded():
    poller = SnmpPoller(max_in_flight=3)
    state = {"now": 0, "peak": 0}

    class Fast:
        async def get(self, host, port, community, oids, timeout_s, retries):
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.02)
            state["now"] -= 1
            return 0, 0, [1] * len(oids)

        def close(self):
            pass

    poller._fast = Fast()

    async def go():
        eps = [Endpoint(f"127.0.0.{i + 1}", 161, V2c("c"), max_oids=2) for i in range(10)]
        return await asyncio.gather(*(poller.get(ep, ["1.3.6.1.1.0", "1.3.6.1.2.0", "1.3.6.1.3.0"]) for ep in eps))

    out = asyncio.run(go())
    assert all(len(o) == 3 for o in out)
    assert state["peak"] == 3 and poller.requests == 20
