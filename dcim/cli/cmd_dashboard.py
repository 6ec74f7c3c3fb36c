"""dcim dashboard: the wall-screen dashboard and detail pages, served by waitress.

The command wires the dashboard to the alarm engine (``alerts``): the alarm list, the banner
and the acknowledge/shelve buttons read and write the engine's state in the store through
``alerts.actions``. A store that does not exist yet (or is down) is no error: the screens say
"no data yet" and the dashboard picks the store up when it appears.
"""

from __future__ import annotations

import argparse
import logging
import threading

from dcim.cli.options import add_config_option, config_from
from dcim.store import open_store

NAME = "dashboard"
HELP = "serve the wall-screen dashboard and detail pages"
DESCRIPTION = ("Serve the Dash dashboard with waitress (a production WSGI server). It reads the store the "
               "config names; the only thing it writes is an operator's acknowledgement or shelve of an alarm "
               "(signed with the basic-auth user, so only with [dashboard] auth_user/auth_password set). Open "
               "/?kiosk=1 on a wall screen to hide the chrome and rotate pages; /?lang=ko for Korean. Basic auth "
               "covers everything but /health. Started before the store exists, it shows 'no data yet' and "
               "recovers when the store appears.")

log = logging.getLogger("dcim.dashboard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--host", help="address to listen on (default: [dashboard] host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: [dashboard] port, 8050)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads (default 8)")


class EngineAlarms:
    """The dashboard's :class:`dashboards.alarms.AlarmBackend` on the alarm engine's functions:
    reads through the dashboard's (read-only) store, writes an operator's action through a
    writable store opened on the first action."""

    def __init__(self, cfg, store, open_writer=None):
        self.cfg = cfg
        self.site = cfg.site.name
        self.store = store
        self._open_writer = open_writer or (lambda: open_store(cfg))
        self._writer = None
        self._lock = threading.Lock()

    def active(self) -> list[dict]:
        from alerts.actions import list_alarms

        return [s.as_dict() for s in list_alarms(self.store, self.site)]

    def history(self, start_ns: int, end_ns: int) -> list[dict]:
        from alerts.actions import history

        return [s.as_dict() for s in history(self.store, self.site, start_ns, end_ns)]

    def writer(self):
        with self._lock:
            if self._writer is None:
                self._writer = self._open_writer()
            return self._writer

    def acknowledge(self, alarm_id: str, by: str, note: str) -> dict:
        from alerts.actions import acknowledge

        return self._written(acknowledge(self.writer(), alarm_id, by, note))

    def shelve(self, alarm_id: str, by: str, until_ns: int, note: str) -> dict:
        from alerts.actions import shelve

        return self._written(shelve(self.writer(), alarm_id, int(until_ns), by, note))

    def _written(self, state) -> dict:
        flush = getattr(self._writer, "flush", None)
        if flush is not None:  # the next screen refresh reads it back
            flush()
        return state.as_dict()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def run(args: argparse.Namespace) -> int:
    from dashboards.app import create_app, make_server
    from dashboards.data import freeze_heap, limit_arenas
    from dashboards.lazystore import LazyStore

    limit_arenas(2)  # before waitress starts its threads: see dashboards.data.trim_heap
    cfg = config_from(args)
    host = args.host or cfg.dashboard.host
    port = cfg.dashboard.port if args.port is None else args.port
    store = LazyStore(lambda: open_store(cfg, readonly=True))
    alarms = EngineAlarms(cfg, store)
    app = create_app(cfg, store, warm=True, alarms=alarms)
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
        alarms.close()
        store.close()
    return 0
