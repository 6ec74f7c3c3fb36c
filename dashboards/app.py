"""The Dash app: one shell (banner, chrome, page, data-age stamp) and a handful of callbacks.

- ``render``: URL → page layout (complete first paint), navigation, kiosk mode.
- ``banner``: every refresh tick → the pinned alarm banner and the data-age stamp.
- ``refresh``: every tick → values, figures (``Patch``: only the traces are replaced, layout and
  zoom stay) and table rows of the page on screen, by pattern-matching ids.
- ``kiosk``: rotates pages every ``kiosk_rotate_s`` when ``?kiosk=1``.

All data comes from :class:`dashboards.data.DataSource`, whose cache is shared by every screen.
Read-only: nothing here writes to the store.

Every callback takes its inputs from the browser, so any client can send any JSON value: each
one checks the type of what it reads and falls back to a safe default (or no update), never a
500. :func:`make_server` serves the app on waitress with the bounds of :mod:`dcim.web`.
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import re
import time
from pathlib import Path

import dash
from dash import ALL, Input, Output, Patch, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboards import components as c
from dashboards.data import DataSource
from dashboards.i18n import fmt_age, fmt_time, t
from dashboards.pages import make_ctx, page_for, registry
from dcim.web import SECURITY_HEADERS, Limits, WsgiServer, with_security_headers

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
KIOSK_PAGES = ("/", "/alarms", "/power", "/cooling", "/energy", "/optimizer")

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}</head>
<body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body>
</html>"""


def _text(value, default: str = "") -> str:
    """A callback's string input, or *default* when the client sent another JSON type."""
    return value if isinstance(value, str) else default


def _ids(outputs: list) -> list[dict]:
    """The ids of pattern-matched outputs, ``{"k": None}`` for any a client made up."""
    return [o["id"] if isinstance(o, dict) and isinstance(o.get("id"), dict) and isinstance(o["id"].get("k"), str)
            else {"k": None} for o in outputs]


def _nav(ctx, path: str) -> list:
    keep = "&".join(f"{k}={ctx.params[k]}" for k in ("lang",) if k in ctx.params)
    links = []
    for module in registry():
        href = module.PATH + (f"?{keep}" if keep else "")
        cls = "nav-link active" if module.PATH == path else "nav-link"
        links.append(dcc.Link(t(module.TITLE, ctx.lang), href=href, className=cls))
    other = "ko" if ctx.lang == "en" else "en"
    links.append(dcc.Link("한국어" if other == "ko" else "English", href=f"{path}?lang={other}",
                          className="nav-link lang"))
    return links


def next_kiosk_path(path: str | None, has_content=None) -> str:
    """The next page of the kiosk rotation after *path*, skipping pages *has_content* says are
    empty (the overview always shows)."""
    path = (path or "/").rstrip("/") or "/"
    if path not in KIOSK_PAGES:
        return KIOSK_PAGES[0]
    i = KIOSK_PAGES.index(path)
    for step in range(1, len(KIOSK_PAGES)):
        nxt = KIOSK_PAGES[(i + step) % len(KIOSK_PAGES)]
        if nxt == KIOSK_PAGES[0] or has_content is None or has_content(nxt):
            return nxt
    return KIOSK_PAGES[0]


def page_has_content(module, ctx) -> bool:
    """A page's own ``has_rows(ctx)`` when it has one (the alarm list without alarms is empty);
    a page that cannot tell, or fails to, counts as having content."""
    check = getattr(module, "has_rows", None)
    if check is None:
        return True
    try:
        return bool(check(ctx))
    except Exception:  # noqa: BLE001 — a broken check must not stop the rotation
        return True


def _table_pages(datas, sizes, currents) -> list[tuple[int, int]]:
    """(current page, page count) of each table on screen, from what the browser sent (any JSON:
    anything malformed counts as a single page)."""
    out: list[tuple[int, int]] = []
    if not (isinstance(datas, list) and isinstance(sizes, list) and isinstance(currents, list)):
        return out
    for rows, size, cur in zip(datas, sizes, currents):
        ok = isinstance(rows, list) and isinstance(size, int) and not isinstance(size, bool) and size > 0
        pages = -(-len(rows) // size) if ok else 1
        cur = cur if isinstance(cur, int) and not isinstance(cur, bool) and 0 <= cur < max(1, pages) else 0
        out.append((cur, max(1, pages)))
    return out


def table_pages_left(datas, sizes, currents) -> bool:
    return any(cur + 1 < pages for cur, pages in _table_pages(datas, sizes, currents))


def next_table_pages(datas, sizes, currents, n: int) -> list:
    """Each table's next page while any has pages left (the longest sets the pace; shorter ones
    stay on their last page), else no change: the kiosk then moves to the next screen."""
    pages = _table_pages(datas, sizes, currents)
    if len(pages) != n or not any(cur + 1 < count for cur, count in pages):
        return [no_update] * n
    return [min(cur + 1, count - 1) for cur, count in pages]


def refresh_outputs(update: dict, v_ids: list, fig_ids: list, tbl_ids: list) -> tuple[list, list, list, list]:
    """Map a page's update dict onto the pattern-matched components on screen (no_update for
    anything the page did not produce). Figures become Patches replacing only ``data``."""
    vals = update.get("v", {})
    texts, classes = [], []
    for i in v_ids:
        item = vals.get(i["k"])
        if item is None:
            texts.append(no_update)
            classes.append(no_update)
        else:
            texts.append(item[0])
            classes.append(item[1])
    figs: list[object] = []  # a Patch, or no_update
    for i in fig_ids:
        fig = update.get("fig", {}).get(i["k"])
        if fig is None:
            figs.append(no_update)
        else:
            p = Patch()
            p["data"] = fig["data"]
            figs.append(p)
    tbls = [update.get("tbl", {}).get(i["k"], no_update) for i in tbl_ids]
    return texts, classes, figs, tbls


def create_app(config, store, *, clock=time.time, warm: bool = False, alarms=None) -> dash.Dash:
    """The app. *warm* starts a thread that precomputes every tick's data and overview (serve).
    *alarms* is the alarm engine's :class:`dashboards.alarms.AlarmBackend` (the command line wires
    it); without one the alarm list is empty and acknowledging is refused."""
    data = DataSource(config, store, clock=clock, alarms=alarms)
    settings = config.dashboard
    # update_title "": the tab keeps its title while callbacks run (Dash reads "" as it reads None)
    app = dash.Dash(__name__, assets_folder=str(ASSETS), suppress_callback_exceptions=True,
                    title=f"dcim · {config.site.name}", update_title="", index_string=INDEX,
                    serve_locally=True, compress=False)
    app.data = data  # type: ignore[attr-defined]

    app.layout = _layout(config, data)
    _add_page_callbacks(app, data)
    _add_refresh_callback(app, data)
    _add_kiosk_callbacks(app, data)
    _add_gpu_callbacks(app, data)
    _add_alarm_actions(app, data)

    if warm:
        from dashboards.pages import overview

        data.start_warmer(lambda: overview.update(make_ctx(data, f"?lang={settings.lang}")))
    _add_routes(app, data, config)
    app.server.wsgi_app = with_security_headers(app.server.wsgi_app)  # BasicAuth's 401 adds them itself
    _add_auth(app, config)
    return app


def _layout(config, data: DataSource) -> html.Div:
    """The page frame every screen shares: the URL, the timers, the banner, the chrome and the footer."""
    settings = config.dashboard
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Interval(id="tick", interval=int(data.tick_s * 1000)),  # see DataSource.tick_s
        dcc.Interval(id="kiosk-timer", interval=int(settings.kiosk_rotate_s * 1000), disabled=True),
        html.Div(id="banner", className="banner ok", role="alert"),
        html.Header([
            html.Div(config.site.name, className="site-name"),
            html.Nav(id="nav", className="nav"),
        ], id="chrome", className="chrome"),
        html.Main(id="page", className="page"),
        html.Footer(html.Span(id="stamp", className="stamp"), className="footer"),
    ], id="root", className="root")


def _add_page_callbacks(app: dash.Dash, data: DataSource) -> None:
    """The page for the URL, and the banner and data-age stamp every tick."""
    @app.callback(Output("page", "children"), Output("nav", "children"), Output("chrome", "className"),
                  Output("kiosk-timer", "disabled"), Output("root", "className"),
                  Input("url", "pathname"), Input("url", "search"))
    def render(pathname, search):
        pathname, search = _text(pathname, "/"), _text(search)
        ctx = make_ctx(data, search)
        module = page_for(pathname)
        try:
            content = module.layout(ctx)
        except Exception:  # a broken page must not take the wall down
            log.exception("page %s failed", module.PATH)
            content = html.Div(t("no_data", ctx.lang), className="unavailable")
        root = f"root lang-{ctx.lang}" + (" kiosk" if ctx.kiosk else "")
        return (content, _nav(ctx, module.PATH), "chrome hidden" if ctx.kiosk else "chrome",
                not ctx.kiosk, root)

    @app.callback(Output("banner", "children"), Output("banner", "className"),
                  Output("stamp", "children"), Output("stamp", "className"),
                  Input("tick", "n_intervals"), Input("url", "search"))
    def banner(_n, search):
        ctx = make_ctx(data, _text(search))
        snap = data.snapshot()
        return (*banner_parts(snap, ctx.lang, ctx.tz), *stamp_parts(data, snap, ctx.lang))


def _add_refresh_callback(app: dash.Dash, data: DataSource) -> None:
    """Every tick, the page's values, figures and tables in place (no re-render)."""
    @app.callback(Output({"type": "v", "k": ALL}, "children"), Output({"type": "v", "k": ALL}, "className"),
                  Output({"type": "fig", "k": ALL}, "figure"), Output({"type": "tbl", "k": ALL}, "data"),
                  Input("tick", "n_intervals"), State("url", "pathname"), State("url", "search"),
                  State({"type": "v", "k": ALL}, "id"), State({"type": "v", "k": ALL}, "className"),
                  State({"type": "fig", "k": ALL}, "id"), State({"type": "tbl", "k": ALL}, "id"),
                  prevent_initial_call=True)
    def refresh(_n, pathname, search, _v_ids, v_classes, _fig_ids, _tbl_ids):
        # The ids come from the outputs Dash will fill, not from the State lists a client sends:
        # a list of another length than the outputs would fail the answer.
        outputs = dash.callback_context.outputs_list
        if not isinstance(outputs, list) or len(outputs) != 4 or not all(isinstance(o, list) for o in outputs):
            raise PreventUpdate
        v_ids, fig_ids, tbl_ids = _ids(outputs[0]), _ids(outputs[2]), _ids(outputs[3])
        v_classes = v_classes if isinstance(v_classes, list) else []
        v_classes = [_text(x) for x in v_classes[:len(v_ids)]] + [""] * max(0, len(v_ids) - len(v_classes))
        ctx = make_ctx(data, _text(search))
        update = page_for(_text(pathname, "/")).update(ctx)
        texts, classes, figs, tbls = refresh_outputs(update, v_ids, fig_ids, tbl_ids)
        # keep structural classes (kpi-value, stat-value, count) and replace only the state part
        merged = []
        for new, old in zip(classes, v_classes):
            if new is no_update:
                merged.append(no_update)
                continue
            keep = [x for x in (old or "").split() if x in ("kpi-value", "stat-value", "count")]
            merged.append(" ".join(keep + ([new] if new else [])))
        return texts, merged, figs, tbls


def _add_kiosk_callbacks(app: dash.Dash, data: DataSource) -> None:
    """Kiosk rotation: the tables page on first, then the next page with content."""
    tbl_state = (State({"type": "tbl", "k": ALL}, "data"), State({"type": "tbl", "k": ALL}, "page_size"),
                 State({"type": "tbl", "k": ALL}, "page_current"))

    # States past the pathname have defaults: a client that sends only the pathname still rotates.
    @app.callback(Output("url", "pathname"), Input("kiosk-timer", "n_intervals"), State("url", "pathname"),
                  State("url", "search"), *tbl_state, prevent_initial_call=True)
    def kiosk(_n, pathname, search=None, datas=None, sizes=None, currents=None):
        if table_pages_left(datas, sizes, currents):
            return no_update  # the tables page on first (see kiosk_pages); the page stays
        ctx = make_ctx(data, _text(search))
        return next_kiosk_path(_text(pathname, "/"), lambda path: page_has_content(page_for(path), ctx))

    @app.callback(Output({"type": "tbl", "k": ALL}, "page_current"), Input("kiosk-timer", "n_intervals"),
                  *tbl_state, prevent_initial_call=True)
    def kiosk_pages(_n, datas, sizes, currents):
        outputs = dash.callback_context.outputs_list
        n = len(outputs) if isinstance(outputs, list) else 0
        return next_table_pages(datas, sizes, currents, n)


def _add_gpu_callbacks(app: dash.Dash, data: DataSource) -> None:
    """The rack picker, the GPU table's pages and sorting, and the history of a clicked GPU."""
    @app.callback(Output("url", "search"), Input("rack-pick", "value"), State("url", "search"),
                  prevent_initial_call=True)
    def pick_rack(rack, search):
        from urllib.parse import urlencode

        from dashboards.pages import parse_search

        params = parse_search(_text(search))
        if not isinstance(rack, str) or not rack or len(rack) > 200 or params.get("rack") == rack:
            return no_update
        params["rack"] = rack
        return "?" + urlencode(params)  # encoded: a name with "&" or "=" stays one parameter

    from dashboards.pages import gpus as gpus_page

    @app.callback(Output("gpu-table", "data"), Output("gpu-table", "page_count"),
                  Input("gpu-table", "page_current"), Input("gpu-table", "sort_by"), Input("tick", "n_intervals"),
                  prevent_initial_call=True)
    def gpu_table(page, sort_by, _n):
        page = page if isinstance(page, int) and not isinstance(page, bool) and page >= 0 else 0
        rows = gpus_page.gpu_rows(data.gpus())
        return gpus_page.sort_page(rows, gpus_page.clean_sort_by(sort_by), page, gpus_page.PAGE_SIZE)

    @app.callback(Output("gpu-history", "figure"), Input("gpu-table", "active_cell"), State("gpu-table", "data"),
                  State("url", "search"), prevent_initial_call=True)
    def gpu_history(cell, rows, search):
        row = cell.get("row") if isinstance(cell, dict) else None
        if not isinstance(rows, list) or not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < len(rows):
            return no_update
        uuid = rows[row].get("uuid") if isinstance(rows[row], dict) else None
        if not isinstance(uuid, str) or not uuid:
            return no_update
        ctx = make_ctx(data, _text(search))
        return gpus_page.history_figure(data, uuid, ctx.lang)


def _operator(app) -> str | None:
    """The signed-in operator (basic auth's user name), or None when the dashboard has no auth:
    an acknowledgement names who made it, so an anonymous screen cannot make one."""
    if getattr(app, "auth", None) is None:
        return None
    from flask import request

    auth = request.authorization
    return auth.username if auth is not None and auth.username else None


def _add_alarm_actions(app: dash.Dash, data: DataSource) -> None:
    from dashboards.pages import alarms as alarms_page

    @app.callback(Output("alarm-result", "children"), Output("alarm-result", "className"),
                  Output("alarm-pick", "options"),
                  Input("alarm-ack", "n_clicks"), Input("alarm-shelve", "n_clicks"),
                  State("alarm-pick", "value"), State("alarm-note", "value"), State("alarm-shelve-h", "value"),
                  State("url", "search"), prevent_initial_call=True)
    def act(_ack, _shelve, alarm_id, note, hours, search):
        ctx = make_ctx(data, _text(search))
        lang = ctx.lang
        which = dash.callback_context.triggered_id
        alarm_id, note = _text(alarm_id), _text(note)[:500]
        if which not in ("alarm-ack", "alarm-shelve") or not alarm_id:
            raise PreventUpdate
        by = _operator(app)
        if by is None:
            return t("alarms.need_auth", lang), "alarm-result failed", no_update
        try:
            if which == "alarm-ack":
                data.alarm_backend.acknowledge(alarm_id, by, note)
                msg = t("alarms.done_ack", lang, id=alarm_id, by=by)
            else:
                h = hours if isinstance(hours, (int, float)) and not isinstance(hours, bool) else 0
                if h not in alarms_page.SHELVE_HOURS:
                    raise ValueError(f"shelve hours must be one of {alarms_page.SHELVE_HOURS}")
                until_ns = int((data.now() + h * 3600) * 1e9)
                data.alarm_backend.shelve(alarm_id, by, until_ns, note)
                msg = t("alarms.done_shelve", lang, id=alarm_id, by=by,
                        until=fmt_time(until_ns, data.tz, lang, with_date=True))
        except (ValueError, KeyError) as exc:
            return t("alarms.failed", lang, why=str(exc)[:300]), "alarm-result failed", no_update
        except Exception as exc:  # the store refused the write: say so, do not 500
            log.warning("alarm action %s on %s failed: %s", which, alarm_id, exc)
            return t("alarms.failed", lang, why=type(exc).__name__), "alarm-result failed", no_update
        data.cache.forget(("alarms",), ("alarm_history", 7 * 86400), ("page", alarms_page.update.__module__))
        log.info("alarm %s %s by %s", alarm_id, which.removeprefix("alarm-"), by)
        return msg, "alarm-result ok", alarms_page.options(data.alarms(), lang)


# A wall screen keeps a handful of connections; a few hundred screens fit. Dash callback bodies are
# a few KiB (ids, classes, one page of table rows).
DASHBOARD_LIMITS = Limits(connection_limit=1000, max_body_bytes=1024 * 1024)


def make_server(app: dash.Dash, host: str, port: int, threads: int = 8) -> WsgiServer:
    """The dashboard on waitress with bounded connections; with basic auth configured, a request
    body is read only once its credentials are right (401 before reading it otherwise)."""
    from dataclasses import replace

    auth = getattr(app, "auth", None)
    return WsgiServer(app.server, host, port, name="dcim-dashboard", limits=replace(DASHBOARD_LIMITS, threads=threads),
                      admit_body=auth.challenge_for if auth else None)



def banner_parts(snap: dict, lang: str, tz: str) -> tuple[list, str]:
    return c.banner(snap["alarms"], lang, tz), c.banner_class(snap["alarms"])


def stamp_parts(data: DataSource, snap: dict, lang: str) -> tuple[str, str]:
    """The data-age stamp: the oldest of the sources on the wall (facility meters, rack sensors,
    PDUs, UPS, cooling, GPUs), naming those that are stale; "no data yet" while the store is
    missing or empty."""
    if not snap.get("data_t"):
        return t("stamp.nodata_yet", lang), "stamp stale nodata"
    age = max(snap["now_ns"] / 1e9, data.now()) - snap["data_t"] / 1e9
    text = t("stamp.data", lang, time=fmt_time(snap["data_t"], data.tz, lang, with_date=True), age=fmt_age(age, lang))
    stale = snap.get("stale_sources") or {}
    if stale:
        what = ", ".join(t(f"src.{k}", lang) + ("" if n == total and total == 1 else f" ({n}/{total})")
                         for k, (n, total) in sorted(stale.items()))
        text += " · " + t("stamp.stale_sources", lang, what=what)
    return text, "stamp stale" if stale else "stamp"


# fullmatch, not "$": "$" also matches before a trailing newline, so "2026Q3\n" got through, the whole
# report was built, and the newline in the Content-Disposition file name then failed the answer (a 500).
PERIOD_RE = re.compile(r"\d{4}Q[1-4]")


def _add_routes(app: dash.Dash, data: DataSource, config) -> None:
    server = app.server

    @server.route("/health")
    def health():
        try:
            snap = data.snapshot()
            body = {"status": "ok", "data_age_s": snap.get("data_age_s"),
                    "alarms": len(snap.get("alarms", []))}
            code = 200
        except Exception as exc:  # the store is down: say so, do not crash
            body = {"status": "store unavailable", "error": type(exc).__name__}
            code = 503
        return server.response_class(json.dumps(body), status=code, mimetype="application/json")

    @server.route("/download/report.csv")
    def report_csv():
        from flask import request

        period = request.args.get("period", "")
        by = request.args.get("by", "site")
        if not PERIOD_RE.fullmatch(period) or by not in ("site", "room", "rack", "tenant", "gpu", "job"):
            return server.response_class("bad period or by\n", status=400, mimetype="text/plain")
        try:
            import dcim.report as report
        except ImportError:
            return server.response_class("report unavailable\n", status=503, mimetype="text/plain")
        if not (hasattr(report, "build_report") and hasattr(report, "write_csv")):
            return server.response_class("report unavailable\n", status=503, mimetype="text/plain")
        # the report takes a Period when it has one (dcim.report.quarter), else the label
        period_arg = report.quarter(period, config.site.timezone) if hasattr(report, "quarter") else period
        rows = report.build_report(data.store.inner, config, period_arg, by)
        buf = io.StringIO()
        report.write_csv(rows, buf)
        # a BOM so spreadsheets read Korean names as UTF-8
        body = buf.getvalue().encode("utf-8-sig")
        return server.response_class(body, status=200, mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="dcim-energy-{period}-{by}.csv"'})


def _add_auth(app: dash.Dash, config) -> None:
    settings = config.dashboard
    app.auth = None  # type: ignore[attr-defined]
    if not settings.auth_user:
        return
    from dcim.config import ConfigError, read_secret

    password = read_secret(settings.auth_password, "dashboard.auth_password")
    if password is None:  # the config refuses auth_user without auth_password
        raise ConfigError([("dashboard.auth_password", "basic auth needs both 'auth_user' and 'auth_password'")])
    app.auth = BasicAuth(app.server.wsgi_app, settings.auth_user, password)  # type: ignore[attr-defined]
    app.server.wsgi_app = app.auth


class BasicAuth:
    """WSGI middleware: HTTP basic auth on everything but /health."""

    def __init__(self, wsgi_app, user: str, password: str, open_paths=("/health",)):
        self.app = wsgi_app
        self.expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.open_paths = open_paths

    CHALLENGE = 'Basic realm="dcim", charset="UTF-8"'

    def challenge_for(self, path: str, header: str) -> str | None:
        """None when *path* is open or *header* carries the right credentials, else the challenge."""
        if path in self.open_paths:
            return None
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() == "basic" and hmac.compare_digest(value.strip().encode(), self.expected.encode()):
            return None
        return self.CHALLENGE

    def __call__(self, environ, start_response):
        challenge = self.challenge_for(environ.get("PATH_INFO", ""), environ.get("HTTP_AUTHORIZATION", ""))
        if challenge is None:
            return self.app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", challenge),
                                            *SECURITY_HEADERS])
        return [b"authentication required\n"]
