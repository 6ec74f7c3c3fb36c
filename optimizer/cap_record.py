"""The caps a GPU-node agent has set and not yet reverted, on disk.

A power limit outlives the process that set it: on a real GPU it stays until someone sets
another one or the driver reloads. So the agent writes down each cap *before* it sets it
(write-ahead), and forgets it once the GPU is back at its default. Whatever kills the agent
(SIGKILL after systemd's stop timeout, a crash, a power cut of the host's OS but not the
GPUs' state), the record says which limits are the agent's to undo, and

- a restarted agent reverts them at start, before its first fetch from the optimizer;
- ``dcim agent --revert`` (the unit's ``ExecStopPost``) reverts them after any exit.

Only limits the agent itself set are reverted from the record: a GPU whose limit has since
been changed by someone else (an operator's ``nvidia-smi -pl``) is left as it is, and said so.
GPUs are keyed by UUID: indices can change across reboots.

File format (JSON, replaced atomically and fsynced)::

    {"gpus": [{"uuid": "GPU-…", "default_w": 700.0, "set_w": [450.0, 430.0]}]}

``set_w`` keeps the last few limits written: a crash between writing the record and the set
leaves the GPU at any one of them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from dcim.gpu_backend import GpuBackend, GpuError

log = logging.getLogger(__name__)

KEEP_LIMITS = 3  # the last limits written, any of which the GPU may hold after a crash
SAME_W = 0.5  # NVML rounds limits to its own granularity (< 1 W)


class CapRecordError(OSError):
    """The record cannot be written: the agent must not set a cap it could not undo later."""


class CapRecord:
    """File-backed record of this agent's caps, keyed by GPU UUID (thread-safe)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._gpus: dict[str, dict] = {}
        if self.path is not None and self.path.exists():
            self._gpus = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> dict[str, dict]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            gpus = {}
            for item in data.get("gpus", []):
                limits = [float(w) for w in item.get("set_w", [])]
                gpus[str(item["uuid"])] = {"uuid": str(item["uuid"]), "default_w": float(item["default_w"]),
                                           "set_w": limits[-KEEP_LIMITS:]}
            return gpus
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # Unreadable: nothing is known to be ours. Every tick still puts unlisted GPUs at
            # their default, so a cap is not stranded by this, only not undone before contact.
            log.error("cap record %s unreadable (%s): starting empty", path, exc)
            return {}

    def check_writable(self) -> None:
        """Write the record once now, so an unwritable path is found at start, not at the first cap."""
        with self._lock:
            self._save_locked()

    def entries(self) -> list[dict]:
        with self._lock:
            return [dict(e, set_w=list(e["set_w"])) for e in self._gpus.values()]

    def will_set(self, uuid: str, default_w: float, limit_w: float) -> None:
        """Record *limit_w* before it is set on GPU *uuid*; raises CapRecordError if it cannot."""
        with self._lock:
            entry = self._gpus.setdefault(uuid, {"uuid": uuid, "default_w": default_w, "set_w": []})
            if any(abs(w - limit_w) <= SAME_W for w in entry["set_w"][-1:]):
                return
            entry["set_w"] = (entry["set_w"] + [float(limit_w)])[-KEEP_LIMITS:]
            self._save_locked()

    def reverted(self, uuid: str) -> None:
        """GPU *uuid* is back at its default: nothing of the agent's is left on it."""
        with self._lock:
            if self._gpus.pop(uuid, None) is not None:
                try:
                    self._save_locked()
                except CapRecordError as exc:  # a stale entry only causes a harmless check later
                    log.warning("%s", exc)

    def _save_locked(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"gpus": list(self._gpus.values())}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise CapRecordError(f"cannot write the cap record {self.path} (agent.cap_record_path): "
                                 f"{exc.strerror or exc}") from exc


def revert_leftovers(backend: GpuBackend, record: CapRecord) -> int:
    """Return to default every GPU still at a limit the record says this agent set.

    A GPU already at its default, or gone from this host, is dropped from the record; one at
    a limit the agent did not set is left as it is. Returns how many could not be reverted
    (they stay in the record, for the next try)."""
    by_uuid = {dev.uuid: dev.index for dev in backend.devices()}
    failed = 0
    for entry in record.entries():
        uuid = entry["uuid"]
        index = by_uuid.get(uuid)
        if index is None:
            log.warning("GPU %s from the cap record is not on this host any more: forgotten", uuid)
            record.reverted(uuid)
            continue
        try:
            default_w = backend.power_constraints(index).default_w
            now_w = backend.power_limit_w(index)
            if abs(now_w - default_w) <= SAME_W:
                record.reverted(uuid)
            elif any(abs(now_w - w) <= SAME_W for w in entry["set_w"]):
                backend.set_power_limit_w(index, default_w)
                record.reverted(uuid)
                log.info("GPU %d: the agent's %.0f W cap left from before reverted to its default %.0f W",
                         index, now_w, default_w)
            else:
                log.warning("GPU %d is at %.0f W, not a limit the agent set (%s W): left as it is", index,
                            now_w, "/".join(f"{w:.0f}" for w in entry["set_w"]))
                record.reverted(uuid)
        except GpuError as exc:
            failed += 1
            log.error("GPU %d: could not revert the agent's cap left from before: %s", index, exc)
    return failed


def revert_all(backend: GpuBackend, record: CapRecord | None = None) -> int:
    """Every GPU back to its default limit (the agent's exit). Returns how many failed."""
    failed = 0
    for dev in backend.devices():
        try:
            default_w = backend.power_constraints(dev.index).default_w
            if abs(backend.power_limit_w(dev.index) - default_w) > SAME_W:
                backend.set_power_limit_w(dev.index, default_w)
                log.info("GPU %d back to its default %.0f W", dev.index, default_w)
            if record is not None:
                record.reverted(dev.uuid)
        except GpuError as exc:
            failed += 1
            log.error("GPU %d: could not restore the default limit: %s", dev.index, exc)
    return failed
