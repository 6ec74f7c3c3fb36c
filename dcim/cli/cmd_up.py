"""dcim up: the whole product in one process — twin (demo) or real devices, collectors,
optimizer and dashboard — until Ctrl-C, which stops every part and reverts every cap."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

from dcim.cli.options import add_config_option, config_from

NAME = "up"
HELP = "run everything: the demo facility (or your devices), collectors, optimizer and dashboard"
DESCRIPTION = (
    "With no config: the demo facility — a simulated 512-GPU hub (the twin: real SNMP agents on loopback "
    "addresses, simulated H100s, physics, weather and jobs) — with history backfilled into the embedded "
    "SQLite store first, the collectors polling the twin over SNMP, its GPUs through the GPU backend and its "
    "jobs from the twin's slurmrestd (the Slurm workload source, as on a real site), its jobs' progress "
    "posted to the optimizer's POST /v1/progress (token from [optimizer] token, else DCIM_OPTIMIZER_TOKEN, "
    "generated when unset), "
    "the optimizer in enforce mode on the simulated GPUs (its placement steering the twin's jobs), and the "
    "dashboard. With a config (--config or $DCIM_CONFIG): the collectors, the optimizer (publishing leased "
    "caps for the GPU-node agents, and taking job progress on [optimizer] progress_port) and the dashboard "
    "against the real devices and the configured store. "
    "Prints the dashboard URL and stays up; Ctrl-C (or SIGTERM) stops every part and returns every GPU it "
    "capped to its default limit.")

log = logging.getLogger("dcim.up")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--simulate", action="store_true",
                        help="run the twin for the config's devices even when a config is given")
    parser.add_argument("--speed", type=float, default=None,
                        help="twin time per real second (default [simulator] speed, 1 = real time)")
    parser.add_argument("--backfill-days", type=float, default=None, metavar="D",
                        help="history to backfill into an empty store: exactly D days (default: the quarter to "
                             "date, its last [simulator] backfill_days at 5-minute steps)")
    parser.add_argument("--host", default=None, help="dashboard address (default [dashboard] host)")
    parser.add_argument("--port", type=int, default=None, help="dashboard port (default [dashboard] port; 0 = any free)")
    parser.add_argument("--mode", choices=["off", "advise", "enforce"], default=None,
                        help="optimizer mode (default: enforce on the twin, [optimizer] mode otherwise)")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve the collectors' /metrics")


def run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    twin_mode = args.simulate or (args.config is None and not os.environ.get("DCIM_CONFIG"))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as cleanup:
        try:
            parts = _start(cfg, args, twin_mode, cleanup, stop)
        except KeyboardInterrupt:
            return 130
        except OSError as exc:  # a port taken: say which, no traceback (cleanup stops what started)
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if parts is None:
            return 130
        print(f"\ndcim is up: dashboard on {parts['url']}", flush=True)
        print(f"  store      {cfg.store.backend} ({cfg.store.path if cfg.store.backend == 'sqlite' else cfg.store.influxdb.url})")
        print(f"  collectors {parts['collectors']}")
        print(f"  optimizer  mode {parts['mode']}, every {cfg.optimizer.interval_s:g} s, API {parts['api']}")
        print(f"  progress   {parts['progress']}/v1/progress (jobs post their work done; "
              f"{'the twin' + chr(39) + 's jobs post there' if twin_mode else 'token from [optimizer] token'})")
        print(f"  alarms     {parts['alarms']}")
        if parts.get("metrics"):
            print(f"  metrics    {parts['metrics']}")
        print(f"  exporter   {parts['exporter']}")
        print("Ctrl-C stops everything and returns every capped GPU to its default limit.", flush=True)
        stop.wait()
        print("\nstopping…", file=sys.stderr, flush=True)
    print("stopped: every part shut down, caps reverted", file=sys.stderr, flush=True)
    return 0


def _start(cfg, args, twin_mode: bool, cleanup: ExitStack, stop: threading.Event) -> dict | None:
    from dcim.inventory import build_inventory
    from dcim.store import open_store

    inventory = build_inventory(cfg)
    twin = service = None
    if twin_mode:
        from simulator.service import TwinService, ensure_snmp_secrets

        names = ensure_snmp_secrets(cfg)
        if names:
            log.info("generated SNMP secrets for the twin in %s", ", ".join(names))
        deferred: list[object] = []  # the EarlyPart to write once everything serves
        twin = _twin_with_history(cfg, args, stop, deferred)
        if twin is None:
            return None
        speed = cfg.simulator.speed if args.speed is None else args.speed
        service = TwinService(cfg, twin=twin, speed=speed, inventory=inventory, tick_s=5.0,
                              faults=list(cfg.simulator.faults))  # [simulator] faults: the demo's daily failure
        service.start_background()
        cleanup.callback(service.stop_background)
        cfg = _serve_twin_slurm(cfg, service, cleanup)
        cfg = _twin_optimizer_token(cfg)

    # Each part gets its own store handle: SQLite connections are not shared across threads.
    writer_store = open_store(cfg)
    cleanup.callback(writer_store.close)
    if cfg.store.backend == "influxdb":  # InfluxDB's daily rollups (SQLite keeps its own)
        from dcim.store.maintainer import Maintainer

        cleanup.callback(Maintainer(writer_store).start().stop)

    # Optimizer (stopped before the collectors and the twin: it reverts caps through them).
    optimizer_store = open_store(cfg)
    cleanup.callback(optimizer_store.close)
    mode = args.mode or ("enforce" if twin_mode else cfg.optimizer.mode)
    daemon = _start_optimizer(cfg, inventory, optimizer_store, twin, mode)
    api, progress_url = _serve_optimizer_http(cfg, daemon, twin_mode, cleanup)
    if service is not None:
        _post_twin_progress(cfg, service, progress_url, cleanup)

    collectors_desc, metrics_url, runner_stop = _start_collectors(cfg, args, inventory, twin, writer_store,
                                                                  service._loop if service else None)
    cleanup.callback(runner_stop)

    daemon.start()
    from optimizer import report_job

    report_job.schedule(daemon.scheduler, cfg, lambda: open_store(cfg, readonly=True))
    cleanup.callback(lambda: log.info("optimizer stopped, %d cap(s) reverted", len(daemon.stop(revert=True))))

    alarms = "off ([alerts] enabled = false)"
    if cfg.alerts.enabled:  # the alarm engine, on a store handle of its own (stopped before it closes)
        from dcim.cli.cmd_alerts import start_engine

        alerts_store = open_store(cfg)
        cleanup.callback(alerts_store.close)
        engine = start_engine(cfg, alerts_store)
        cleanup.callback(engine.stop)
        alarms = f"{len(engine.rules)} rules every {cfg.alerts.interval_s:g} s"
    dash_store = open_store(cfg, readonly=True)
    cleanup.callback(dash_store.close)
    url, dash_stop = _start_dashboard(cfg, args, dash_store)
    cleanup.callback(dash_stop)
    exporter = _start_exporter(cfg, cleanup)
    if twin_mode and deferred:  # the quarter before the recent days, written now that everything serves
        _fill_quarter_in_background(deferred[0], args, cleanup)
    return {"url": url, "collectors": collectors_desc, "mode": mode, "api": api.url, "metrics": metrics_url,
            "progress": progress_url, "alarms": alarms, "exporter": exporter}


def _serve_twin_slurm(cfg, service, cleanup: ExitStack):
    """The twin's jobs reach dcim as a real site's do: the twin serves slurmrestd's jobs API on a
    free loopback port, and the returned config points [workload] (source "slurm", mode "rest")
    at it, so the workload collector polls it through the Slurm source."""
    from simulator.service import twin_slurm_config, twin_slurm_token

    token, ref, generated = twin_slurm_token(cfg)
    if generated:
        log.info("generated the twin's Slurm token in %s", ref.env)  # the name only, never the value
    url = service.serve_slurm(token)
    cleanup.callback(service.stop_slurm)
    return twin_slurm_config(cfg, url, ref, service.twin.slurm_names)


def _twin_optimizer_token(cfg):
    """The demo names no [optimizer] token, and without one the API refuses every job's progress:
    the twin's optimizer takes the config's, or one generated in DCIM_OPTIMIZER_TOKEN."""
    from simulator.service import twin_optimizer_token

    _, ref, generated = twin_optimizer_token(cfg)
    if generated:
        log.info("generated the optimizer's token in %s", ref.env)  # the name only, never the value
    return cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={"token": ref})})


def _post_twin_progress(cfg, service, progress_url: str, cleanup: ExitStack) -> None:
    """The twin's running jobs post their work done to the progress intake, as a real site's
    jobs do (simulator/progress_poster.py), every 10 s of twin time. A job's first report waits
    two workload polls, so that the intake knows the job from the Slurm source by then."""
    from dcim.config import read_secret
    from simulator.progress_poster import first_report_after_s

    token = read_secret(cfg.optimizer.token, "optimizer.token")
    service.post_progress(progress_url, token, every_s=10.0,
                          first_report_after_s=first_report_after_s(cfg.workload.interval_s))
    cleanup.callback(service.stop_progress)


def _start_exporter(cfg, cleanup: ExitStack) -> str:
    """[exporter]: the store's latest values as Prometheus /metrics, on a store handle of its own."""
    if not cfg.exporter.enabled:
        return "off ([exporter] enabled = false)"
    from dcim.cli.cmd_exporter import make_exporter
    from dcim.store import open_store

    try:
        server, stop = make_exporter(cfg.exporter, lambda: open_store(cfg, readonly=True))
    except OSError as exc:
        raise OSError(f"[exporter] cannot listen on {cfg.exporter.host}:{cfg.exporter.port}: "
                      f"{exc.strerror or exc} (set [exporter] port, or enabled = false)") from None
    server.start()
    cleanup.callback(stop)
    return f"{server.url}/metrics (the store's latest values for Prometheus)"


def _fill_quarter_in_background(part, args, cleanup: ExitStack) -> None:
    from simulator import quarter_fill

    proc = quarter_fill.start(part, args.config)
    log.info("writing the quarter's %.1f earlier days in the background (pid %d)", part.days, proc.pid)

    def stop_fill() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    cleanup.callback(stop_fill)


def _twin_with_history(cfg, args, stop: threading.Event, deferred: list):
    """The twin, positioned at now; an empty store first gets [simulator] backfill_days of history
    (the quarter to date by default: the days before those are appended to *deferred*, to be
    written once everything serves)."""
    from dcim.store import open_store
    from simulator.backfill import backfill_quarter
    from simulator.facility import FacilityTwin

    days = cfg.simulator.backfill_days if args.backfill_days is None else args.backfill_days
    with open_store(cfg) as store:
        has_history = bool(store.latest("facility", since_ns=time.time_ns() - int(days * 86400e9) - 1))
        if days <= 0 or has_history:
            if has_history:
                log.info("the store already has history: no backfill")
            return FacilityTwin(cfg, seed=cfg.simulator.seed)
        from tqdm import tqdm

        started = time.monotonic()
        # a bar on a terminal only (disable=None): a log file gets the one line below, not \r frames
        bar = tqdm(desc=f"backfilling {days:g} days of history", unit="step", file=sys.stderr, leave=False,
                   disable=None, mininterval=0.5)

        def progress(done: int, total: int) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            bar.total = total
            bar.update(done - bar.n)

        try:
            with bar:
                twin = backfill_quarter(cfg, store, days, progress=progress,  # the quarter to date, the last days finer
                                        whole_quarter=args.backfill_days is None, defer_early=deferred.append)
        except KeyboardInterrupt:
            return None
        print(f"backfilled {days:g} days in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        _train_pue_model(cfg, store)
        return twin


def _train_pue_model(cfg, store) -> None:
    """Train the PUE model on the backfilled history, so the optimizer prices actions at once."""
    from optimizer.features import build_frame
    from optimizer.pue_model import train

    now = time.time_ns()
    try:
        frame = build_frame(store, now - int(cfg.simulator.backfill_days * 86400e9), now, every_s=300.0,
                            tz=cfg.site.timezone, site=cfg.site.name)
        model = train(frame)
        model.save(cfg.optimizer.model_path)
        log.info("PUE model trained: %s", "; ".join(model.describe()[:3]))
    except Exception as exc:  # the optimizer runs conservatively without a model
        log.warning("could not train the PUE model: %s", exc)


def _start_optimizer(cfg, inventory, store, twin, mode: str):
    from optimizer.actuator import BackendActuator, DesiredStatePublisher
    from optimizer.daemon import OptimizerDaemon
    from optimizer.desired_state import DesiredState
    from optimizer.placement import slot_adapter
    from optimizer.pue_model import load_model

    opt = cfg.optimizer
    desired = DesiredState(None, mode=mode, lease_s=opt.lease_s)
    actuator: BackendActuator | DesiredStatePublisher
    if twin is not None:
        actuator = BackendActuator({s.host: twin.gpu_backend(s.host) for s in inventory.servers}, desired)
    else:
        actuator = DesiredStatePublisher(desired)
    daemon = OptimizerDaemon(cfg, store, actuator, inventory=inventory, model=load_model(opt.model_path), mode=mode)
    if twin is not None:
        from simulator.workload import first_fit

        # The twin's scheduler asks the optimizer where each new job should go; until the
        # optimizer's first cycle has a view of the fleet, first fit.
        hook = slot_adapter(daemon.placement_state)

        def place(free, job):
            return hook(free, job) if daemon.placement_state() is not None else first_fit(free, job)

        twin.workload.placement = place
    return daemon


def _serve_optimizer_http(cfg, daemon, twin_mode: bool, cleanup: ExitStack):
    """The optimizer API (waitress) and the progress intake (uvicorn), as `dcim optimize` serves
    them: one progress book and a store writer of their own (spool ``<path>-optimizer``). The
    demo takes any free ports (nothing else calls them); a site its configured ones. Returns the
    API and the intake's URL; everything is stopped through *cleanup*."""
    from dcim.cli.cmd_optimize import _progress_intake
    from dcim.config import read_secret
    from dcim.store import open_store
    from optimizer.api import OptimizerApi
    from optimizer.progress_server import ProgressServer

    opt = cfg.optimizer
    token = read_secret(opt.token, "optimizer.token")
    intake_store = open_store(cfg)  # its own handle: the book's workload reads and the writer's drains
    cleanup.callback(intake_store.close)
    book, writer, workload = _progress_intake(cfg, intake_store)
    cleanup.callback(writer.close)
    cleanup.callback(workload.close)
    port, progress_port = (0, 0) if twin_mode else (opt.port, opt.progress_port)
    api = OptimizerApi(daemon.actuator.desired, token=token, host=opt.host, port=port,
                       placement_state=daemon.placement_state, health=lambda: {"mode": daemon.mode},
                       progress=book, write_points=writer.write, demand_response=daemon).start()
    cleanup.callback(api.stop)
    try:
        progress = ProgressServer(book, writer.write, token=token, host=opt.host, port=progress_port,
                                  fds_elsewhere=api.connection_limit).start()
    except OSError as exc:
        raise OSError(f"progress intake on {opt.host}:{progress_port} ([optimizer] progress_port): {exc}") from None
    cleanup.callback(progress.stop)
    return api, progress.url


def _start_collectors(cfg, args, inventory, twin, store, twin_loop=None):
    from collectors.runner import Runner
    from collectors.snmp.collector import SnmpCollector
    from dcim.store.writer import writer_for

    settings = cfg.collectors
    writer = writer_for(cfg, store)
    collectors = []
    if inventory.snmp_devices():
        collectors.append(SnmpCollector.from_inventory(inventory, settings))
    if twin is not None:
        from collectors.gpu.gpu_collector import GpuCollector

        for server in inventory.servers:
            slots = [g for g in inventory.gpus if g.host == server.host]
            collectors.append(GpuCollector(twin.gpu_backend(server.host), slots, interval_s=settings.gpu_interval_s,
                                           name=f"gpu-{server.host}"))
    workload, workload_store = _workload_collector(cfg)
    if workload is not None:
        collectors.append(workload)
    from dcim.cli.workload import progress_collector

    scrape = progress_collector(cfg)  # [[progress_scrape]]: inference servers' /metrics as job progress
    if scrape is not None:
        collectors.append(scrape)
    runner = Runner(collectors, writer, jitter_pct=settings.jitter_pct)
    metrics_url = None
    if not args.no_metrics:
        try:
            port = runner.serve_metrics(settings.metrics_host, settings.metrics_port)
            metrics_url = f"http://{settings.metrics_host}:{port}/metrics"
        except OSError as exc:
            log.warning("cannot serve /metrics on port %d: %s", settings.metrics_port, exc)

    holder: list[asyncio.Event] = []

    async def main() -> None:
        holder.append(asyncio.Event())
        try:
            await runner.run(holder[0])
        finally:
            for state in runner.states.values():
                await state.collector.close()

    # pysnmp keeps per-process dispatcher state: with the twin's agents in this process the
    # poller must share their event loop, or its replies are read on the wrong loop.
    if twin_loop is not None:
        loop = twin_loop
        future = asyncio.run_coroutine_threadsafe(main(), loop)
        wait_done = lambda: future.result(15)  # noqa: E731
    else:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="collectors", daemon=True)
        thread.start()
        wait_done = lambda: thread.join(15)  # noqa: E731

    def stop() -> None:
        if holder:
            loop.call_soon_threadsafe(holder[0].set)
        try:
            wait_done()
        except Exception as exc:  # a stuck poll must not keep the rest from stopping
            log.warning("collectors did not stop cleanly: %s", exc)
        runner.stop_metrics()
        writer.close()
        if workload_store is not None:
            workload_store.close()

    n_gpu = sum(1 for c in collectors if c.name.startswith("gpu-"))
    desc = ", ".join(f"{c.name} ({_targets(c)} every {c.interval_s:g} s)" for c in collectors
                     if not c.name.startswith("gpu-"))
    if n_gpu:
        desc += f"{', ' if desc else ''}GPUs on {n_gpu} hosts every {settings.gpu_interval_s:g} s"
    return desc, metrics_url, stop


def _workload_collector(cfg):
    """[workload]'s central collector (Slurm, dcgm-exporter), as `dcim collect` runs it, or None.
    It reads the GPUs' index → UUID from the store through a handle of its own (SQLite
    connections are not shared across threads), returned beside it for closing."""
    from dcim.cli.workload import CENTRAL_SOURCES, central_workload_collector
    from dcim.store import open_store

    if cfg.workload.source not in CENTRAL_SOURCES:
        return None, None
    reader = open_store(cfg, readonly=True)
    return central_workload_collector(cfg, reader), reader


def _targets(collector) -> str:
    targets = collector.targets()
    if collector.name.startswith("workload-"):
        return targets[0]
    return f"{len(targets)} {'services' if collector.name == 'progress-scrape' else 'devices'}"


def _start_dashboard(cfg, args, store):
    from dashboards.app import create_app, make_server

    host = args.host or cfg.dashboard.host
    port = cfg.dashboard.port if args.port is None else args.port
    app = create_app(cfg, store, warm=True)
    server = make_server(app, host, port, threads=8).server  # bounded connections, as `dcim dashboard`
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    bound = server.effective_port

    def stop() -> None:
        app.data.stop_warmer()
        # Let requests in flight finish before the sockets and then the store close under them.
        server.task_dispatcher.shutdown(timeout=5)

        def close_in_loop() -> None:
            # Closed from the server's own loop thread: closing its sockets from here while it
            # sits in poll() races it into EBADF. With its map empty the loop returns.
            for channel in list(server._map.values()):
                channel.close()

        server.trigger.pull_trigger(close_in_loop)
        thread.join(5)

    return f"http://{host}:{bound}/", stop
