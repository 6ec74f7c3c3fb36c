"""dcim simulate: run the facility twin and serve every device over real SNMP on loopback."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from dcim.cli.options import add_config_option, config_from

NAME = "simulate"
SLURM_PORT = 6820  # slurmrestd's default port, where deploy/demo.toml's [workload.slurm] rest_url points
HELP = "run the facility twin and serve its PDUs, cooling, UPSes and meters over SNMP"
DESCRIPTION = (
    "Run the facility twin in real or accelerated time and serve every PDU, cooling unit, UPS and "
    "meter of the config as a real SNMP agent (v2c / v3 authPriv, GET, GETNEXT, GETBULK) on its own "
    "loopback address, with its vendor's MIB. SNMP secrets the config reads from environment "
    "variables are generated when unset; only the variable names are printed (use --secrets-file "
    "to hand them to other processes). The twin's jobs are served as slurmrestd serves a real "
    "site's (GET /slurm/v0.0.38/jobs on --slurm-port, default 6820 as in deploy/demo.toml), so "
    "'dcim collect' reads them through the Slurm workload source; its token is [workload.slurm] "
    "rest_token, or DCIM_SLURM_JWT generated when unset. With --progress-url the twin's jobs post "
    "their work done to that optimizer's POST /v1/progress with [optimizer] token. Ctrl-C stops.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--speed", type=float, default=None, metavar="X",
                        help="simulated seconds per real second (default: [simulator] speed; 60 = a minute per second)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="random seed of the twin (default: [simulator] seed)")
    parser.add_argument("--secrets-file", metavar="FILE",
                        help="write the SNMP secrets as NAME=value lines to FILE (mode 0600), for "
                             "'set -a; . FILE' in the shell of a collector")
    parser.add_argument("--duration", type=float, default=0.0, metavar="S",
                        help="stop after S real seconds (default: run until Ctrl-C)")
    parser.add_argument("--slurm-port", type=int, default=SLURM_PORT, metavar="PORT",
                        help=f"serve the twin's slurmrestd on 127.0.0.1:PORT (default {SLURM_PORT}, slurmrestd's; "
                             "0 = any free port)")
    parser.add_argument("--fault", action="append", default=None, metavar="SPEC",
                        help="schedule a fault in the twin (repeatable; adds to [simulator] faults): "
                             "cooling:UNIT:HH:MM-HH:MM fails an air cooling unit daily in the site's time zone, "
                             "cooling:UNIT:+2m-+12m once after the start (it keeps half its capacity)")
    parser.add_argument("--progress-url", metavar="URL", default=None,
                        help="the twin's jobs post their work done to URL/v1/progress (a 'dcim optimize' "
                             "progress intake, e.g. http://127.0.0.1:8088) with [optimizer] token")


def run(args: argparse.Namespace) -> int:
    # Imported here: the simulator is only needed by this command (DESIGN: only the CLI wires it in).
    from dcim.config import read_secret
    from simulator.service import (
        TwinService,
        ensure_snmp_secrets,
        twin_slurm_token,
        write_secrets_file,
    )
    from simulator.twin_faults import FaultError, parse_fault

    cfg = config_from(args)
    if args.speed is not None and args.speed <= 0:
        raise SystemExit("error: --speed must be > 0")
    if not 0 <= args.slurm_port <= 65535:
        raise SystemExit("error: --slurm-port must be 0-65535")
    air_units = [u.name for u in cfg.cooling if u.kind != "chiller"]
    for spec in args.fault or []:   # asked for on this command line: every one must be possible
        try:
            parse_fault(spec, air_units)
        except FaultError as exc:
            print(f"error: --fault: {exc}", file=sys.stderr)
            return 2
    progress_token = None
    if args.progress_url:
        if cfg.optimizer.token is None:
            raise SystemExit("error: --progress-url needs the optimizer's token: set [optimizer] token in the config")
        progress_token = read_secret(cfg.optimizer.token, "optimizer.token")
    generated = ensure_snmp_secrets(cfg)
    slurm_token, slurm_ref, slurm_generated = twin_slurm_token(cfg)
    if slurm_generated and slurm_ref.env:  # generated: always into an environment variable
        generated.append(slurm_ref.env)
    if generated:
        print(f"generated secrets into {', '.join(generated)} (values not shown)")
    if args.secrets_file:
        names = write_secrets_file(args.secrets_file, cfg, extra=(slurm_ref.env,) if slurm_ref.env else ())
        print(f"wrote {', '.join(names) or 'no secrets'} to {args.secrets_file} (mode 0600)")
    faults = list(cfg.simulator.faults) + list(args.fault or [])
    svc = TwinService(cfg, seed=args.seed, speed=args.speed, faults=faults)  # a bad spec: ConfigError, one line
    if faults:
        print(f"faults     {', '.join(faults)}", flush=True)
    try:
        asyncio.run(_serve(svc, args, slurm_token, slurm_ref, progress_token))
    except (OSError, ValueError) as exc:  # a port taken, a bad --progress-url: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(svc, args, slurm_token: str, slurm_ref, progress_token: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await svc.start()
    try:
        _print_devices(svc)
        _serve_jobs(svc, args, slurm_token, slurm_ref, progress_token)
        print(f"twin {type(svc.twin).__name__}, speed x{svc.speed:g}; serving, Ctrl-C to stop", flush=True)
        if args.duration > 0:
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except TimeoutError:
                pass
        else:
            await stop.wait()
    finally:
        svc.stop_progress()
        svc.stop_slurm()
        await svc.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        print("stopped", flush=True)


def _serve_jobs(svc, args, slurm_token: str, slurm_ref, progress_token: str | None) -> None:
    """The twin's scheduler as slurmrestd, and its jobs' progress posts (with --progress-url)."""
    from simulator.progress_poster import first_report_after_s
    from simulator.service import TWIN_SLURM_USER

    if not hasattr(svc.twin, "workload"):
        print(f"twin {type(svc.twin).__name__} runs no jobs: no Slurm served", flush=True)
        return
    try:
        url = svc.serve_slurm(slurm_token, port=args.slurm_port)
    except OSError as exc:
        raise OSError(f"cannot serve the twin's slurmrestd on 127.0.0.1:{args.slurm_port} (--slurm-port): "
                      f"{exc.strerror or exc}") from None
    where = f"${slurm_ref.env}" if slurm_ref.env else f"file {slurm_ref.file}"
    print(f"slurmrestd {url} (GET /slurm/v0.0.38/jobs; token in {where}, user "
          f"{svc.config.workload.slurm.rest_user or TWIN_SLURM_USER})", flush=True)
    if args.progress_url:
        svc.post_progress(args.progress_url, progress_token, every_s=10.0,
                          first_report_after_s=first_report_after_s(svc.config.workload.interval_s))
        print(f"progress   the twin's jobs post to {args.progress_url.rstrip('/')}/v1/progress every 10 s "
              "of twin time", flush=True)


def _print_devices(svc) -> None:
    rows = [(d["name"], d["kind"], d["profile"], f"{d['address']}:{d['port']}",
             "v3" if d["version"] == "3" else "v2c", d["credentials"]) for d in svc.agents.describe()]
    header = ("device", "kind", "profile", "address", "snmp", "credentials")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
