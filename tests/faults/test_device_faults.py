"""Device faults across the whole demo facility, through the real Runner, the real SqliteStore
and the dashboard's alarm rules.

SNMP: the demo's 43 devices served by the twin's agents over UDP on loopback; ~10 % of them
broken at once (dead, slow just under and just over the timeout, flapping, wrong types,
sentinels, a swapped model, a counter reset). GPUs: NVML (the pynvml fake behind the real
NvmlBackend) with a GPU lost mid-run, NOT_SUPPORTED and UNKNOWN errors.

For every cycle: it ends within its bound; the healthy devices' data is complete (the same
series and fields as in a fault-free cycle, and in the store); every failure is visible in the
``collector`` measurement and raises a dashboard alarm.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from collectors.runner import Runner
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.engine import SnmpPoller
from dashboards import alarms
from dcim.config import load_config
from dcim.inventory import build_inventory
from dcim.store.sqlite import SqliteStore
from dcim.store.writer import StoreWriter
from tests.faults.conftest import REPO

service = pytest.importorskip("simulator.service")
from tests.simulator.snmp_helpers import TEST_SECRETS, relocated  # noqa: E402

TIMEOUT_S = 2.0  # the product default ([collectors] timeout_s); retries 0 here
INTERVAL_S = 10.0  # the demo's SNMP interval
SLACK_S = 1.5  # scheduling slack on a shared, loaded 2-core machine

DEAD = ["pdu-A02-b", "pdu-B03-a", "pdu-C04-b", "pdu-D01-a"]  # 4 of 43 ~ 10 %
SLOW_UNDER = "pdu-A03-a"   # answers at 0.3 x timeout: must still be read
SLOW_OVER = "pdu-C02-a"    # answers at 1.6 x timeout: a timeout, bounded
FLAPPING = "pdu-B02-a"     # dead on odd cycles
GARBAGE = "pdu-D03-b"      # measurements come back as OCTET STRINGs: no readings, a failure
SENTINEL = "ups-2"         # -1 "not supported" everywhere
SWAPPED = "pdu-A01-a"      # an APC unit replaced by a Raritan one
RESET = "pdu-B04-b"        # energy counter reset to zero
FAULTY = set(DEAD) | {SLOW_UNDER, SLOW_OVER, FLAPPING, GARBAGE, SENTINEL, SWAPPED, RESET}


@pytest.fixture(scope="module")
def twin():
    mp = pytest.MonkeyPatch()
    for k, v in TEST_SECRETS.items():
        mp.setenv(k, v)
    cfg = relocated(load_config(REPO / "deploy" / "demo.toml"), prefix="127.79")
    cfg = cfg.model_copy(update={"collectors": cfg.collectors.model_copy(
        update={"timeout_s": TIMEOUT_S, "retries": 0, "snmp_interval_s": INTERVAL_S})})
    svc = service.TwinService(cfg, speed=0, seed=11)
    svc.start_background()
    svc.call(lambda: svc.advance(600))
    try:
        yield svc, cfg
    finally:
        svc.stop_background()
        mp.undo()


def shape(result) -> set:
    """What a target produced: (measurement, identity tags, field names) per point."""
    return {(p.measurement, tuple(sorted(p.tags.items())), tuple(sorted(p.fields))) for p in result.points}


def health_rows(store) -> dict[str, dict]:
    return {p.tags["target"]: {"collector": p.tags["collector"], "target": p.tags["target"], "t": p.time_ns,
                               **p.fields} for p in store.latest("collector")}


def test_ten_percent_of_snmp_agents_broken(twin, tmp_path):
    svc, cfg = twin
    store = SqliteStore(tmp_path / "dcim.sqlite")
    writer = StoreWriter(store, tmp_path / "spool", flush_interval_s=0.1)
    inv = build_inventory(cfg)
    names = [name for _, name, _ in inv.snmp_devices()]
    assert len(names) >= 40 and FAULTY <= set(names)

    async def go():
        col = SnmpCollector.from_inventory(inv, poller=SnmpPoller())
        runner = Runner([col], writer, jitter_pct=0)
        try:
            await col.poll(60)  # discovery (sysObjectID, Raritan digits): not what is measured here
            t0 = time.monotonic()
            baseline = {r.target: r for r in await runner.run_cycle("snmp")}
            base_took = time.monotonic() - t0
            truth_before = svc.call(lambda: svc.snapshot).pdus[RESET].energy_kwh
            for name in DEAD:
                svc.agents.set_fault(name, dead=True)
            svc.agents.set_fault(SLOW_UNDER, delay_s=0.3 * TIMEOUT_S)
            svc.agents.set_fault(SLOW_OVER, delay_s=1.6 * TIMEOUT_S)
            svc.agents.set_fault(GARBAGE, garbage=True)
            svc.agents.set_fault(SENTINEL, sentinel=True)
            svc.agents.set_fault(SWAPPED, profile="raritan_pdu2")
            svc.call(lambda: (svc.twin.reset_energy_counter(RESET), svc.advance(10)))
            cycles = []
            for k in range(3):
                svc.agents.set_fault(FLAPPING, dead=(k % 2 == 0))
                t0 = time.monotonic()
                t0_ns = time.time_ns()
                results = {r.target: r for r in await runner.run_cycle("snmp")}
                writer.flush()
                took = time.monotonic() - t0
                slowest = sorted(results.values(), key=lambda r: -r.duration_s)[:3]
                print(f"cycle {k}: {took:.2f} s (fault-free {base_took:.2f} s); slowest:",
                      [(r.target, round(r.duration_s, 2), r.error) for r in slowest])
                cycles.append((took, t0_ns, results, health_rows(store)))
            return baseline, base_took, truth_before, cycles, col
        finally:
            svc.agents.clear_faults()
            await col.close()

    try:
        baseline, base_took, truth_before, cycles, col = asyncio.run(go())
    finally:
        writer.close()
    assert all(r.ok for r in baseline.values()), {n: r.error for n, r in baseline.items() if not r.ok}

    for k, (took, t0_ns, results, health) in enumerate(cycles):
        # 1. bounded: the dead and slow devices cost one timeout, not one each
        assert took < INTERVAL_S and took < 1.3 * base_took + TIMEOUT_S + SLACK_S, (k, took, base_took)
        # 2. the healthy devices' data is complete, and stored
        silent = set(DEAD) | {SLOW_OVER} | ({FLAPPING} if k % 2 == 0 else set())
        # a device whose every reading is garbage has nothing to give: a failure, said so
        failing = silent | {GARBAGE}
        for name in names:
            r = results[name]
            if name in silent:
                assert not r.ok and "timeout" in (r.error or ""), (k, name, r.error)
                assert r.points == []
                continue
            if name == GARBAGE:
                assert not r.ok and "no readings" in r.error and r.points == [], (k, r)
                continue
            assert r.ok, (k, name, r.error)
            if name not in FAULTY - {SLOW_UNDER, FLAPPING}:
                assert shape(r) == shape(baseline[name]), (k, name)
        for name in set(names) - failing:
            measurement = results[name].points[0].measurement
            tag = {"pdu": "pdu", "ups": "ups", "cooling": "unit", "meter": "meter"}[measurement]
            assert store.latest(measurement, where={tag: name}, since_ns=t0_ns), (k, name)
        # 3. every failure is in the collector measurement, and on the dashboard's alarm list
        for name in failing:
            assert health[name]["ok"] is False and health[name]["t"] >= t0_ns, (k, name, health[name])
            assert health[name]["error"] == results[name].error
        for name in set(names) - failing:
            assert health[name]["ok"] is True and health[name]["t"] >= t0_ns, (k, name)
        raised = {a.subject for a in alarms.check_collectors(list(health.values()))}
        assert {f"snmp:{n}" for n in failing} <= raised, (k, raised)
        assert not {f"snmp:{n}" for n in set(names) - failing} & raised

    # wrong types and sentinels: absent, never a string or -1 (checked on the last cycle)
    results = cycles[-1][2]
    stats = {d.name: d.stats for d in col.devices}
    assert stats[GARBAGE].garbage > 0 and stats[SENTINEL].sentinel > 0
    for p in results[SENTINEL].points:
        assert all(v != -1 for v in p.fields.values())
    # model change: re-detected and decoded with the new model
    dev = next(d for d in col.devices if d.name == SWAPPED)
    assert dev.plan.profile.name == "raritan_pdu2" and dev.redetections >= 1
    # counter reset: stored raw (lower than before), never "fixed" at ingest
    after = [p.fields["energy_kwh"] for p in results[RESET].points if p.measurement == "pdu"]
    assert after and after[0] < truth_before
    store.close()


# --- GPUs ------------------------------------------------------------------------------------


def test_gpu_lost_mid_run_and_nvml_errors(tmp_path):
    import pynvml

    from collectors.gpu.gpu_collector import GpuCollector
    from collectors.gpu.nvml_backend import NvmlBackend
    from tests.fakes.fake_pynvml import FakeDevice, FakeNvml

    devices = [FakeDevice() for _ in range(8)]
    nvml = FakeNvml(devices)
    col = GpuCollector(NvmlBackend(nvml), host_tags={"site": "s", "host": "node-1"}, interval_s=2.0,
                       backoff_initial_s=60)
    store = SqliteStore(tmp_path / "dcim.sqlite")
    writer = StoreWriter(store, tmp_path / "spool", flush_interval_s=0.1)
    runner = Runner([col], writer, jitter_pct=0)

    async def go():
        out = []
        for k in range(4):
            if k == 1:
                devices[3].lost = True                                        # falls off the bus
                devices[5].unsupported.add("nvmlDeviceGetTemperature")        # NOT_SUPPORTED
                devices[6].errors["nvmlDeviceGetUtilizationRates"] = pynvml.NVML_ERROR_UNKNOWN  # once
            t0, t0_ns = time.monotonic(), time.time_ns()
            results = {r.target: r for r in await runner.run_cycle("nvml")}
            writer.flush()
            out.append((time.monotonic() - t0, results, health_rows(store), t0_ns))
        return out

    try:
        cycles = asyncio.run(go())
    finally:
        writer.close()
        asyncio.run(col.close())
    uuids = [d.uuid for d in devices]
    base = cycles[0][1]
    assert all(r.ok for r in base.values())
    full = set(base[uuids[0]].points[0].fields)
    for k, (took, results, health, _) in enumerate(cycles):
        assert took < 2.0 + SLACK_S, (k, took)
        for i, u in enumerate(uuids):
            r = results[u]
            if k >= 1 and i == 3:
                assert not r.ok and health[u]["ok"] is False
                continue
            assert r.ok, (k, i, r.error)
            fields = set(next(p for p in r.points if p.measurement == "gpu").fields)
            if k >= 1 and i == 5:
                assert fields == full - {"temp_c"}  # dropped, never 0
            elif k == 1 and i == 6:
                assert "util_pct" not in fields and "utilization" in r.error
            else:
                assert fields == full, (k, i, full - fields)
    # the loss is an alarm (critical), and the stored GPU series of the others keep coming
    health = cycles[-1][2]
    lost = [a for a in alarms.check_collectors(list(health.values())) if a.kind == "gpu_lost"]
    assert [a.subject for a in lost] == [f"nvml:{uuids[3]}"]
    latest = {p.tags["uuid"]: p for p in store.latest("gpu")}
    assert set(latest) == set(uuids)
    last_cycle_ns, lost_at_ns = cycles[-1][3], cycles[1][3]
    assert all(latest[u].time_ns >= last_cycle_ns for i, u in enumerate(uuids) if i != 3)
    assert latest[uuids[3]].time_ns < lost_at_ns  # nothing made up for the lost GPU
    store.close()
