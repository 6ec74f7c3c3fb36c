"""dcim exporter: the store's latest values as Prometheus /metrics (dcim/exposition.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from dcim.cli.options import add_config_option, config_from

NAME = "exporter"
DEFAULT_RENDER_EVERY_S = 15.0  # Prometheus' usual scrape interval; a large fleet's rendering takes ~1 s CPU
DEFAULT_PORT = 9109  # the collectors' own /metrics is on 9108 ([collectors] metrics_port)
HELP = "serve the store's latest values as Prometheus /metrics (for Prometheus and Grafana)"
DESCRIPTION = (
    "Serve GET /metrics: the latest value of every series in the store the config names, with "
    "Prometheus names and base units (dcim_gpu_power_watts{site,room,rack,host,gpu,uuid,model}, "
    "dcim_env_temp_celsius, percentages as _ratio, energy counters as _joules_total), read at each "
    "scrape. Series with no reading for --max-age seconds are left out, so they go stale in "
    "Prometheus. A store that is missing or down gives dcim_exporter_store_up 0, and the exporter "
    f"keeps serving until it is back. Default 127.0.0.1:{DEFAULT_PORT}; the collectors' self-metrics "
    "stay on [collectors] metrics_port (9108).")

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"listen port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--max-age", type=float, default=None, metavar="S",
                        help="leave out series with no reading for S seconds (default 300)")
    parser.add_argument("--render-every", type=float, default=DEFAULT_RENDER_EVERY_S, metavar="S",
                        help="render /metrics ahead every S seconds while scraped, a scrape answered with the "
                             f"last rendering (default {DEFAULT_RENDER_EVERY_S:g}; 0 = read the store at each scrape)")


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

    from dashboards.lazystore import LazyStore
    from dcim.config import check_host
    from dcim.exposition import DEFAULT_MAX_AGE_S, StoreCollector, metrics_app
    from dcim.exposition_ahead import RenderAhead
    from dcim.store import open_store
    from dcim.web import Limits, WsgiServer

    cfg = config_from(args)
    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port}: must be 0-65535", file=sys.stderr)
        return 2
    max_age_s = DEFAULT_MAX_AGE_S if args.max_age is None else args.max_age
    if args.render_every < 0:
        print("error: --render-every must be >= 0 (0 = at each scrape)", file=sys.stderr)
        return 2
    if max_age_s <= 0:
        print("error: --max-age must be > 0", file=sys.stderr)
        return 2
    try:
        host = check_host(args.host)
    except ValueError as exc:
        print(f"error: --host: {exc}", file=sys.stderr)
        return 2
    store = LazyStore(lambda: open_store(cfg, readonly=True))
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    collector = StoreCollector(store, max_age_s=max_age_s)
    ahead = RenderAhead(collector.render, every_s=args.render_every) if args.render_every else None
    app = metrics_app(collector, registry, ahead)
    try:
        server = WsgiServer(app, host, args.port, name="dcim-exporter",
                            limits=Limits(connection_limit=200, threads=2, max_body_bytes=64 * 1024))
    except OSError as exc:
        print(f"error: cannot listen on {host}:{args.port} (--host/--port): {exc.strerror or exc}", file=sys.stderr)
        return 1
    if ahead is not None:
        ahead.start()
    print(f"serving the store's latest values on {server.url}/metrics (series older than {max_age_s:g} s "
          "left out); Ctrl-C stops", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if ahead is not None:
            ahead.stop()
        store.close()
    return 0
