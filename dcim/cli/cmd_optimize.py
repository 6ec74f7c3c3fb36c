"""dcim optimize: run the optimizer daemon (power caps with leases, placement API)."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable

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
    "Ctrl-C stops the daemon and reverts every cap it set. "
    "Demand response: 'dcim optimize --budget 300kW --until 18:00' asks the running daemon (its API at "
    "[optimizer] host:port, or --url) to hold the facility under 300 kW until 18:00 site time, within each "
    "job class's [optimizer] dr_loss_bound (inference untouched by default); '--budget off' ends it early, "
    "'--budget status' shows it. Every start, end and expiry is audited in the 'optimizer' measurement "
    "(action demand_response); the caps set only for it are released on the cycle after it ends.")


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
    dr = parser.add_argument_group("demand response (talks to the running daemon's API)")
    dr.add_argument("--budget", metavar="POWER|off|status", default=None,
                    help="facility power budget with its unit (300kW, 1.2MW, 250000W); 'off' ends the window "
                         "in force; 'status' shows it")
    dr.add_argument("--until", metavar="TIME", default=None,
                    help="when the budget ends (required with a budget): HH:MM site time (the next one), "
                         "an ISO date-time (site time unless it has an offset), or a duration (+3h, 90m)")
    dr.add_argument("--reason", default="", help="why (a grid event id, a ticket): goes to the audit")
    dr.add_argument("--url", default=None, help="the daemon's API (default http://[optimizer] host:port)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dcim.store import open_store
    from optimizer.actuator import DesiredStatePublisher
    from optimizer.daemon import OptimizerDaemon
    from optimizer.desired_state import DesiredState
    from optimizer.pue_model import load_model

    cfg = config_from(args)
    if args.budget is not None or args.until is not None:
        return demand_response(args, cfg)
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

    closers: list[Callable[[], None]] = []  # the HTTP side, stopped in this order before the store closes
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
                       progress=book, write_points=writer.write, demand_response=daemon)
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


# -- demand response: the client side of /v1/demand-response ----------------------------------------

POWER = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(W|kW|MW)\s*$", re.IGNORECASE)
UNIT_W = {"w": 1.0, "kw": 1e3, "mw": 1e6}
DURATION = re.compile(r"^\+?\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h)\s*$", re.IGNORECASE)
UNIT_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def parse_power_w(text: str) -> float:
    """'300kW' → 300000.0. ValueError naming --budget for anything else (a unit is required)."""
    m = POWER.match(text)
    if not m:
        raise ValueError(f"--budget: {text!r} is not a power with its unit (e.g. 300kW, 1.2MW, 250000W), "
                         "'off' or 'status'")
    watts = float(m.group(1)) * UNIT_W[m.group(2).lower()]
    if watts <= 0:
        raise ValueError(f"--budget: {text!r} must be above zero")
    return watts


def parse_until_ns(text: str, now_ns: int, tz: str) -> int:
    """--until as UTC ns: HH:MM site time (the next such time), an ISO date-time (site time unless
    it has an offset) or a duration from now (+3h, 90m, 45min, 600s). ValueError naming --until."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    now = datetime.fromtimestamp(now_ns / 1e9, tz=zone)
    text = text.strip()
    if m := DURATION.match(text):
        return now_ns + int(float(m.group(1)) * UNIT_S[m.group(2).lower()] * 1e9)
    if m := CLOCK.match(text):
        at = now.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
        if at <= now:
            at = (at.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
        return int(at.timestamp()) * 10**9
    try:
        at = datetime.fromisoformat(text)  # 3.11: "Z" and offsets too
    except ValueError:
        raise ValueError(f"--until: {text!r} is not HH:MM, an ISO date-time or a duration (+3h, 90m)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    return round(at.timestamp() * 1e9)


def _actor() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "cli"
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{user}")[:30] or "cli"
    host = re.sub(r"[^A-Za-z0-9_.\-]", "_", socket.gethostname())[:30]
    return f"{clean}@{host}" if host else clean


def demand_response(args, cfg) -> int:
    """--budget/--until: ask the running daemon's API; the answer (or a clear error) printed."""
    import time

    from dcim.config import read_secret

    if args.once or args.publish:
        return _fail("--budget talks to the running daemon; it does not go with --once or --publish")
    if args.budget is None:
        return _fail("--until needs --budget (a power such as 300kW)")
    tz = cfg.site.timezone
    what = args.budget.strip().lower()
    try:
        if what in ("off", "status"):
            if args.until is not None:
                return _fail(f"--until does not go with --budget {what}")
            method, body = ("DELETE", {"actor": _actor(), "reason": args.reason}) if what == "off" else ("GET", None)
        else:
            budget_w = parse_power_w(args.budget)
            if args.until is None:
                return _fail("--until is required with a budget: HH:MM site time, an ISO date-time or a "
                             "duration (+3h)")
            until_ns = parse_until_ns(args.until, time.time_ns(), tz)
            method, body = "POST", {"budget_w": budget_w, "until_ns": until_ns, "actor": _actor(),
                                    "reason": args.reason}
    except ValueError as exc:
        return _fail(str(exc))
    token = read_secret(cfg.optimizer.token, "optimizer.token")
    if not token:
        return _fail("the optimizer API needs a token: set [optimizer] token (the daemon's own)")
    url = (args.url or f"http://{_url_host(cfg.optimizer.host)}:{cfg.optimizer.port}").rstrip("/")
    try:
        code, answer = _call(url + "/v1/demand-response", method, token, body)
    except OSError as exc:
        return _fail(f"no optimizer API answers at {url} ({exc}); is 'dcim optimize' running?")
    if code != 200:
        return _fail(f"the optimizer refused (HTTP {code}): {answer.get('error', answer)}")
    if method == "DELETE":
        print("demand response ended; its caps are released on the next cycle" if answer.get("ended")
              else "no demand response was in force")
        return 0
    print(_describe(answer.get("demand_response"), tz))
    return 0


def _describe(state: dict | None, tz: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if not state:
        return "no demand response in force"
    until = datetime.fromtimestamp(state["until_ns"] / 1e9, tz=ZoneInfo(tz))
    met = {True: "met at the last cycle", False: "NOT met at the last cycle (DR loss bounds hold first)",
           None: "no cycle yet"}[state.get("met")]
    return (f"demand response: facility budget {state['budget_w'] / 1000:g} kW until "
            f"{until:%Y-%m-%d %H:%M %Z} ({state['until']}), set by {state['actor']}"
            + (f" ({state['reason']})" if state.get("reason") else "") + f"; {met}")


def _url_host(host: str) -> str:
    """Where a client reaches a server bound to *host*: a wildcard bind through loopback."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _call(url: str, method: str, token: str, body: dict | None) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read(1 << 20) or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read(1 << 16) or b"{}")
        except ValueError:
            return exc.code, {"error": exc.reason}


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
