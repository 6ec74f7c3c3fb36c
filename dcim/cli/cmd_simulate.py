"""dcim simulate: run the facility twin and serve every device over real SNMP on loopback."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from dcim.cli.options import add_config_option, config_from

NAME = "simulate"
HELP = "run the facility twin and serve its PDUs, cooling, UPSes and meters over SNMP"
DESCRIPTION = (
    "Run the facility twin in real or accelerated time and serve every PDU, cooling unit, UPS and "
    "meter of the config as a real SNMP agent (v2c / v3 authPriv, GET, GETNEXT, GETBULK) on its own "
    "loopback address, with its vendor's MIB. SNMP secrets the config reads from environment "
    "variables are generated when unset; only the variable names are printed (use --secrets-file "
    "to hand them to other processes). Ctrl-C stops.")


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


def run(args: argparse.Namespace) -> int:
    # Imported here: the simulator is only needed by this command (DESIGN: only the CLI wires it in).
    from simulator.service import TwinService, ensure_snmp_secrets, write_secrets_file

    cfg = config_from(args)
    if args.speed is not None and args.speed <= 0:
        raise SystemExit("error: --speed must be > 0")
    generated = ensure_snmp_secrets(cfg)
    if generated:
        print(f"generated SNMP secrets into {', '.join(generated)} (values not shown)")
    if args.secrets_file:
        names = write_secrets_file(args.secrets_file, cfg)
        print(f"wrote {', '.join(names) or 'no secrets'} to {args.secrets_file} (mode 0600)")
    svc = TwinService(cfg, seed=args.seed, speed=args.speed)
    try:
        asyncio.run(_serve(svc, args.duration))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(svc, duration_s: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await svc.start()
    try:
        _print_devices(svc)
        print(f"twin {type(svc.twin).__name__}, speed x{svc.speed:g}; serving, Ctrl-C to stop", flush=True)
        if duration_s > 0:
            try:
                await asyncio.wait_for(stop.wait(), duration_s)
            except asyncio.TimeoutError:
                pass
        else:
            await stop.wait()
    finally:
        await svc.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        print("stopped", flush=True)


def _print_devices(svc) -> None:
    rows = [(d["name"], d["kind"], d["profile"], f"{d['address']}:{d['port']}",
             "v3" if d["version"] == "3" else "v2c", d["credentials"]) for d in svc.agents.describe()]
    header = ("device", "kind", "profile", "address", "snmp", "credentials")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
