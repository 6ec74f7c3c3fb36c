"""dcim agent: the GPU-node agent — local NVML telemetry, and leased power caps from the optimizer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from dcim.cli.options import add_config_option, config_from

NAME = "agent"
HELP = "run on each GPU server: NVML telemetry into the store, power caps from the optimizer's desired state"
DESCRIPTION = (
    "The GPU-node agent. It samples this server's GPUs over NVML every [collectors] gpu_interval_s into the "
    "store (through the spooling writer), and every [agent] poll_interval_s fetches this host's desired state "
    "from the optimizer (GET [agent] optimizer_url/v1/desired-state?host=H, bearer token from [agent] token). "
    "Each cap is a lease: while it holds the GPU gets the leased limit (clamped to the GPU's own constraints), "
    "when it lapses — the optimizer stopped, crashed or cannot be reached — the GPU returns to its default "
    "limit. On exit the agent returns every GPU to its default. It is the only dcim part that needs the "
    "privilege to set power limits (root or CAP_SYS_ADMIN).")

log = logging.getLogger("dcim.agent")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--host", help="this server's host name in the inventory (default: [agent] host, else hostname)")
    parser.add_argument("--simulated-gpus", type=int, metavar="N", default=0,
                        help="drive N simulated H100s instead of NVML (demo and tests; never touches a real GPU)")
    parser.add_argument("--no-collect", action="store_true", help="only reconcile caps, write no telemetry")


def _backend(args, cfg, host: str):
    if args.simulated_gpus:
        return _simulated_gpus(host, args.simulated_gpus, cfg.simulator.seed)
    from collectors.gpu.nvml_backend import NvmlBackend

    return NvmlBackend()


def _simulated_gpus(host: str, count: int, seed: int):
    """One simulated server of *count* H100s (a one-rack twin), for demos and tests."""
    from dcim.config import parse_config
    from simulator.facility import FacilityTwin

    one_server = {"site": {"name": "agent-sim"}, "rooms": [{"name": "room", "rows": [{"name": "row", "racks": [
        {"name": "rack", "servers": [{"host": host, "gpus": count}]}]}]}]}
    twin = FacilityTwin(parse_config(one_server, "simulated GPUs"), seed=seed, arrivals=False)
    return twin.gpu_backend(host)


def run(args: argparse.Namespace) -> int:
    from collectors.gpu.gpu_collector import GpuCollector
    from collectors.runner import Runner
    from dcim.config import read_secret
    from dcim.gpu_backend import GpuError
    from dcim.inventory import build_inventory
    from dcim.store import open_store
    from dcim.store.writer import writer_for
    from optimizer.agent import NodeAgent, http_fetcher

    cfg = config_from(args)
    host = args.host or cfg.agent.host or socket.gethostname()
    token = read_secret(cfg.agent.token, "agent.token")
    if not token:
        print("error: agent.token: the agent needs the optimizer's API token ({ env = \"VAR\" } or { file = \"…\" })",
              file=sys.stderr)
        return 2
    inventory = build_inventory(cfg)
    slots = [g for g in inventory.gpus if g.host == host]
    if not slots:
        log.warning("host %r is not in the inventory: GPUs are tagged with the host name only", host)
    try:
        backend = _backend(args, cfg, host)
    except GpuError as exc:
        print(f"error: no GPUs to manage: {exc}", file=sys.stderr)
        return 1

    agent = NodeAgent(backend, http_fetcher(cfg.agent.optimizer_url, host, token))
    store = writer = None
    collectors = []
    if not args.no_collect:
        store = open_store(cfg)
        writer = writer_for(cfg, store)
        collectors.append(GpuCollector(backend, slots or None, interval_s=cfg.collectors.gpu_interval_s,
                                       host_tags=None if slots else {"site": cfg.site.name, "host": host}))
    runner = Runner(collectors, writer, jitter_pct=cfg.collectors.jitter_pct)
    log.info("agent for %s: %d GPUs, desired state from %s every %g s", host, len(backend.devices()),
             cfg.agent.optimizer_url, cfg.agent.poll_interval_s)
    try:
        asyncio.run(_main(runner, agent, cfg.agent.poll_interval_s, bool(collectors)))
    finally:
        _revert_all(backend)
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
        backend.close()
    return 0


async def _main(runner, agent, poll_s: float, collect: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(_reconcile(agent, poll_s, stop))]
    if collect:
        tasks.append(asyncio.create_task(runner.run(stop)))
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _reconcile(agent, poll_s: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            limits = await loop.run_in_executor(None, agent.tick)
            log.debug("limits in force: %s", limits)
        except Exception:  # a broken tick must not stop the next one: the lease rule still has to run
            log.exception("reconcile failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
        except asyncio.TimeoutError:
            pass


def _revert_all(backend) -> None:
    """On exit every GPU goes back to its default limit: no cap outlives the agent."""
    from dcim.gpu_backend import GpuError

    for dev in backend.devices():
        try:
            default = backend.power_constraints(dev.index).default_w
            if abs(backend.power_limit_w(dev.index) - default) > 0.5:
                backend.set_power_limit_w(dev.index, default)
                log.info("GPU %d back to its default %.0f W", dev.index, default)
        except GpuError as exc:
            log.warning("GPU %d: could not restore the default limit: %s", dev.index, exc)
