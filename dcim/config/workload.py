"""[workload], [dcgm_exporter] and [[progress_scrape]]: which job holds which GPU, from the
site's scheduler, and how much work each job does."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcim.config.base import (
    MAX_TIMEOUT_S,
    Name,
    SecretRef,
    Strict,
    check_url,
)

JOB_CLASSES = ("training", "fine_tuning", "inference", "batch", "unknown")
JobClass = Literal["training", "fine_tuning", "inference", "batch", "unknown"]


class SlurmSource(Strict):
    """Slurm 22.05+: ``squeue --json`` on a host that is a Slurm client, or slurmrestd."""

    mode: Literal["cli", "rest"] = "cli"
    squeue: str = "squeue"  # the command (a path, or a name on PATH); run as an argv list, no shell
    slurm_conf: Path | None = None  # SLURM_CONF for the command; default: Slurm's own
    rest_url: str | None = None  # slurmrestd, e.g. http://slurm-ctl:6820
    rest_user: Name | None = None  # X-SLURM-USER-NAME
    rest_token: SecretRef | None = None  # X-SLURM-USER-TOKEN (a JWT from `scontrol token`)
    timeout_s: float = Field(10.0, ge=0.05, le=MAX_TIMEOUT_S)

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "slurmrestd authenticates with rest_user and rest_token")

    @model_validator(mode="after")
    def _rest_needs_url(self) -> SlurmSource:
        if self.mode == "rest" and self.rest_url is None:
            raise ValueError("mode = 'rest' needs 'rest_url'")
        return self


class KubernetesSource(Strict):
    """Kubernetes: the kubelet's PodResources API on each GPU node (read by ``dcim agent``)."""

    pod_resources_socket: Path = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
    # The pod label whose value names the job class (mapped through [workload] job_classes).
    class_label: str = Field("dcim.io/job-class", min_length=1, max_length=253)
    # The pod label (or annotation) naming the job; default: the pod's namespace/name.
    job_label: str | None = Field(None, min_length=1, max_length=253)
    timeout_s: float = Field(5.0, ge=0.05, le=MAX_TIMEOUT_S)


class DcgmExporterSettings(Strict):
    """An existing dcgm-exporter on each GPU node: GPU telemetry and (on Kubernetes) pod labels."""

    urls: list[str] = []  # each node's /metrics, e.g. http://gpu-node-1:9400/metrics
    # `dcim collect` scrapes GPU telemetry from these instead of a dcim agent on every node.
    telemetry: bool = False
    interval_s: float = Field(10.0, ge=1, le=3600)
    timeout_s: float = Field(5.0, ge=0.05, le=MAX_TIMEOUT_S)
    # The pod label dcgm-exporter exports (with --kubernetes-enable-pod-labels) naming the job class.
    class_label: str = Field("dcim.io/job-class", min_length=1, max_length=253)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [check_url(u, "dcgm-exporter takes no credentials") for u in value]


class WorkloadSettings(Strict):
    """Which job holds which GPU, polled by the collector from the site's scheduler."""

    source: Literal["none", "slurm", "kubernetes", "dcgm"] = "none"
    interval_s: float = Field(30.0, ge=1, le=3600)
    # Scheduler identity → tenant: a Slurm account, or a Kubernetes namespace. Unlisted ones are
    # recorded as tenant "unmapped:<account>": visible in reports, never dropped.
    tenants: dict[str, Name] = {}
    # Job class by Slurm partition, QoS, or the Kubernetes class label's value (first match in
    # that order); unlisted: "unknown", which the optimizer never caps.
    job_classes: dict[str, JobClass] = {}
    # User names are personal data: recorded only when billing needs them.
    record_users: bool = False
    slurm: SlurmSource = SlurmSource()
    kubernetes: KubernetesSource = KubernetesSource()


class ProgressScrape(Strict):
    """[[progress_scrape]]: an inference server whose Prometheus /metrics counts a job's work."""

    name: Name
    url: str  # its /metrics, e.g. http://vllm-1:8000/metrics
    kind: Literal["vllm", "triton", "tgi", "custom"]
    metric: str | None = Field(None, pattern=r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$")  # custom: the counter
    labels: dict[str, str] = {}  # only series with these label values (e.g. Triton's model)
    job: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/+@-]{0,252}$")  # as the workload source names it
    tenant: Name | None = None
    unit: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,31}$")  # default: tokens (vllm, tgi), samples
    interval_s: float = Field(15.0, ge=1, le=3600)
    timeout_s: float = Field(5.0, ge=0.05, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, "inference servers' /metrics take no credentials here")

    @model_validator(mode="after")
    def _custom_needs_metric(self) -> ProgressScrape:
        if self.kind == "custom" and self.metric is None:
            raise ValueError("kind = 'custom' needs 'metric'")
        return self

