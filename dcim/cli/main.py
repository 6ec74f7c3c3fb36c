"""Entry point of the ``dcim`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import dcim
import dcim.cli
from dcim.config import ConfigError
from dcim.store.base import StoreError


def _commands():
    for info in sorted(pkgutil.iter_modules(dcim.cli.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            yield importlib.import_module(f"dcim.cli.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcim",
        description="Monitor a GPU data centre and cut its energy use: collectors (NVML, SNMP), "
                    "store (SQLite or InfluxDB), optimizer (PUE model, power caps, placement), "
                    "dashboard and quarterly energy reports.",
        epilog="Config: --config FILE, else $DCIM_CONFIG, else the built-in demo facility. "
               "Run 'dcim COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"dcim {dcim.__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log verbosity (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _commands():
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # no store yet, or it is down: one line, never a traceback
        from dcim.cli.store_errors import one_line

        print(f"error: the store: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
