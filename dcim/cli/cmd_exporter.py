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
    parser.add_argument("--host", default=None, help="listen address (default [exporter] host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"listen port (default [exporter] port, {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--max-age", type=float, default=None, metavar="S",
                        help="leave out series with no reading for S seconds (default [exporter] max_age_s, 300)")
    parser.add_argument("--render-every", type=float, default=None, metavar="S",
                        help="render /metrics ahead every S seconds while scraped, a scrape answered with the "
                             "last rendering (default [exporter] render_every_s, "
                             f"{DEFAULT_RENDER_EVERY_S:g}; 0 = read the store at each scrape)")


def make_exporter(settings, open_store_fn):
    """The exporter of *settings* ([exporter]): returns (server, stop), the server bound but not
    yet serving (``run()`` here, ``start()`` on a thread). The store is opened by *open_store_fn*
    once it exists (until then store_up is 0). Raises OSError when the port cannot be had."""
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

    from dashboards.lazystore import LazyStore
    from dcim.exposition import StoreCollector, metrics_app
    from dcim.exposition_ahead import RenderAhead
    from dcim.web import Limits, WsgiServer

    store = LazyStore(open_store_fn)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    collector = StoreCollector(store, max_age_s=settings.max_age_s)
    every_s = settings.render_every_s
    ahead = RenderAhead(collector.render, every_s=every_s, idle_after_s=max(300.0, every_s)) if every_s else None
    try:
        server = WsgiServer(metrics_app(collector, registry, ahead), settings.host, settings.port,
                            name="dcim-exporter",
                            limits=Limits(connection_limit=200, threads=2, max_body_bytes=64 * 1024))
    except OSError:
        store.close()
        raise
    if ahead is not None:
        ahead.start()

    def stop() -> None:
        server.stop()
        if ahead is not None:
            ahead.stop()
        store.close()

    return server, stop


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from dcim.store import open_store

    cfg = config_from(args)
    given = {k: v for k, v in (("host", args.host), ("port", args.port), ("max_age_s", args.max_age),
                               ("render_every_s", args.render_every)) if v is not None}
    try:
        settings = type(cfg.exporter).model_validate({**cfg.exporter.model_dump(), **given})
    except ValidationError as exc:
        flags = {"host": "--host", "port": "--port", "max_age_s": "--max-age", "render_every_s": "--render-every"}
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        print(f"error: {flags.get(key, key)}: {err['msg']}", file=sys.stderr)
        return 2
    try:
        server, stop = make_exporter(settings, lambda: open_store(cfg, readonly=True))
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port} (--host/--port): {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(f"serving the store's latest values on {server.url}/metrics (series older than {settings.max_age_s:g} s "
          "left out); Ctrl-C stops", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0
