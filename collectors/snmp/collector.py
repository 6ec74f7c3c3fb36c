"""SnmpCollector: every SNMP device of the inventory (or of one shard of it), polled together.

The poller (one pysnmp engine per process) is a constructor argument, so tests and the
benchmark pass the same engine the daemon uses. Each device runs in its own task bounded by
the cycle deadline: a dead device is reported ``ok=False`` after its own timeout and never
delays the others. After every cycle the ``facility`` point (PUE and friends) is derived from
the readings of that same cycle (collectors.facility), when they are all there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from collectors.base import Collector, TargetResult
from collectors.facility import derive_facility
from collectors.snmp.device import DetectError, SnmpDevice
from collectors.snmp.engine import V3, Endpoint, SnmpError, SnmpPoller, V2c
from dcim.config import CollectorSettings, ConfigError, SecretRef, SnmpV2c, SnmpV3, read_secret

log = logging.getLogger(__name__)

FACILITY_TARGET = "facility"


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """Stable device-to-shard assignment: sha1(name) mod n == i (same on every host, every run)."""
    if shard is None:
        return True
    i, n = shard
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % n == i


def _required_secret(ref: SecretRef, what: str) -> str:
    value = read_secret(ref, what)
    assert value is not None  # read_secret returns None only for a None reference
    return value


def auth_from_config(creds: SnmpV2c | SnmpV3, name: str) -> V2c | V3:
    """Resolve the credential secrets (env or file). Raises ConfigError naming the key, never the value."""
    if isinstance(creds, SnmpV2c):
        return V2c(_required_secret(creds.community, f"snmp.credentials.{name}.community"))
    return V3(user=creds.user, auth_key=_required_secret(creds.auth_key, f"snmp.credentials.{name}.auth_key"),
              priv_key=read_secret(creds.priv_key, f"snmp.credentials.{name}.priv_key"),
              auth_protocol=creds.auth_protocol, priv_protocol=creds.priv_protocol)


class SnmpCollector(Collector):
    name = "snmp"

    def __init__(self, devices: list[SnmpDevice], poller: SnmpPoller | None = None, *, interval_s: float = 10.0,
                 site: str | None = None, pue_category: int = 1, expected: dict[str, int] | None = None,
                 broken: dict[str, str] | None = None):
        self.devices = devices
        self.poller = poller or SnmpPoller()
        self.interval_s = interval_s
        self.site = site
        self.pue_category = pue_category
        self.expected = expected or {}
        # Devices that cannot be polled at all (a credential secret missing): reported every cycle.
        self.broken = dict(broken or {})

    @classmethod
    def from_inventory(cls, inventory, settings: CollectorSettings | None = None, poller: SnmpPoller | None = None,
                       shard: tuple[int, int] | None = None) -> SnmpCollector:
        settings = settings or inventory.config.collectors
        poller = poller or SnmpPoller(source_address=settings.snmp_source_address)
        creds = inventory.config.snmp.credentials
        auth_cache: dict[str, V2c | V3 | str] = {}
        devices, broken = [], {}
        expected = {"meter_facility_total": 0, "meter_cooling": 0, "ups": 0, "cooling": 0}
        for kind, name, dev in inventory.snmp_devices():
            if not in_shard(name, shard):
                continue
            target = dev.snmp
            if target.credentials not in auth_cache:
                try:
                    auth_cache[target.credentials] = auth_from_config(creds[target.credentials], target.credentials)
                except ConfigError as exc:  # a missing secret disables these devices, not the daemon
                    auth_cache[target.credentials] = "; ".join(why for _, why in exc.errors)
            auth = auth_cache[target.credentials]
            if isinstance(auth, str):
                broken[name] = f"credentials {target.credentials!r}: {auth}"
                continue
            endpoint = Endpoint(target.address, target.port, auth,
                                timeout_s=target.timeout_s or settings.timeout_s,
                                retries=settings.retries if target.retries is None else target.retries,
                                max_oids=target.max_oids_per_request or settings.max_oids_per_request)
            attrs = {"capacity_kw": dev.capacity_kw} if hasattr(dev, "capacity_kw") else {}
            device = SnmpDevice(name, kind, endpoint, inventory.device_tags(kind, dev), target.profile, attrs=attrs)
            device.interval_s = target.interval_s or settings.snmp_interval_s
            devices.append(device)
            if kind == "meter":
                expected[f"meter_{dev.role}"] = expected.get(f"meter_{dev.role}", 0) + 1
            elif kind in ("ups", "cooling"):
                expected[kind] += 1
        # The collector ticks at the fastest device's interval; slower devices skip ticks.
        interval = min([settings.snmp_interval_s] + [d.interval_s for d in devices if d.interval_s is not None])
        return cls(devices, poller, interval_s=interval, site=inventory.site,
                   pue_category=inventory.config.site.pue_category, expected=expected, broken=broken)

    # Discoveries (GETBULK walks of every table: tens to hundreds of requests per device) running
    # at once. Unbounded, 400 devices discovering together at start-up saturated the CPU, every
    # request timed out, each discovery was cut off at the cycle deadline and started again from
    # scratch the next cycle: ~10 % of a 412-device site ever answered. Bounded, and not cut off
    # by the deadline (it carries on in the background), every device is discovered within a few
    # cycles and then costs one batched GET per cycle.
    max_discoveries = 32

    def _discovery_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        held = getattr(self, "_slots", None)
        if held is None or held[0] is not loop:
            held = self._slots = (loop, asyncio.Semaphore(self.max_discoveries))
        return held[1]

    async def _discover(self, device: SnmpDevice) -> None:
        async with self._discovery_slots():
            await device.discover(self.poller)

    def _discovery(self, device: SnmpDevice) -> asyncio.Future:
        """The device's discovery task: the one under way, or a new one (bounded by max_discoveries)."""
        tasks = self.__dict__.setdefault("_discovering", {})
        task = tasks.get(device.name)
        if task is None or task.done():
            task = asyncio.ensure_future(self._discover(device))
            tasks[device.name] = task

            def done(t, name=device.name):
                if tasks.get(name) is t:
                    del tasks[name]
                if not t.cancelled():
                    t.exception()  # retrieved: the cycle that awaits it reports it
            task.add_done_callback(done)
        return task

    async def _poll_planned(self, device: SnmpDevice) -> list:
        if device.needs_discovery():
            task = self._discovery(device)
            if device.plan is None:
                # First discovery: wait for it, but a cycle deadline must not cancel it (shield):
                # it carries on, and a later cycle picks up its plan.
                await asyncio.shield(task)
            # else: rediscovery in the background, this cycle reads with the current plan
        return await device.poll(self.poller, rediscover=False)

    def targets(self) -> list[str]:
        return [d.name for d in self.devices] + sorted(self.broken)

    async def _poll_device(self, device: SnmpDevice, deadline_s: float) -> TargetResult:
        t0 = time.monotonic()
        try:
            task = asyncio.ensure_future(self._poll_planned(device))
            # a poll cut off at the deadline may still end in an SnmpError: retrieve it, so asyncio
            # does not log "Task exception was never retrieved" with a traceback for every late device
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            points = await asyncio.wait_for(task, timeout=deadline_s)
            result = TargetResult(device.name, points)
            stats = device.stats
            if not points:
                result.ok, result.error = False, "no readings (every value missing or a sentinel)"
            elif stats.sentinel or stats.missing or stats.garbage:
                log.debug("%s: %s", device.name, stats.as_dict())
        except TimeoutError:
            ep = device.endpoint
            if device.plan is None:
                busy = len(self.__dict__.get("_discovering", {}))
                error = (f"deadline: discovery not finished within the {deadline_s:.1f} s cycle; it carries on "
                         f"in the background ({busy} device(s) discovering, {self.max_discoveries} at a time)")
            else:
                error = (f"deadline: no complete answer within the {deadline_s:.1f} s cycle "
                         f"(timeout {ep.timeout_s:g} s x {ep.retries + 1} tries per request)")
            result = TargetResult(device.name, ok=False, error=error)
        except SnmpError as exc:
            result = TargetResult(device.name, ok=False, error=exc.reason)
        except (DetectError, KeyError) as exc:
            result = TargetResult(device.name, ok=False, error=str(exc).strip("'\""))
        except Exception as exc:  # a bug or a malformed agent must not stop the other devices
            log.exception("%s: unexpected error", device.name)
            result = TargetResult(device.name, ok=False, error=f"internal error: {type(exc).__name__}")
        result.duration_s = time.monotonic() - t0
        return result

    def _due(self, device: SnmpDevice, now: float) -> bool:
        interval = getattr(device, "interval_s", None)
        last = getattr(device, "last_poll", None)
        if interval is None or last is None or interval <= self.interval_s * 1.05:
            return True  # polled every tick
        # 10 % slack: a device on a 20 s interval polled by a 10 s tick runs every other tick.
        return now - last >= interval * 0.9

    async def poll(self, deadline_s: float) -> list[TargetResult]:
        now = time.monotonic()
        due = [d for d in self.devices if self._due(d, now)]
        for d in due:
            d.last_poll = now
        results = list(await asyncio.gather(*(self._poll_device(d, deadline_s) for d in due)))
        results += [TargetResult(name, ok=False, error=why) for name, why in sorted(self.broken.items())]
        if self.site:
            point = derive_facility([p for r in results for p in r.points], self.site,
                                    pue_category=self.pue_category, expected=self.expected)
            if point is not None:
                results.append(TargetResult(FACILITY_TARGET, [point]))
        if results and hasattr(self.poller, "stats"):  # a poller stand-in in tests may have none
            results[0].counters.update(self._dropped_replies())
        return results

    def _dropped_replies(self) -> dict[str, int]:
        """Replies the poller's socket dropped since the previous cycle, where any were: unsolicited
        ones (not from a polled address, or an unknown request id or community) are dropped before
        a varbind is decoded; garbled ones did not decode. Like the writer's ``dropped``, they ride
        on the cycle's first ``collector`` point."""
        stats = self.poller.stats()
        totals = {"replies_unsolicited": stats["replies_unsolicited"],
                  "replies_garbled": stats["replies_garbled"] + stats["replies_bad"]}
        seen = self.__dict__.get("_dropped_seen", {})
        self._dropped_seen = totals
        deltas = {name: total - seen.get(name, 0) for name, total in totals.items()}
        return {name: n for name, n in deltas.items() if n > 0}

    async def close(self) -> None:
        for task in list(self.__dict__.get("_discovering", {}).values()):
            task.cancel()
        self.poller.close()
