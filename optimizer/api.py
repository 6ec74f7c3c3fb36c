"""The optimizer's HTTP API (stdlib ``http.server``, one thread per request).

Endpoints (JSON in and out):

- ``GET /health`` — no auth: ``{"status": "ok", "mode": …, "leases": n, "last_cycle_at": …}``.
- ``GET /v1/desired-state?host=H`` — for GPU-node agents; the document described in
  :mod:`optimizer.desired_state`.
- ``POST /v1/placement`` — body ``{"gpus": 4, "job_class": "training", "tenant": "…",
  "gpu_w": 500}`` → ``{"placement": {"slots": [{"host", "gpu"}], "cost_w", "strategy",
  "reasons": […]}, "ranking": [{"host", "marginal_facility_w"}, … top 10]}``; 409 when it
  fits nowhere, 503 before the first cycle.

Everything but ``/health`` requires ``Authorization: Bearer <token>``; the token comes from
the config's SecretRef (``[optimizer] token``), is compared in constant time
(``hmac.compare_digest``) and never logged. No token configured → those endpoints refuse every
request (fail closed). Request bodies are capped at 64 KiB.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from optimizer.desired_state import DesiredState
from optimizer.placement import Job, place, rank_servers

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}\Z")  # \Z: "$" lets a trailing newline in
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class OptimizerApi:
    def __init__(self, desired: DesiredState, *, token: str | None, host: str = "127.0.0.1", port: int = 0,
                 placement_state: Callable[[], object] | None = None, clock: Callable[[], int] | None = None,
                 health: Callable[[], dict] | None = None):
        import time

        self.desired = desired
        self._token = token.encode("utf-8") if token else None
        self.placement_state = placement_state or (lambda: None)
        self.clock = clock or time.time_ns
        self.health = health or (lambda: {})
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        if self._token is None:
            log.warning("optimizer API has no token configured: /v1/* endpoints refuse every request")

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "OptimizerApi":
        self._thread = threading.Thread(target=self._server.serve_forever, name="optimizer-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def authorized(self, header: str | None) -> bool:
        if self._token is None or not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode("utf-8"), self._token)

    # -- request handling ---------------------------------------------------------------------------

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "dcim-optimizer"
            sys_version = ""

            def log_message(self, fmt, *args):  # request line only; headers (the token) never
                # nor the query string: a client that puts a token in the URL must not leak it here
                log.debug("%s %s", self.address_string(), re.sub(r"\?[^\s\"]*", "?…", fmt % args))

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                if code == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="dcim-optimizer"')
                self.end_headers()
                self.wfile.write(data)

            def _auth(self) -> bool:
                if api.authorized(self.headers.get("Authorization")):
                    return True
                self._send(401, {"error": "unauthorized"})
                return False

            def do_GET(self):  # noqa: N802
                url = urlsplit(self.path)
                if url.path == "/health":
                    self._send(200, {"status": "ok", "leases": len(api.desired.leases()), "mode": api.desired.mode,
                                     **api.health()})
                    return
                if url.path == "/v1/desired-state":
                    if not self._auth():
                        return
                    hosts = parse_qs(url.query).get("host", [])
                    if len(hosts) != 1 or not HOST_NAME.match(hosts[0]):
                        self._send(400, {"error": "give exactly one valid ?host="})
                        return
                    self._send(200, api.desired.document(hosts[0], api.clock()))
                    return
                self._send(404, {"error": "not found"})

            def do_POST(self):  # noqa: N802
                url = urlsplit(self.path)
                if url.path != "/v1/placement":
                    self._send(404, {"error": "not found"})
                    return
                if not self._auth():
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY_BYTES:
                    self._send(413 if length > MAX_BODY_BYTES else 400, {"error": "bad Content-Length"})
                    return
                try:
                    job = parse_job(json.loads(self.rfile.read(length) or b"{}"))
                except (ValueError, TypeError) as exc:
                    self._send(400, {"error": str(exc)})
                    return
                state = api.placement_state()
                if state is None:
                    self._send(503, {"error": "no telemetry yet"})
                    return
                from dataclasses import replace

                state = replace(state, free=[list(f) for f in state.free], busy_gpus=state.busy_gpus.copy(),
                                rack_headroom_w=state.rack_headroom_w.copy())
                ranking = [{"host": h, "marginal_facility_w": round(c, 1) if math.isfinite(c) else None}
                           for h, c in rank_servers(state, job.gpu_w)[:10]]
                result = place(job, state, commit=False)
                if result is None:
                    self._send(409, {"error": f"no placement for {job.gpus} GPU(s)", "ranking": ranking})
                    return
                self._send(200, {"placement": result.to_json(), "ranking": ranking})

        return Handler


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
