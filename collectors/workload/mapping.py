"""Scheduler identities to tenants and job classes, and GPU holds to ``workload`` points (pure).

The mapping is data in the config (``[workload] tenants`` and ``job_classes``). Nothing is
dropped: an account the config does not map becomes tenant ``unmapped:<account>``, a job
class it does not map ``unknown`` (which the optimizer never caps), and a hold on a host or
GPU index with no known UUID is recorded as ``uuid = "unresolved:<host>:<index>"`` and
counted, so it shows on the dashboard and in the report's coverage instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from collectors.workload.base import GpuHold
from dcim.metrics import Point

UNMAPPED = "unmapped:"
UNKNOWN_CLASS = "unknown"


@dataclass(frozen=True)
class WorkloadMapping:
    tenants: Mapping[str, str]  # account or namespace → tenant
    job_classes: Mapping[str, str]  # partition, QoS or class-label value → class
    record_users: bool = False

    @classmethod
    def from_config(cls, workload) -> WorkloadMapping:
        return cls(dict(workload.tenants), dict(workload.job_classes), workload.record_users)

    def tenant(self, account: str) -> str:
        return self.tenants.get(account) or f"{UNMAPPED}{account or '-'}"

    def job_class(self, hold: GpuHold) -> str:
        for key in (hold.partition, hold.qos, hold.class_label):
            if key and key in self.job_classes:
                return self.job_classes[key]
        return UNKNOWN_CLASS


@dataclass
class MappedWorkload:
    points: list[Point]
    jobs: int  # distinct jobs holding GPUs
    unplaced: int  # holds whose GPU has no known UUID


def workload_points(holds: list[GpuHold], gpus: Mapping[tuple[str, int], str], mapping: WorkloadMapping, *,
                    site: str, source: str, now_ns: int) -> MappedWorkload:
    """A ``workload`` point for every GPU: its job's, or ``job = ""`` for each known GPU (in
    *gpus*, (host, index) → UUID) that no job holds, so the latest point always says what
    runs there now."""
    by_uuid: dict[str, tuple[str, dict]] = {}
    unplaced = 0
    for hold in holds:
        uuid = hold.uuid
        if uuid is None and hold.gpu_index is not None:
            uuid = gpus.get((hold.host, hold.gpu_index))
        if uuid is None:
            unplaced += 1
            uuid = f"unresolved:{hold.host}:{'-' if hold.gpu_index is None else hold.gpu_index}"
        by_uuid[uuid] = (hold.host, _fields(hold, mapping, source))
    for (host, _index), uuid in gpus.items():
        by_uuid.setdefault(uuid, (host, {"job": "", "source": source}))
    points = [Point("workload", {"site": site, "host": host, "uuid": uuid}, fields, now_ns)
              for uuid, (host, fields) in sorted(by_uuid.items())]
    return MappedWorkload(points, len({h.job for h in holds}), unplaced)


def _fields(hold: GpuHold, mapping: WorkloadMapping, source: str) -> dict:
    fields: dict = {"job": hold.job, "tenant": mapping.tenant(hold.account), "job_class": mapping.job_class(hold),
                    "account": hold.account, "source": source}
    if hold.start_ns is not None:
        fields["start_ns"] = int(hold.start_ns)
    if mapping.record_users and hold.user:
        fields["user"] = hold.user
    return fields
