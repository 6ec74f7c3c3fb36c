"""dcim agent: the GPU-node agent — local NVML telemetry, and leased power caps from the optimizer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import threading

from dcim.cli.options import add_config_option, config_from

NAME = "agent"
HELP = "run on each GPU server: NVML telemetry into the store, power caps from the optimizer's desired state"
DESCRIPTION = (
    "The GPU-node agent. It samples this server's GPUs over NVML every [collectors] gpu_interval_s into the "
    "store (through the spooling writer), and every [agent] poll_interval_s fetches this host's desired state "
    "from the optimizer (GET [agent] optimizer_url/v1/desired-state?host=H, bearer token from [agent] token). "
    "Each cap is a lease: while it holds the GPU gets the leased limit (clamped to the GPU's own constraints), "
    "when it lapses — the optimizer stopped, crashed or cannot be reached — the GPU returns to its default "
    "limit, and no lease outlasts [optimizer] lease_s from when the agent received it. Every cap is written to "
    "[agent] cap_record_path before it is set. On exit (SIGTERM, SIGINT, SIGHUP, an error) the agent returns "
    "every GPU to its default before it stops anything else; after a crash, its restart (or `dcim agent "
    "--revert`, the unit's ExecStopPost) reverts the caps the record names. It is the only dcim part that "
    "needs the privilege to set power limits (root or CAP_SYS_ADMIN).")

log = logging.getLogger("dcim.agent")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--host", help="this server's host name in the inventory (default: [agent] host, else hostname)")
    parser.add_argument("--simulated-gpus", type=int, metavar="N", default=0,
                        help="drive N simulated H100s instead of NVML (demo and tests; never touches a real GPU)")
    parser.add_argument("--no-collect", action="store_true", help="only reconcile caps, write no telemetry")
    parser.add_argument("--revert", action="store_true",
                        help="only return the GPUs the cap record names to their default limits, then exit "
                             "(systemd's ExecStopPost, after any exit of the agent, a crash included)")


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


class _Stopped(BaseException):
    """A stop signal before (or after) the event loop handles them: unwinds to the revert."""


def _raise_stopped(signum, _frame) -> None:
    raise _Stopped(signum)


def _on_stop_signals(handler) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    from dcim.config import check_name, read_secret
    from dcim.gpu_backend import GpuError
    from optimizer.cap_record import CapRecord, CapRecordError, revert_all, revert_leftovers

    # From the first line on, a stop signal unwinds through the finally below (which reverts)
    # instead of killing the process: systemd may stop the agent while it is still starting.
    _on_stop_signals(_raise_stopped)
    backend = None
    record = None
    try:
        cfg = config_from(args)
        # A Name like the inventory's hosts: it becomes the store's host tag and a report cell
        host = check_name(args.host or cfg.agent.host or socket.gethostname(), "--host / [agent] host")
        token = None if args.revert else read_secret(cfg.agent.token, "agent.token")
        if not args.revert and not token:
            print("error: agent.token: the agent needs the optimizer's API token ({ env = \"VAR\" } or "
                  "{ file = \"…\" })", file=sys.stderr)
            return 2
        record = CapRecord(cfg.agent.cap_record_path)
        try:
            record.check_writable()
        except CapRecordError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            backend = _backend(args, cfg, host)
        except GpuError as exc:
            print(f"error: no GPUs to manage: {exc}", file=sys.stderr)
            return 1
        # Before anything else, and before the first fetch (which may hang up to its deadline):
        # caps a crashed predecessor left on the GPUs go back to default.
        failed = revert_leftovers(backend, record)
        if args.revert or token is None:  # token is None only with --revert (checked above)
            return 1 if failed else 0
        return _serve(args, cfg, host, token, backend, record)
    except _Stopped:
        log.info("stopped by a signal")
        return 0
    finally:
        _on_stop_signals(signal.SIG_IGN)  # a second SIGTERM must not cut the revert short
        if backend is not None:
            if not args.revert:
                revert_all(backend, record)  # idempotent: a stop at any point leaves no cap
            backend.close()


def _serve(args, cfg, host: str, token: str, backend, record) -> int:
    from collectors.base import Collector
    from collectors.gpu.gpu_collector import GpuCollector
    from collectors.runner import Runner
    from dcim.cli.workload import node_workload_collector
    from dcim.inventory import build_inventory
    from dcim.store import open_store
    from dcim.store.writer import writer_for
    from optimizer.agent import NodeAgent, http_fetcher

    slots = [g for g in build_inventory(cfg).gpus if g.host == host]
    if not slots:
        log.warning("host %r is not in the inventory: GPUs are tagged with the host name only", host)
    agent = NodeAgent(backend, http_fetcher(cfg.agent.optimizer_url, host, token,
                                            timeout_s=min(10.0, cfg.agent.poll_interval_s)),
                      host=host, lease_s=cfg.optimizer.lease_s, floor_fraction=cfg.optimizer.cap_fraction_floor,
                      record=record)
    store = writer = None
    collectors: list[Collector] = []
    try:
        if not args.no_collect:
            store = open_store(cfg)
            writer = writer_for(cfg, store)
            collectors.append(GpuCollector(backend, slots or None, interval_s=cfg.collectors.gpu_interval_s,
                                           host_tags=None if slots else {"site": cfg.site.name, "host": host},
                                           owns_backend=False))
            workload = node_workload_collector(cfg, host, backend)  # Kubernetes: this node's pods
            if workload is not None:
                collectors.append(workload)
        runner = Runner(collectors, writer, jitter_pct=cfg.collectors.jitter_pct)
        log.info("agent for %s: %d GPUs, desired state from %s every %g s", host, len(backend.devices()),
                 cfg.agent.optimizer_url, cfg.agent.poll_interval_s)
        asyncio.run(_main(runner, agent, cfg.agent.poll_interval_s, bool(collectors)))
    finally:
        _on_stop_signals(signal.SIG_IGN)
        failed = agent.shutdown()  # again, for exits that bypassed _main's (an exception)
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
    return 1 if failed else 0


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def _main(runner, agent, poll_s: float, collect: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(_reconcile(agent, poll_s, stop))]
    if collect:
        tasks.append(asyncio.create_task(runner.run(stop)))
    await stop.wait()
    # Caps first, while NVML is still open and before any task is cancelled: a tick in flight
    # (its fetch may take up to its deadline) finds the agent closed and sets nothing.
    agent.shutdown()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _reconcile(agent, poll_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            limits = await _in_daemon_thread(agent.tick)
            log.debug("limits in force: %s", limits)
        except Exception:  # a broken tick must not stop the next one: the lease rule still has to run
            log.exception("reconcile failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
        except TimeoutError:
            pass


def _in_daemon_thread(fn):
    """Run *fn* on a daemon thread: a fetch still waiting on its deadline must not hold the
    process's exit (an executor's worker would be joined at exit)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def work() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 — handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop closed while this ran (the agent is exiting)
            pass

    threading.Thread(target=work, name="dcim-agent-tick", daemon=True).start()
    return future
