"""dcim optimize: run the optimizer daemon (power caps with leases, placement API)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from dcim.cli.options import add_config_option, config_from

NAME = "optimize"
HELP = "run the optimizer: GPU power caps (off | advise | enforce) and the placement API"
DESCRIPTION = (
    "Run the optimizer daemon against the configured store. Each cycle it reads fresh telemetry, "
    "prices the state with the PUE model (see 'dcim pue train'), decides per-GPU power caps under "
    "throughput-loss bounds and rack/PDU/cooling/site budgets, and — in enforce mode — publishes "
    "them as leases that GPU-node agents fetch from GET /v1/desired-state?host=H (bearer token from "
    "[optimizer] token). Caps lapse back to default when not renewed. Every decision is written to "
    "the store's 'optimizer' measurement. --once runs a single cycle and prints the decisions. "
    "Ctrl-C stops the daemon and reverts every cap it set.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--mode", choices=["off", "advise", "enforce"], default=None,
                        help="override [optimizer] mode")
    parser.add_argument("--once", action="store_true", help="run one cycle, print the decisions table and exit")
    parser.add_argument("--state-file", metavar="FILE", default=None,
                        help="desired-state (lease) book, so a restart can revert what it set "
                             "(default: <model_path folder>/desired_state.json)")
    parser.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")
    parser.add_argument("--publish", choices=["slurm", "kubernetes"], default=None,
                        help="with --once: publish the placement ranking as Slurm node weights "
                             "(scontrol update NodeName=… Weight=…) or Kubernetes node labels")
    parser.add_argument("--dry-run", action="store_true", help="with --publish: print the commands, run nothing")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dcim.store import open_store
    from optimizer.actuator import DesiredStatePublisher
    from optimizer.daemon import OptimizerDaemon
    from optimizer.desired_state import DesiredState
    from optimizer.pue_model import load_model

    cfg = config_from(args)
    opt = cfg.optimizer
    mode = args.mode or opt.mode
    state_file = Path(args.state_file) if args.state_file else Path(opt.model_path).parent / "desired_state.json"
    model = load_model(opt.model_path)
    if model is None:
        logging.getLogger(__name__).warning("no PUE model at %s: caps stay conservative (run 'dcim pue train')",
                                            opt.model_path)
    store = open_store(cfg)
    desired = DesiredState(state_file, mode=mode, lease_s=opt.lease_s)
    daemon = OptimizerDaemon(cfg, store, DesiredStatePublisher(desired), model=model, mode=mode)
    if args.once:
        try:
            report = daemon.run_once()
            print(report.table())
            if args.publish:
                _publish(daemon, args.publish, args.dry_run)
        finally:
            store.close()
        return 0

    closers = []  # the HTTP side, stopped in this order before the store closes
    if not args.no_api:
        try:
            _serve_http(cfg, store, desired, daemon, closers)
        except OSError as exc:  # a port taken: say which, no traceback
            for close in closers:
                close()
            store.close()
            print(f"error: cannot serve the optimizer's HTTP API: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    daemon.start()
    from optimizer import report_job

    report_job.schedule(daemon.scheduler, cfg, lambda: open_store(cfg, readonly=True))
    print(f"optimizer running: mode {mode}, every {opt.interval_s:g} s, lease {opt.lease_s:g} s; Ctrl-C stops",
          flush=True)
    try:
        stop.wait()
    finally:
        reverted = daemon.stop(revert=True)
        for close in closers:
            close()
        store.close()
        print(f"stopped; reverted {len(reverted)} cap(s)", file=sys.stderr, flush=True)
    return 0


def _serve_http(cfg, store, desired, daemon, closers: list) -> None:
    """The optimizer API (waitress, [optimizer] port) and the progress intake's own listener
    (uvicorn, [optimizer] progress_port), sharing one book and store writer. Appends to *closers*
    what to stop, in order, as each part starts."""
    from dcim.config import read_secret
    from optimizer.api import OptimizerApi
    from optimizer.progress_server import ProgressServer

    opt = cfg.optimizer
    token = read_secret(opt.token, "optimizer.token")
    book, writer, workload = _progress_intake(cfg, store)
    closers += [workload.close, writer.close]
    api = OptimizerApi(desired, token=token, host=opt.host, port=opt.port, placement_state=daemon.placement_state,
                       health=lambda: {"mode": daemon.mode,
                                       "last_cycle_ns": daemon.last_report.time_ns if daemon.last_report else None},
                       progress=book, write_points=writer.write)
    api.start()
    closers.insert(0, api.stop)
    print(f"optimizer API on {api.url} (token {'set' if token else 'NOT set: /v1 refuses all'})", flush=True)
    try:
        progress = ProgressServer(book, writer.write, token=token, host=opt.host, port=opt.progress_port,
                                  fds_elsewhere=api.connection_limit).start()
    except OSError as exc:
        raise OSError(f"progress intake on {opt.host}:{opt.progress_port} ([optimizer] progress_port): {exc}") \
            from None
    closers.insert(0, progress.stop)
    print(f"progress intake on {progress.url}/v1/progress", flush=True)


def _progress_intake(cfg, store):
    """POST /v1/progress: the book that checks reports, a store writer of this process's own, and
    the workload map the book reads (refreshed by a thread: the listener's event loop must not
    wait on the store). The writer's spool is a sibling of [store.spool] path
    (``<path>-optimizer``): one process per spool directory, and `dcim collect` holds that one."""
    from dcim.store.writer import writer_for
    from optimizer.progress import ProgressBook, jobs_from_store
    from optimizer.progress_server import PrefetchedWorkload

    spool = cfg.store.spool
    own = spool.model_copy(update={"path": spool.path.with_name(spool.path.name + "-optimizer")})
    writer = writer_for(cfg.model_copy(update={"store": cfg.store.model_copy(update={"spool": own})}), store)
    workload = PrefetchedWorkload(jobs_from_store(store, cfg.site.name))
    book = ProgressBook(cfg.site.name, workload=workload, require_known_job=cfg.workload.source != "none")
    return book, writer, workload


def _publish(daemon, target: str, dry_run: bool) -> None:
    from optimizer.placement import rank_servers
    from optimizer.schedulers import kubernetes_commands, run_commands, slurm_commands

    state = daemon.placement_state()
    if state is None:
        print("no telemetry: nothing to publish")
        return
    ranking = rank_servers(state)
    cmds, rejected = (slurm_commands if target == "slurm" else kubernetes_commands)(ranking)
    for name in rejected:
        print(f"skipped node name not valid for {target}: {name!r}")
    for argv, rc, err in run_commands(cmds, dry_run=dry_run):
        print(("DRY " if dry_run else "") + " ".join(argv) + ("" if rc == 0 else f"  -> exit {rc}: {err}"))
