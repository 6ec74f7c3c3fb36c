"""The optimizer's HTTP API: a Flask app served by waitress (:class:`dcim.web.WsgiServer`:
bounded connections, idle timeouts, body limits; idle clients cannot take it down).

Endpoints (JSON in and out):

- ``GET /health`` — no auth: ``{"status": "ok", "mode": …, "leases": n, "last_cycle_at": …}``.
- ``GET /v1/desired-state?host=H`` — for GPU-node agents; the document described in
  :mod:`optimizer.desired_state`.
- ``POST /v1/placement`` — body ``{"gpus": 4, "job_class": "training", "tenant": "…",
  "gpu_w": 500}`` → ``{"placement": {"slots": [{"host", "gpu"}], "cost_w", "strategy",
  "reasons": […]}, "ranking": [{"host", "marginal_facility_w"}, … top 10]}``; 409 when it
  fits nowhere, 503 before the first cycle.
- ``GET /v1/demand-response`` → ``{"demand_response": {budget_w, until_ns, until, actor, reason,
  started_ns, met} | null}``; ``POST /v1/demand-response`` with ``{"budget_w": W, "until_ns": UTC ns
  (or "until": ISO 8601 with its offset), "actor"?, "reason"?}`` starts or replaces the window and
  answers the same document; ``DELETE /v1/demand-response`` (body ``{"actor"?, "reason"?}`` optional)
  ends it: ``{"ended": true|false}``. 400 names a bad part; 503 where no daemon runs in this
  process. Semantics and audit: :mod:`optimizer.demand_response`.
- ``POST /v1/progress`` — a job's work done: one report ``{"job", "work_done", "unit",
  "tenant"?, "time_ns"?}`` or ``{"reports": [...]}``, checked by :mod:`optimizer.progress` and
  written as ``progress`` points. Answers ``{"accepted": n, "refused": n, "results": [{"job",
  "status", "reason"?, "error"?}]}``: 200 for a batch, and for one report 200 when accepted,
  else 400 (bad report), 409 (unknown job, out of order, absurd rate), 422 (time outside the
  window) or 503 (workload unreadable). ``GET /v1/progress/stats``: the counters, also in
  ``/health`` under ``progress``. The same routes, answering alike (:func:`handle_progress`),
  are served for many jobs on their own faster listener, :mod:`optimizer.progress_server`
  (``[optimizer] progress_port``).

Unknown paths are 404; a method no route takes is 404 for GET/HEAD/POST and 405 for the others
(PUT, PATCH, OPTIONS…), as the API answered before it moved to Flask.

Everything but ``/health`` requires ``Authorization: Bearer <token>`` (the :func:`_token_required`
decorator, checked before any body is read or any other check answers); the token comes from
the config's SecretRef (``[optimizer] token``), is compared in constant time
(``hmac.compare_digest``) and never logged. No token configured → those endpoints refuse every
request (fail closed). Request bodies are capped at 64 KiB (waitress refuses larger ones before
reading them); a body nested too deeply to parse is a 400 like any other bad body.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from dcim.metrics import Point
from dcim.web import Limits, WsgiServer
from optimizer.desired_state import DesiredState
from optimizer.placement import Job, PlacementState, place, rank_servers
from optimizer.progress import ProgressBook, parse_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}\Z")  # \Z: "$" lets a trailing newline in
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# Agents on every GPU node poll /v1/desired-state; placement answers in milliseconds.
LIMITS = Limits(connection_limit=1000, threads=4, max_body_bytes=MAX_BODY_BYTES + 1)
DR_PATH = "/v1/demand-response"
PROGRESS_STATUS = {"bad_report": 400, "unknown_job": 409, "out_of_order": 409, "absurd_rate": 409, "too_old": 422,
                   "in_future": 422, "workload_unavailable": 503}
UNAUTHORIZED = (401, {"error": "unauthorized"})
NO_DAEMON = (503, {"error": "demand response needs the optimizer daemon in this process"})
JSON_HEADERS = (("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"))
CHALLENGE = ("WWW-Authenticate", 'Bearer realm="dcim-optimizer"')

Answer = tuple[int, dict]


def json_response(code: int, body: dict) -> Response:
    """The API's one response shape: compact UTF-8 JSON, never cached; 401 carries its challenge."""
    headers = [*JSON_HEADERS, CHALLENGE] if code == 401 else list(JSON_HEADERS)
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), status=code, headers=headers)


def _token_required(view: Callable[..., Answer]) -> Callable[..., Answer]:
    """A view that answers only with the bearer token: 401 before the view runs otherwise."""

    @functools.wraps(view)
    def checked(api: OptimizerApi) -> Answer:
        if not api.authorized(request.environ.get("HTTP_AUTHORIZATION")):
            return UNAUTHORIZED
        return view(api)

    return checked


def body_length(environ) -> int:
    """The request's Content-Length; -1 when it is not a number (werkzeug would read that as 0)."""
    try:
        return int(environ.get("CONTENT_LENGTH") or "0")
    except ValueError:
        return -1


class OptimizerApi:
    def __init__(self, desired: DesiredState, *, token: str | None, host: str = "127.0.0.1", port: int = 0,
                 placement_state: Callable[[], PlacementState | None] | None = None, clock: Callable[[], int] | None = None,
                 health: Callable[[], dict] | None = None, progress: ProgressBook | None = None,
                 write_points: Callable[[list[Point]], None] | None = None, demand_response=None):
        """*progress* and *write_points* (the process's store writer) take ``POST /v1/progress``;
        without them it answers 503. *demand_response* (the daemon: ``set_demand_response``,
        ``demand_response_state``) takes ``/v1/demand-response``; without it, 503."""
        self.demand_response = demand_response
        self.desired = desired
        self.progress = progress if write_points is not None else None
        self.write_points = write_points
        self._token = token.encode("utf-8") if token else None
        self.placement_state = placement_state or (lambda: None)
        self.clock = clock or time.time_ns
        self.health = health or dict
        self.app = create_app(self)
        self._server = WsgiServer(self.wsgi, host, port, name="dcim-optimizer", limits=LIMITS)
        if self._token is None:
            log.warning("optimizer API has no token configured: /v1/* endpoints refuse every request")

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def connection_limit(self) -> int:
        return self._server.connection_limit

    def start(self) -> OptimizerApi:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def authorized(self, header: str | None) -> bool:
        return bearer_ok(self._token, header)

    # -- the views: (HTTP status, JSON answer); create_app routes to them ---------------------------

    def health_view(self) -> Answer:
        progress = {"progress": self.progress.stats()} if self.progress else {}
        return 200, {"status": "ok", "leases": len(self.desired.leases()), "mode": self.desired.mode,
                     **self.health(), **progress}

    @_token_required
    def desired_state_view(self) -> Answer:
        hosts = request.args.getlist("host")
        if len(hosts) != 1 or not HOST_NAME.match(hosts[0]):
            return 400, {"error": "give exactly one valid ?host="}
        return 200, self.desired.document(hosts[0], self.clock())

    @_token_required
    def progress_stats_view(self) -> Answer:
        return 200, self.progress.stats() if self.progress else {}

    @_token_required
    def placement_view(self) -> Answer:
        length = body_length(request.environ)
        if length < 0 or length > MAX_BODY_BYTES:
            return (413 if length > MAX_BODY_BYTES else 400), {"error": "bad Content-Length"}
        try:
            job = parse_job(json.loads(request.environ["wsgi.input"].read(length) or b"{}"))
        except RecursionError:  # "[[[[…" 64 KiB deep: the parser's own recursion bound
            return 400, {"error": "body nested too deeply"}
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}
        state = self.placement_state()
        if state is None:
            return 503, {"error": "no telemetry yet"}
        state = replace(state, free=[list(f) for f in state.free], busy_gpus=state.busy_gpus.copy(),
                        rack_headroom_w=state.rack_headroom_w.copy())
        ranking = [{"host": h, "marginal_facility_w": round(c, 1) if math.isfinite(c) else None}
                   for h, c in rank_servers(state, job.gpu_w)[:10]]
        result = place(job, state, commit=False)
        if result is None:
            return 409, {"error": f"no placement for {job.gpus} GPU(s)", "ranking": ranking}
        return 200, {"placement": result.to_json(), "ranking": ranking}

    @_token_required
    def demand_response_view(self) -> Answer:
        """GET reads the window, POST starts or replaces it, DELETE ends it."""
        if self.demand_response is None:
            return NO_DAEMON
        if request.method in ("GET", "HEAD"):
            return 200, {"demand_response": self.demand_response.demand_response_state()}
        length = body_length(request.environ)
        if not 0 <= length <= MAX_BODY_BYTES:
            return 400, {"error": "bad Content-Length"}
        delete = request.method == "DELETE"
        try:
            body = decode_json(request.environ["wsgi.input"].read(length)) if length else {}
            budget_w, until_ns, actor, reason = parse_dr(body, self.clock(), delete=delete)
            before = self.demand_response.demand_response_state()
            self.demand_response.set_demand_response(budget_w, until_ns, actor, reason)
        except ValueError as exc:  # DemandResponseError is one
            return 400, {"error": str(exc)}
        if delete:
            return 200, {"ended": before is not None}
        return 200, {"demand_response": self.demand_response.demand_response_state()}

    def progress_view(self, environ=None) -> Answer:
        """Counted before the token check (the intake's counters include refused requests). Takes
        the WSGI *environ* itself, so that :meth:`wsgi` can answer it without Flask."""
        environ = request.environ if environ is None else environ
        book = self.progress
        if book is not None:
            book.count("requests")
        if not self.authorized(environ.get("HTTP_AUTHORIZATION")):
            if book is not None:
                book.count("unauthorized")
            return UNAUTHORIZED
        if book is None or self.write_points is None:
            return 503, {"error": "progress intake is not configured in this process"}
        length = body_length(environ)
        if not 0 < length <= MAX_BODY_BYTES:
            book.count("bad_body")
            return 400, {"error": "a JSON body of 1 byte to 64 KiB is needed"}
        return handle_progress(book, self.write_points, environ["wsgi.input"].read(length))

    def wsgi(self, environ, start_response):
        """The WSGI entry point. ``POST /v1/progress``, posted by many jobs, skips Flask's request
        machinery (the same view, called with the environ): measured in process, the app took 27 µs
        of CPU a post before Flask, ~125 µs through Flask and 27 µs on this path, i.e. ~440 µs a post
        through waitress (bench/progress_api.py's waitress shape, 2,274 posts per CPU-second) would
        have become ~540. Every other request, and every other method on that path, goes through
        the Flask app (agents' ``GET /v1/desired-state``: ~1,800 a CPU-second, ~2,700 before)."""
        if environ.get("PATH_INFO") == "/v1/progress" and environ.get("REQUEST_METHOD") == "POST":
            code, body = self.progress_view(environ)
            _log_request(environ, code)
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers = [*JSON_HEADERS, ("Content-Length", str(len(data)))]
            start_response(f"{code} {HTTPStatus(code).phrase}", [*headers, CHALLENGE] if code == 401 else headers)
            return [data]
        return self.app(environ, start_response)


# (path, methods, view): HEAD comes with GET; no automatic OPTIONS (it was never answered).
ROUTES: tuple[tuple[str, tuple[str, ...], Callable[[OptimizerApi], Answer]], ...] = (
    ("/health", ("GET",), OptimizerApi.health_view),
    ("/v1/desired-state", ("GET",), OptimizerApi.desired_state_view),
    ("/v1/progress/stats", ("GET",), OptimizerApi.progress_stats_view),
    (DR_PATH, ("GET", "POST", "DELETE"), OptimizerApi.demand_response_view),
    ("/v1/placement", ("POST",), OptimizerApi.placement_view),
    ("/v1/progress", ("POST",), OptimizerApi.progress_view),
)


def create_app(api: OptimizerApi) -> Flask:
    """The Flask app answering *api*'s routes."""
    app = Flask(__name__)

    for path, methods, view in ROUTES:
        app.add_url_rule(path, view.__name__, functools.partial(_answer, api, view), methods=list(methods),
                         provide_automatic_options=False)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code in (404, 405) and request.method not in ("GET", "HEAD", "POST"):
            return json_response(405, {"error": "method not allowed"})
        if exc.code in (404, 405):
            return json_response(404, {"error": "not found"})
        return json_response(exc.code or 500, {"error": exc.description or exc.name})

    return app


def _answer(api: OptimizerApi, view: Callable[[OptimizerApi], Answer]) -> Response:
    code, body = view(api)
    _log_request(request.environ, code)
    return json_response(code, body)


def _log_request(environ, code: int) -> None:
    """The request line without its query string (a client that puts a token in the URL must
    not leak it here); headers never."""
    log.debug("%s %s %s %d", environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD"),
              environ.get("PATH_INFO"), code)


def bearer_ok(token: bytes | None, header: str | None) -> bool:
    """Whether *header* is ``Bearer <token>``; constant-time, and False when no token is set."""
    if token is None or not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8"), token)


def decode_json(body: bytes):
    """A request body's JSON value; ValueError (with a message for the client) for anything else."""
    try:
        return json.loads(body)
    except RecursionError:  # "[[[[…" 64 KiB deep: the parser's own recursion bound
        raise ValueError("body nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None


def handle_progress(book: ProgressBook, write_points: Callable[[list[Point]], None], body: bytes) -> tuple[int, dict]:
    """``POST /v1/progress`` once the caller has checked the token and read *body* (1 byte to
    MAX_BODY_BYTES): (HTTP status, JSON answer). Shared by this WSGI app and the ASGI listener
    (:mod:`optimizer.progress_server`), so both answer alike."""
    try:
        reports, batch = parse_body(decode_json(body))
    except ValueError as exc:
        book.count("bad_body")
        return 400, {"error": str(exc)}
    points, results = book.accept(reports)
    if points:
        try:
            write_points(points)
        except Exception as exc:  # noqa: BLE001 — the writer closed or broken: say so, never a 500
            book.count("write_failed")
            log.error("could not hand %d progress points to the store writer: %s", len(points), exc)
            return 503, {"error": "the store writer is not available; retry later"}
    accepted = len(points)
    answer = {"accepted": accepted, "refused": len(results) - accepted, "results": results}
    if not batch and not accepted:  # one report: its fate in the status code too
        return PROGRESS_STATUS.get(results[0]["reason"], 400), answer
    return 200, answer


def parse_dr(body, now_ns: int, *, delete: bool) -> tuple[float | None, int | None, str, str]:
    """A ``/v1/demand-response`` body as (budget_w, until_ns, actor, reason); ValueError naming the
    bad key. Range checks: :func:`optimizer.demand_response.check_request` (the daemon's)."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    allowed = {"actor", "reason"} if delete else {"budget_w", "until_ns", "until", "actor", "reason"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; expected {sorted(allowed)}")
    actor, reason = body.get("actor", "api"), body.get("reason", "")
    if delete:
        return None, None, actor, reason
    if "budget_w" not in body:
        raise ValueError("'budget_w' (facility watts) is required; DELETE ends a window")
    if ("until_ns" in body) == ("until" in body):
        raise ValueError("give exactly one of 'until_ns' (UTC nanoseconds) or 'until' (ISO 8601 with its offset)")
    until_ns = body.get("until_ns")
    if "until" in body:
        until_ns = _iso_ns(body["until"])
    return body["budget_w"], until_ns, actor, reason


def _iso_ns(value) -> int:
    from datetime import datetime

    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("'until' must be an ISO 8601 time with its offset, e.g. 2026-07-01T18:00:00+09:00")
    try:
        t = datetime.fromisoformat(value)  # 3.11: "Z" and offsets too
    except ValueError:
        raise ValueError(f"'until' is not an ISO 8601 time: {value!r}") from None
    if t.tzinfo is None:
        raise ValueError(f"'until' needs its UTC offset (e.g. +09:00 or Z): {value!r}")
    return round(t.timestamp() * 1e9)


def parse_job(body) -> Job:
    """Validate a placement request body."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    gpus = body.get("gpus")
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 1 <= gpus <= 100000:
        raise ValueError("'gpus' must be an integer between 1 and 100000")
    job_class = body.get("job_class", "training")
    tenant = body.get("tenant")
    for key, value in (("job_class", job_class), ("tenant", tenant)):
        if value is not None and (not isinstance(value, str) or not NAME.match(value)):
            raise ValueError(f"'{key}' must be a name")
    gpu_w = body.get("gpu_w")
    if gpu_w is not None and (not isinstance(gpu_w, (int, float)) or isinstance(gpu_w, bool) or not 0 < gpu_w <= 2000):
        raise ValueError("'gpu_w' must be a number of watts (0, 2000]")
    return Job(gpus=gpus, job_class=job_class, tenant=tenant, gpu_w=float(gpu_w) if gpu_w is not None else None,
               id=str(body.get("id", ""))[:64])
