"""dcim collect: the collector daemon (SNMP devices, local GPUs), or one pass with --once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from dcim.cli.options import add_config_option, config_from
from dcim.cli.workload import CENTRAL_SOURCES, central_workload_collector, progress_collector

NAME = "collect"
HELP = "poll the SNMP devices (and local GPUs) and write to the store"
DESCRIPTION = (
    "Run the collectors: every SNMP device of the config (PDUs, cooling, UPSes, meters) at "
    "[collectors] snmp_interval_s, and this host's GPUs over NVML when NVML is available. Points "
    "go to the configured store through the spooling writer; collector health is written as the "
    "'collector' measurement and served as Prometheus text on http://METRICS_HOST:METRICS_PORT/metrics. "
    "--once polls everything once, writes, prints one line per device (ok, or the error and why) and "
    "exits 0 when every device answered, 1 otherwise. --shard i/n polls only the devices whose "
    "sha1(name) mod n == i, to spread a large site over n processes or hosts. SNMP secrets come "
    "from the environment variables or files the config names; they are never logged.")

log = logging.getLogger("dcim.collect")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--once", action="store_true", help="poll everything once, print a summary, exit")
    parser.add_argument("--shard", metavar="I/N", help="poll only shard I of N (stable hash of the device name)")
    parser.add_argument("--no-gpu", action="store_true", help="do not start the local NVML GPU collector")
    parser.add_argument("--no-snmp", action="store_true", help="do not poll SNMP devices")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="Prometheus /metrics port (default [collectors] metrics_port; 0 = any free port)")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")


def _gpu_collector(inventory, settings):
    """The local NVML collector when the NVML engineer's package and a driver are present."""
    try:
        from collectors.gpu.gpu_collector import GpuCollector
        from collectors.gpu.nvml_backend import NvmlBackend
    except ImportError as exc:
        log.info("GPU collector not available (%s)", exc)
        return None
    try:
        backend = NvmlBackend()
    except Exception as exc:  # no driver, no GPU: a PDU-only collector host is normal
        log.info("NVML not available on this host (%s); GPU collection off", exc)
        return None
    host = socket.gethostname()
    slots = [g for g in inventory.gpus if g.host == host]
    try:
        return GpuCollector(backend, slots or None, interval_s=settings.gpu_interval_s)
    except Exception as exc:
        log.warning("GPU collector could not start: %s", exc)
        return None


def _writer(cfg):
    from dcim.store import open_store
    from dcim.store.writer import writer_for

    store = open_store(cfg)
    try:
        writer = writer_for(cfg, store)
    except BaseException:
        store.close()
        raise
    return store, writer


def _summary(results: dict, out=None) -> bool:
    out = out or sys.stdout  # looked up at call time: a default bound at import can be a closed stream
    all_ok = True
    for collector, target_results in results.items():
        for r in sorted(target_results, key=lambda r: r.target):
            all_ok &= r.ok
            status = "ok" if r.ok else "ERROR"
            detail = f"{len(r.points)} points" if r.ok else (r.error or "failed")
            counts = ", ".join(f"{k} {v}" for k, v in sorted(r.counters.items()) if v)
            detail += f" ({counts})" if counts else ""  # e.g. jobs 12, jobs_unplaced 2
            print(f"{collector:6} {r.target:24} {status:5} {r.duration_s * 1000:7.0f} ms  {detail}", file=out)
    return all_ok


def run(args: argparse.Namespace) -> int:
    from collectors.base import Collector
    from collectors.runner import Runner, parse_shard
    from collectors.snmp.collector import SnmpCollector
    from dcim.inventory import build_inventory

    cfg = config_from(args)
    inventory = build_inventory(cfg)
    settings = cfg.collectors
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    collectors: list[Collector] = []
    if not args.no_snmp and inventory.snmp_devices():
        collectors.append(SnmpCollector.from_inventory(inventory, settings, shard=shard))
    if not args.no_gpu:
        gpu = _gpu_collector(inventory, settings)
        if gpu is not None:
            collectors.append(gpu)
    if cfg.dcgm_exporter.telemetry:  # GPU telemetry scraped from the nodes' dcgm-exporters
        from collectors.gpu.dcgm_exporter import DcgmExporterCollector

        collectors.append(DcgmExporterCollector.from_config(cfg, inventory, shard=shard))
    central = shard is None or shard[0] == 0  # one process reads the scheduler and rolls up
    progress = progress_collector(cfg) if central else None  # inference servers' metrics as job progress
    if progress is not None:
        collectors.append(progress)
    if not collectors and not (central and cfg.workload.source in CENTRAL_SOURCES):
        print("nothing to collect: no SNMP devices in the config, no local GPUs and no workload source",
              file=sys.stderr)
        return 1

    from dcim.store.spool import SpoolLocked

    try:
        store, writer = _writer(cfg)
    except SpoolLocked as exc:  # a second collector on the same spool: say so, no traceback
        print(f"error: {exc}; give each collector process its own [store.spool] path", file=sys.stderr)
        return 2
    workload = central_workload_collector(cfg, store) if central else None
    if workload is not None:
        collectors.append(workload)
    runner = Runner(collectors, writer, jitter_pct=settings.jitter_pct)
    maintainer = None
    jobs_kept = cfg.workload.source != "none"
    if (cfg.store.backend == "influxdb" or jobs_kept) and not args.once and central:
        from dcim.report.job_days import upkeep
        from dcim.store.maintainer import Maintainer

        # InfluxDB's daily rollups (SQLite keeps its own), then the report's job days once closed
        after = upkeep(store, cfg.site.name, cfg.site.timezone, cfg.workload.interval_s) if jobs_kept else None
        maintainer = Maintainer(store, after=after).start()
    try:
        if args.once:
            results = asyncio.run(_once(runner))
            writer.flush()
            ok = _summary(results)
            return 0 if ok else 1
        if not args.no_metrics:
            port = settings.metrics_port if args.metrics_port is None else args.metrics_port
            bound = runner.serve_metrics(settings.metrics_host, port)
            log.info("metrics on http://%s:%d/metrics", settings.metrics_host, bound)
        log.info("collecting: %s", ", ".join(f"{c.name} ({len(c.targets())} targets every {c.interval_s:g} s)"
                                             for c in collectors))
        asyncio.run(_forever(runner))
        return 0
    finally:
        runner.stop_metrics()
        if maintainer is not None:
            maintainer.stop()
        writer.close()
        store.close()


async def _once(runner):
    try:
        return await runner.run_once()
    finally:
        for state in runner.states.values():
            await state.collector.close()


async def _forever(runner):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await runner.run(stop)
