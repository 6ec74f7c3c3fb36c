"""Options several commands share."""

from __future__ import annotations

import argparse

from dcim.config import Config, load_config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config (default: $DCIM_CONFIG, else the built-in demo facility)")


def config_from(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


def parse_where(items: list[str] | None) -> dict[str, str]:
    where: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --where expects TAG=VALUE, got {item!r}")
        where[key] = value
    return where
