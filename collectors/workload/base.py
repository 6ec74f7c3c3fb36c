"""What a workload source reports: each job's hold on each GPU, as the scheduler says it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class WorkloadError(Exception):
    """The scheduler could not be read (down, slow, an answer that does not parse). The message
    names the source and never holds a secret."""


@dataclass(frozen=True)
class GpuHold:
    """One job holding one GPU.

    Slurm names a GPU by its index on a node (``gres_detail`` ``IDX:0-2``): *host* and
    *gpu_index*, with *uuid* None until the collector resolves it from the GPU telemetry.
    Kubernetes and dcgm-exporter name the UUID itself."""

    job: str
    host: str
    account: str  # Slurm account, Kubernetes namespace: what the tenant comes from
    gpu_index: int | None = None
    uuid: str | None = None
    partition: str = ""  # Slurm partition
    qos: str = ""  # Slurm QoS
    class_label: str = ""  # the value of the job-class pod label (Kubernetes)
    start_ns: int | None = None
    user: str | None = None  # recorded only where [workload] record_users is set
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class WorkloadSource(ABC):
    """A scheduler, read once per poll. ``poll`` blocks (the collector runs it off the event
    loop) and raises :class:`WorkloadError` when the scheduler cannot be read."""

    name: str = "workload"  # slurm, kubernetes, dcgm: the `source` field of each point
    target: str = "scheduler"  # the `collector` measurement's target tag (e.g. the controller)

    @abstractmethod
    def poll(self) -> list[GpuHold]:
        """Every GPU hold of every running job, now."""

    def unreachable_hosts(self) -> set[str]:
        """Hosts the last poll could not read although it succeeded (one of several endpoints
        down): the collector writes no idle point for their GPUs, so an unread GPU never looks idle."""
        return set()

    def partial_error(self) -> str | None:
        """Why part of the last poll failed, for the ``collector`` point (ok stays True)."""
        return None

    def close(self) -> None:  # noqa: B027 (optional hook: a source holding nothing keeps the no-op)
        """Release connections."""
