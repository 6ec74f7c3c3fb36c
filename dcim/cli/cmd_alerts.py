"""dcim alerts: run the alarm engine as a service (or one cycle, or list/acknowledge alarms)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from dcim.cli.options import add_config_option, config_from

NAME = "alerts"
HELP = "run the alarm engine: rules on the store, alarm state in the store, Alertmanager/webhook/e-mail"
DESCRIPTION = (
    "Evaluate the alarm rules (alerts/rules/*.toml, changed per site under [alerts.overrides]) against the "
    "store every [alerts] interval_s, keep each alarm's state and history in the store's 'alarm' measurement "
    "(raised, acked, shelved, cleared), and notify Alertmanager ([alerts.alertmanager] urls), signed webhooks "
    "([[alerts.webhooks]]) and e-mail ([alerts.email]). A restarted engine resumes from the store and notifies "
    "nothing twice. --once runs one cycle and prints what changed; --list prints the active alarms; "
    "--ack ID --by NAME acknowledges one. Ctrl-C (or SIGTERM) stops it after the queued notifications go out "
    "(up to 5 s).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--once", action="store_true", help="run one cycle, print the transitions and exit")
    parser.add_argument("--list", action="store_true", help="print the active alarms and exit")
    parser.add_argument("--ack", metavar="ALARM_ID", help="acknowledge this alarm (rule:entity) and exit")
    parser.add_argument("--by", metavar="NAME", help="with --ack: who acknowledges")
    parser.add_argument("--note", default="", help="with --ack: a note")


def start_engine(cfg, store):
    """The engine with its notifiers from [alerts], started. Raises ConfigError for a missing
    secret and RuleError for a bad rule table (both one clear line)."""
    engine = build_engine(cfg, store)
    return engine.start()


def build_engine(cfg, store):
    from alerts.engine import AlarmEngine
    from alerts.notify import build_notifiers
    from alerts.rules import RuleError, load_rules
    from dcim.config import ConfigError

    try:
        rules = load_rules(cfg.alerts)
    except RuleError as exc:  # printed as one line by the command line, like any config error
        raise ConfigError([("alerts", str(exc))]) from None
    url = cfg.alerts.dashboard_url or f"http://{cfg.dashboard.host}:{cfg.dashboard.port}"
    am, others = build_notifiers(cfg.alerts, url)
    return AlarmEngine(cfg, store, alertmanager=am, notifiers=others, rules=rules)


def run(args: argparse.Namespace) -> int:
    from alerts.actions import AlarmActionError, acknowledge, list_alarms
    from dcim.store import StoreError, open_store

    cfg = config_from(args)
    try:
        store = open_store(cfg, readonly=args.list)
    except StoreError as exc:
        print(f"error: store {cfg.store.backend}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.list:
            _print(list_alarms(store, cfg.site.name))
            return 0
        if args.ack:
            if not args.by:
                print("error: --ack needs --by NAME", file=sys.stderr)
                return 2
            state = acknowledge(store, args.ack, args.by, args.note)
            print(f"acknowledged {state.id} by {state.by}")
            return 0
        engine = build_engine(cfg, store)
        if args.once:
            return _once(engine)
        return _serve(cfg, engine)
    except AlarmActionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"error: store {cfg.store.backend}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _once(engine) -> int:
    report = engine.run_once()
    for s in report.writes:
        print(f"{s.state:8} {s.severity:8} {s.id}  {s.summary}")
    print(f"{report.findings} device(s) in alarm, {len(report.writes)} transition(s), {report.deferred} deferred")
    engine.stop()
    return 1 if report.error else 0


def _serve(cfg, engine) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    engine.start()
    targets = [t for t, on in (("Alertmanager", engine.alertmanager is not None),
                               (f"{len(engine.notifiers)} webhook/e-mail", bool(engine.notifiers))) if on]
    print(f"alarm engine running: {len(engine.rules)} rules every {cfg.alerts.interval_s:g} s, notifying "
          f"{', '.join(targets) or 'nobody (no [alerts] receivers configured)'}; Ctrl-C stops", flush=True)
    try:
        stop.wait()
    finally:
        engine.stop()
        print("alarm engine stopped", file=sys.stderr, flush=True)
    return 0


def _print(alarms) -> None:
    if not alarms:
        print("no active alarms")
        return
    now = time.time_ns()
    for a in alarms:
        age_min = (now - a.raised_ns) / 60e9
        extra = f" by {a.by}" if a.state in ("acked", "shelved") else ""
        print(f"{a.severity:8} {a.state:8}{extra}  {a.id}  ({age_min:.0f} min)  {a.summary}")
