"""dcim check: validate the config and summarise the facility."""

from __future__ import annotations

import argparse

from dcim.cli.options import add_config_option, config_from
from dcim.inventory import build_inventory

NAME = "check"
HELP = "validate the config and print a summary of the facility"
DESCRIPTION = ("Validate the TOML config (types, ranges, unknown keys, references between sections) and "
               "print what it describes. A bad config exits with status 2 and names each offending key.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    inv = build_inventory(cfg)
    kinds: dict[str, int] = {}
    for unit in cfg.cooling:
        kinds[unit.kind] = kinds.get(unit.kind, 0) + 1
    store = cfg.store
    if store.backend == "sqlite":
        where = str(store.path)
    else:
        influx = store.influxdb
        where = f"{influx.url} db={influx.database} auth={influx.auth}"
    lines = [
        f"config OK: site {cfg.site.name} ({cfg.site.timezone}, grid {cfg.site.grid_kgco2e_per_kwh} kgCO2e/kWh)",
        f"  rooms     {len(cfg.rooms)}",
        f"  racks     {len(inv.racks)}",
        f"  servers   {len(inv.servers)}",
        f"  GPUs      {len(inv.gpus)}",
        f"  PDUs      {len(cfg.pdus)}",
        f"  cooling   {len(cfg.cooling)}" + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""),
        f"  UPSes     {len(cfg.ups)}",
        f"  meters    {len(cfg.meters)}",
        f"  tenants   {len(cfg.tenants)}",
        f"  SNMP      {len(inv.snmp_devices())} devices, credentials: {', '.join(sorted(cfg.snmp.credentials)) or 'none'}",
        f"  store     {store.backend}: {where}",
        f"  optimizer mode {cfg.optimizer.mode}",
    ]
    print("\n".join(lines))
    return 0
