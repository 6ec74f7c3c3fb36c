"""dcim dashboard: the wall-screen dashboard and detail pages, served by waitress."""

from __future__ import annotations

import argparse
import logging

from dcim.cli.options import add_config_option, config_from
from dcim.store import open_store

NAME = "dashboard"
HELP = "serve the wall-screen dashboard and detail pages (read-only)"
DESCRIPTION = ("Serve the Dash dashboard with waitress (a production WSGI server). It reads the store the "
               "config names and never writes to it. Open /?kiosk=1 on a wall screen to hide the chrome and "
               "rotate pages; /?lang=ko for Korean. Basic auth ([dashboard] auth_user/auth_password) covers "
               "everything but /health.")

log = logging.getLogger("dcim.dashboard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--host", help="address to listen on (default: [dashboard] host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: [dashboard] port, 8050)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads (default 8)")


def run(args: argparse.Namespace) -> int:
    from dashboards.app import create_app, make_server
    from dashboards.data import freeze_heap

    cfg = config_from(args)
    host = args.host or cfg.dashboard.host
    port = cfg.dashboard.port if args.port is None else args.port
    store = open_store(cfg, readonly=True)
    app = create_app(cfg, store, warm=True)
    # bounded connections, idle timeouts, body limits, 401 before an unauthenticated body is read
    server = make_server(app, host, port, threads=args.threads)
    freeze_heap()  # the app, inventory and modules stay out of every later GC pass
    log.info("dashboard on %s/ (refresh %gs, kiosk rotate %gs, at most %d connections)", server.url,
             cfg.dashboard.refresh_s, cfg.dashboard.kiosk_rotate_s, server.connection_limit)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        app.data.stop_warmer()
        store.close()
    return 0
