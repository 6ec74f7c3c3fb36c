"""Desired state: the caps the optimizer wants, each with a lease expiry, per host.

This is the crash-safety contract. The optimizer never leaves a cap that outlives it: every
cap is a *lease* (``expires_ns``) that the optimizer renews each cycle while telemetry is
fresh. Whoever applies caps (the in-process :class:`~optimizer.actuator.BackendActuator`, or a
GPU-node agent polling ``GET /v1/desired-state?host=H``) enforces the expiry on its own
clock: when a lease lapses — the optimizer was SIGKILLed, lost its store, or stopped renewing
because telemetry went stale — the GPU returns to its default limit. A GPU not listed in a
host's document must be at its default.

Document served to a GPU-node agent (JSON)::

    {"host": "A01-n01", "generated_ns": 1763860000000000000, "generated_at": "2026-11-23T01:06:40Z",
     "mode": "enforce", "lease_s": 300.0,
     "gpus": [{"index": 0, "uuid": "GPU-…", "power_limit_w": 525.0, "default_w": 700.0,
               "expires_ns": 1763860300000000000, "expires_at": "2026-11-23T01:11:40Z",
               "reason": "efficiency"}]}

Agent rule (:func:`effective_limits`): for each local GPU, the listed ``power_limit_w`` while
``now < expires_ns``, else its default limit. An agent that cannot reach the optimizer keeps
its last document and still reverts each GPU at its expiry.

The book can be persisted to a JSON file (atomic replace) so that a restarted optimizer knows
which caps it still owns and can revert them.
"""

from __future__ import annotations

import json
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from optimizer.features import utc_iso


@dataclass
class Lease:
    host: str
    index: int
    uuid: str
    power_limit_w: float
    default_w: float
    previous_w: float  # limit before the optimizer first touched this GPU
    expires_ns: int
    issued_ns: int
    reason: str = ""

    def active(self, now_ns: int) -> bool:
        return now_ns < self.expires_ns


class DesiredState:
    """Thread-safe book of leases, keyed by (host, GPU index); optionally file-backed."""

    def __init__(self, path: str | Path | None = None, *, mode: str = "enforce", lease_s: float = 300.0):
        self.path = Path(path) if path else None
        self.mode = mode
        self.lease_s = lease_s
        self._lock = threading.RLock()
        self._leases: dict[tuple[str, int], Lease] = {}
        self._deferred = 0
        self._dirty = False
        if self.path and self.path.exists():
            self._load()

    # -- book keeping -------------------------------------------------------------------------

    def put(self, lease: Lease) -> None:
        with self._lock:
            self._leases[(lease.host, lease.index)] = lease
            self._save_locked()

    def get(self, host: str, index: int) -> Lease | None:
        with self._lock:
            return self._leases.get((host, index))

    def renew(self, host: str, index: int, expires_ns: int) -> bool:
        with self._lock:
            lease = self._leases.get((host, index))
            if lease is None:
                return False
            lease.expires_ns = max(lease.expires_ns, expires_ns)
            self._save_locked()
            return True

    def drop(self, host: str, index: int) -> Lease | None:
        with self._lock:
            lease = self._leases.pop((host, index), None)
            self._save_locked()
            return lease

    def clear(self) -> list[Lease]:
        with self._lock:
            out = list(self._leases.values())
            self._leases.clear()
            self._save_locked()
            return out

    def leases(self) -> list[Lease]:
        with self._lock:
            return list(self._leases.values())

    def expired(self, now_ns: int) -> list[Lease]:
        with self._lock:
            return [lease for lease in self._leases.values() if not lease.active(now_ns)]

    # -- the agent-facing document --------------------------------------------------------------

    def document(self, host: str, now_ns: int) -> dict:
        """The JSON document for *host* (only leases still active at *now_ns*)."""
        with self._lock:
            gpus = [lease for (h, _), lease in self._leases.items() if h == host and lease.active(now_ns)]
        gpus.sort(key=lambda lease: lease.index)
        return {
            "host": host, "generated_ns": int(now_ns), "generated_at": utc_iso(now_ns), "mode": self.mode,
            "lease_s": self.lease_s,
            "gpus": [{"index": lease.index, "uuid": lease.uuid, "power_limit_w": round(lease.power_limit_w, 1),
                      "default_w": lease.default_w, "expires_ns": int(lease.expires_ns),
                      "expires_at": utc_iso(lease.expires_ns), "reason": lease.reason} for lease in gpus],
        }

    # -- persistence ----------------------------------------------------------------------------

    @contextmanager
    def deferred(self):
        """Batch changes into one file write at the end (the daemon writes its intents ahead of
        applying them in one batch, then the outcomes in a second)."""
        with self._lock:
            self._deferred += 1
        try:
            yield self
        finally:
            with self._lock:
                self._deferred -= 1
                if self._deferred == 0 and self._dirty:
                    self._save_locked()

    def _save_locked(self) -> None:
        if not self.path:
            return
        if self._deferred:
            self._dirty = True
            return
        self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"mode": self.mode, "leases": [asdict(v) for v in self._leases.values()]}),
                       encoding="utf-8")
        tmp.replace(self.path)

    def _load(self) -> None:
        assert self.path is not None  # only __init__ calls this, and only when the book has a file
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            for item in data.get("leases", []):
                lease = Lease(**item)
                self._leases[(lease.host, lease.index)] = lease
        except (OSError, ValueError, TypeError):
            self._leases = {}  # an unreadable book owns nothing; agents revert on expiry anyway


def effective_limits(document: dict | None, now_ns: int, defaults_w: dict[int, float]) -> dict[int, float]:
    """The agent rule: per local GPU index, the limit it must have now (W).

    *defaults_w* maps every local GPU index to its default limit. Listed GPUs get their
    ``power_limit_w`` until ``expires_ns``; everything else gets its default."""
    out = dict(defaults_w)
    gpus = document.get("gpus") if isinstance(document, dict) else None
    for g in gpus if isinstance(gpus, list) else []:  # a garbled document leaves every GPU at default
        try:
            index, limit, expires = int(g["index"]), float(g["power_limit_w"]), int(g["expires_ns"])
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
        if not math.isfinite(limit):  # NaN would clamp to the deepest cap
            continue
        if index in out and now_ns < expires:
            out[index] = limit
    return out
