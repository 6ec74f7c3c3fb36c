"""Kubernetes: which pod holds which GPU, from the kubelet's PodResources API on this node.

`dcim agent` on each GPU node calls ``v1.PodResourcesLister/List`` on the kubelet's unix socket
(``/var/lib/kubelet/pod-resources/kubelet.sock``) and turns every device-plugin device of
resource ``nvidia.com/gpu`` (or ``nvidia.com/mig-<profile>``, the MIG "mixed" strategy) into a
:class:`~collectors.workload.base.GpuHold`:

- job: ``<namespace>/<pod>``; account (what the tenant comes from): the namespace.
- job class: the v1 API has **no pod labels** (``PodResources`` is name, namespace and
  containers; see podresources/README.md), so the class label cannot be read here. The class
  comes from ``[workload] job_classes`` keyed by the **namespace** (``class_label`` is set to the
  namespace): on a shared hub a namespace is normally one team's one kind of work. Sites that
  need a per-pod class label read it from dcgm-exporter (``source = "dcgm"``), which asks the
  API server for pod labels. ``[workload.kubernetes] job_label``/``class_label`` cannot apply
  here and are reported once in the log when set.
- device ids: ``GPU-<uuid>`` is the GPU's UUID; ``GPU-<uuid>::<n>`` (the device plugin's
  time-slicing replicas) is that GPU; ``MIG-<uuid>`` (a MIG instance) is recorded under its own
  MIG UUID so two pods on two slices of one GPU both show (its energy is the parent GPU's;
  the parent is not known without NVML here); ``nvidia<N>`` (GKE's plugin) is GPU index N on
  this host, resolved to a UUID by the collector; anything else is recorded unresolved.

One gRPC channel per poll: on a unix socket it costs well under a millisecond, and a kubelet
restart never leaves a channel stuck in reconnect backoff.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from collectors.workload.base import GpuHold, WorkloadError, WorkloadSource

log = logging.getLogger(__name__)

GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # as dcgm-exporter reads the same API: thousands of pods fit
_GKE_INDEX = re.compile(r"^nvidia(\d{1,4})$")


def is_gpu_resource(resource_name: str) -> bool:
    return resource_name == GPU_RESOURCE or resource_name.startswith(MIG_RESOURCE_PREFIX)


def device_hold(device_id: str, *, job: str, host: str, namespace: str, container: str = "") -> GpuHold:
    """The hold for one device id the NVIDIA device plugin allocated (see the module doc)."""
    uuid: str | None = None
    index: int | None = None
    labels: dict[str, str] = {"device_id": device_id, "container": container}
    if device_id.startswith("GPU-"):
        uuid, _, replica = device_id.partition("::")
        if replica:
            labels["replica"] = replica  # a time-sliced share of the GPU
    elif device_id.startswith("MIG-"):
        uuid = device_id
        labels["mig"] = "true"
    elif (m := _GKE_INDEX.match(device_id)) is not None:
        index = int(m.group(1))
    return GpuHold(job=job, host=host, account=namespace, gpu_index=index, uuid=uuid, class_label=namespace,
                   labels=labels)


def holds_from_response(response, host: str) -> list[GpuHold]:
    """Every GPU hold in a ``ListPodResourcesResponse``; pods without GPUs give none."""
    holds: list[GpuHold] = []
    for pod in response.pod_resources:
        job = f"{pod.namespace}/{pod.name}"
        for container in pod.containers:
            for devices in container.devices:
                if not is_gpu_resource(devices.resource_name):
                    continue
                for device_id in devices.device_ids:
                    holds.append(device_hold(device_id, job=job, host=host, namespace=pod.namespace,
                                             container=container.name))
    return holds


class PodResourcesSource(WorkloadSource):
    name = "kubernetes"

    def __init__(self, socket_path: Path | str, host: str, *, timeout_s: float = 5.0):
        self.socket_path = Path(socket_path)
        self.host = host
        self.timeout_s = timeout_s
        self.target = f"kubelet:{self.socket_path}"

    @classmethod
    def from_config(cls, cfg, host: str) -> PodResourcesSource:
        k8s = cfg.workload.kubernetes
        if k8s.job_label:
            log.warning("[workload.kubernetes] job_label = %r is ignored: the kubelet PodResources API has no pod "
                        "labels; job = <namespace>/<pod>", k8s.job_label)
        return cls(k8s.pod_resources_socket, host, timeout_s=k8s.timeout_s)

    def poll(self) -> list[GpuHold]:
        return holds_from_response(self.list_pods(), self.host)

    def list_pods(self):
        """One ``List`` call; WorkloadError naming the socket when the kubelet cannot be read."""
        import grpc

        from collectors.workload.podresources import api_pb2, api_pb2_grpc

        if not self.socket_path.exists():
            raise WorkloadError(f"kubelet PodResources socket {self.socket_path} does not exist "
                                "(is this a Kubernetes node, and is the socket mounted into the agent?)")
        options = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES), ("grpc.enable_retries", 0)]
        with grpc.insecure_channel(f"unix://{self.socket_path}", options=options) as channel:
            stub = api_pb2_grpc.PodResourcesListerStub(channel)
            try:
                return stub.List(api_pb2.ListPodResourcesRequest(), timeout=self.timeout_s)
            except grpc.RpcError as exc:
                raise WorkloadError(self._why(exc)) from None

    def _why(self, exc) -> str:
        import grpc

        code = exc.code() if callable(getattr(exc, "code", None)) else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"kubelet PodResources at {self.socket_path}: no answer within {self.timeout_s:g} s"
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"kubelet PodResources at {self.socket_path}: unavailable (kubelet down or not listening)"
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        name = code.name if code is not None else type(exc).__name__
        return f"kubelet PodResources at {self.socket_path}: {name}: {str(details)[:200]}"
