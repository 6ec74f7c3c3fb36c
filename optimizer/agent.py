"""The GPU-node agent's control loop: the local controller with veto power.

Runs next to the GPUs (one per node), independent of the optimizer. Each tick it fetches the
host's desired-state document (``GET /v1/desired-state?host=H`` with a bearer token, or any
callable), and puts in force :func:`~optimizer.desired_state.effective_limits`: the leased cap
while the lease holds, the default limit otherwise. It re-checks every limit against the
GPU's own constraints and the site's ``cap_fraction_floor`` (the second verification layer
of safety-first control, reference §1.3). If the optimizer dies the agent keeps its last
document and reverts each GPU when the lease lapses; if the fetch fails repeatedly it still
reverts on expiry.

The agent trusts the optimizer no further than it must:

- a document must name this host;
- a lease lasts at most ``lease_s`` from when the agent *received* the document, on its own
  monotonic clock, whatever ``expires_ns`` says (the optimizer's clock may be wrong, or the
  document hostile);
- the fetch has one deadline for the whole exchange (a server trickling a byte at a time
  cannot hold the loop), a size limit, and follows no redirect (the token goes nowhere else);
- every cap is written to the :class:`~optimizer.cap_record.CapRecord` before it is set, and
  :meth:`NodeAgent.shutdown` reverts everything before the process tears anything down.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable

from dcim.gpu_backend import GpuBackend, GpuError, PowerConstraints
from optimizer.cap_record import SAME_W, CapRecord, CapRecordError, revert_all
from optimizer.desired_state import effective_limits

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1 << 20  # a host's document is ~200 bytes a GPU; 1 MiB is thousands of GPUs


class NodeAgent:
    def __init__(self, backend: GpuBackend, fetch: Callable[[], dict | None], *,
                 host: str | None = None, lease_s: float | None = None, floor_fraction: float = 0.0,
                 record: CapRecord | None = None, clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic):
        self.backend = backend
        self.fetch = fetch
        self.host = host  # when set, a document for another host is refused
        self.lease_s = lease_s  # when set, no document is trusted longer than this after receipt
        self.floor_fraction = floor_fraction
        self.record = record or CapRecord(None)
        self.clock = clock
        self.monotonic = monotonic
        self.document: dict | None = None
        self.received_at: float | None = None
        self.fetch_errors = 0
        self.closed = False
        self._apply_lock = threading.Lock()  # a tick's sets and shutdown's reverts never interleave

    def tick(self) -> dict[int, float]:
        """One pass; returns the limits now in force, per GPU index (W)."""
        try:
            doc = self.fetch()
            if doc is not None:
                self._accept(doc)
        except Exception as exc:  # noqa: BLE001 — network, server or document error: keep the last document
            self.fetch_errors += 1
            log.warning("desired-state fetch failed (%s: %s); keeping the last document", type(exc).__name__,
                        str(exc)[:200])
        with self._apply_lock:
            if self.closed:
                return {}
            return self._apply(self._trusted_document())

    def _accept(self, doc: object) -> None:
        if not isinstance(doc, dict):
            raise ValueError("desired-state document is not a JSON object")
        if self.host is not None and doc.get("host") != self.host:
            raise ValueError(f"desired-state document is for host {str(doc.get('host'))[:80]!r}, not {self.host!r}")
        self.document, self.received_at = doc, self.monotonic()

    def _trusted_document(self) -> dict | None:
        if self.document is None or self.lease_s is None or self.received_at is None:
            return self.document
        if self.monotonic() - self.received_at >= self.lease_s:
            return None  # older than any lease may run: every GPU back to default
        return self.document

    def _apply(self, document: dict | None) -> dict[int, float]:
        defaults: dict[int, float] = {}
        cons: dict[int, PowerConstraints] = {}
        uuids: dict[int, str] = {}
        for dev in self.backend.devices():
            try:
                c = self.backend.power_constraints(dev.index)
            except GpuError:
                continue
            defaults[dev.index], cons[dev.index], uuids[dev.index] = c.default_w, c, dev.uuid
        want = effective_limits(document, self.clock(), defaults)
        out = {}
        for index, limit in want.items():
            c = cons[index]
            if limit < c.default_w:  # a cap: never below the site's floor share of the maximum
                limit = max(limit, self.floor_fraction * c.max_w)
            target = c.clamp(limit)  # veto anything outside the GPU's own constraints
            try:
                out[index] = self._set(index, uuids[index], c.default_w, target)
            except (GpuError, CapRecordError) as exc:
                log.warning("GPU %d: cannot set %.0f W: %s", index, target, exc)
        return out

    def _set(self, index: int, uuid: str, default_w: float, target_w: float) -> float:
        at_default = abs(target_w - default_w) <= SAME_W
        if abs(self.backend.power_limit_w(index) - target_w) > SAME_W:
            if not at_default:
                self.record.will_set(uuid, default_w, target_w)  # raises: then no cap is set
            self.backend.set_power_limit_w(index, target_w)
        now_w = self.backend.power_limit_w(index)
        if at_default and abs(now_w - default_w) <= SAME_W:
            self.record.reverted(uuid)
        return now_w

    def shutdown(self) -> int:
        """Stop applying and return every GPU to its default. Idempotent; call it before
        anything the GPU backend needs is torn down. Returns how many GPUs failed."""
        with self._apply_lock:
            self.closed = True
            return revert_all(self.backend, self.record)


class FetchError(Exception):
    """The optimizer's answer was not a usable desired-state document."""


def http_fetcher(base_url: str, host: str, token: str, *, timeout_s: float = 5.0,
                 max_bytes: int = MAX_DOCUMENT_BYTES) -> Callable[[], dict]:
    """A fetch callable for :class:`NodeAgent` against the optimizer API.

    *timeout_s* bounds the whole exchange (connect, headers and body): a watchdog shuts the
    socket down at the deadline. Only a 200 is accepted: a redirect is an error, never
    followed, so the token reaches no other address. Bodies over *max_bytes* are refused
    before they are read whole."""
    url = urllib.parse.urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"optimizer URL must be http(s)://host[:port]: {base_url!r}")
    hostname = url.hostname  # a str here: checked above (the closure below cannot see that)
    path = f"{url.path.rstrip('/')}/v1/desired-state?{urllib.parse.urlencode({'host': host})}"
    connection = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection

    def fetch() -> dict:
        conn = connection(hostname, url.port, timeout=timeout_s)
        expired = threading.Event()

        def abort() -> None:
            expired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(timeout_s, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status} {resp.reason[:80]}" +
                                 (" (redirects are not followed)" if 300 <= resp.status < 400 else ""))
            body = _read_limited(resp, max_bytes)
            return json.loads(body.decode("utf-8"))
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set():
                raise FetchError(f"no complete answer within {timeout_s:g} s") from exc
            raise
        finally:
            watchdog.cancel()
            conn.close()

    return fetch


def _read_limited(resp: http.client.HTTPResponse, max_bytes: int) -> bytes:
    length = resp.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise FetchError(f"document of {int(length)} bytes is over the {max_bytes}-byte limit")
    chunks, size = [], 0
    while chunk := resp.read(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"document over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
