"""The GPU-node agent's control loop: the local controller with veto power.

Runs next to the GPUs (one per node), independent of the optimizer. Each tick it fetches the
host's desired-state document (``GET /v1/desired-state?host=H`` with a bearer token, or any
callable), and puts in force :func:`~optimizer.desired_state.effective_limits`: the leased cap
while the lease holds, the default limit otherwise. It re-checks every limit against the
GPU's own constraints (the second verification layer of safety-first control, reference
§1.3). If the optimizer dies the agent keeps its last document and reverts each GPU when the
lease lapses; if the fetch fails repeatedly it still reverts on expiry.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import urllib.request
from typing import Callable

from dcim.gpu_backend import GpuBackend, GpuError
from optimizer.desired_state import effective_limits

log = logging.getLogger(__name__)


class NodeAgent:
    def __init__(self, backend: GpuBackend, fetch: Callable[[], dict | None], *,
                 clock: Callable[[], int] = time.time_ns):
        self.backend = backend
        self.fetch = fetch
        self.clock = clock
        self.document: dict | None = None
        self.fetch_errors = 0

    def tick(self) -> dict[int, float]:
        """One pass; returns the limits now in force, per GPU index (W)."""
        try:
            doc = self.fetch()
            if doc is not None and not isinstance(doc, dict):
                raise ValueError("desired-state document is not a JSON object")
            if doc is not None:
                self.document = doc
        except Exception as exc:  # noqa: BLE001 — network or server error: keep the last document
            self.fetch_errors += 1
            log.warning("desired-state fetch failed (%s); keeping the last document", type(exc).__name__)
        now = self.clock()
        defaults, cons = {}, {}
        for dev in self.backend.devices():
            try:
                c = self.backend.power_constraints(dev.index)
            except GpuError:
                continue
            defaults[dev.index], cons[dev.index] = c.default_w, c
        want = effective_limits(self.document, now, defaults)
        out = {}
        for index, limit in want.items():
            target = cons[index].clamp(limit)  # veto anything outside the GPU's own constraints
            try:
                if abs(self.backend.power_limit_w(index) - target) > 0.5:
                    self.backend.set_power_limit_w(index, target)
                out[index] = self.backend.power_limit_w(index)
            except GpuError as exc:
                log.warning("GPU %d: cannot set %.0f W: %s", index, target, exc)
        return out


def http_fetcher(base_url: str, host: str, token: str, *, timeout_s: float = 5.0) -> Callable[[], dict]:
    """A fetch callable for :class:`NodeAgent` against the optimizer API."""
    url = f"{base_url.rstrip('/')}/v1/desired-state?{urllib.parse.urlencode({'host': host})}"

    def fetch() -> dict:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 — URL from config
            return json.loads(resp.read().decode("utf-8"))

    return fetch
