"""The Kubernetes workload source against a real gRPC server on a unix socket.

The server implements ``v1.PodResourcesLister`` from the same generated stubs the source uses
(collectors/workload/podresources, wire-compatible with the kubelet's published v1 proto), so
what is tested is the real gRPC client path: channel, method path, protobuf decoding, deadline.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from collectors.workload.base import WorkloadError
from collectors.workload.collector import WorkloadCollector
from collectors.workload.kubernetes import PodResourcesSource
from collectors.workload.mapping import WorkloadMapping, workload_points
from collectors.workload.podresources import api_pb2 as pb
from collectors.workload.podresources import api_pb2_grpc

U = [f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}" for i in range(8)]
MIG = "MIG-5c2b1d7e-0c5b-5d4e-9b1a-3e2f1a0b9c8d"


def _pod(name, namespace, *containers):
    return pb.PodResources(name=name, namespace=namespace, containers=[
        pb.ContainerResources(name=cname, devices=[pb.ContainerDevices(resource_name=r, device_ids=ids)
                                                   for r, ids in devices])
        for cname, devices in containers])


PODS = pb.ListPodResourcesResponse(pod_resources=[
    # two containers of one pod, two GPUs each
    _pod("trainer-0", "team-a", ("worker", [("nvidia.com/gpu", [U[0], U[1]])]),
         ("sidecar", [("nvidia.com/gpu", [U[2], U[3]])])),
    _pod("serve-7f9", "team-b", ("server", [("nvidia.com/gpu", [U[4]]), ("example.com/nic", ["nic-0"])])),
    _pod("web", "frontend", ("nginx", [])),  # no GPU
    _pod("mig-job", "team-c", ("main", [("nvidia.com/mig-1g.10gb", [MIG])])),
    _pod("shared-1", "team-b", ("c", [("nvidia.com/gpu", [f"{U[5]}::3"])])),  # time-slicing replica
    _pod("gke-job", "team-a", ("c", [("nvidia.com/gpu", ["nvidia6"])])),  # GKE's plugin names an index
    _pod("odd", "team-a", ("c", [("nvidia.com/gpu", ["weird-id"])])),
])


class Lister(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, response, delay_s=0.0, abort=None):
        self.response, self.delay_s, self.abort, self.calls = response, delay_s, abort, 0

    def List(self, request, context):  # noqa: N802 — the gRPC method name
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.abort:
            context.abort(*self.abort)
        return self.response


@pytest.fixture
def sockdir():
    # unix socket paths are limited to 107 bytes: pytest's tmp_path can be longer
    d = Path(tempfile.mkdtemp(prefix="dcim-k8s-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _serve(path: Path, servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(servicer, server)
    assert server.add_insecure_port(f"unix://{path}") != 0
    server.start()
    return server


@pytest.fixture
def kubelet(sockdir):
    lister = Lister(PODS)
    path = sockdir / "kubelet.sock"
    server = _serve(path, lister)
    yield path, lister
    server.stop(0)


def test_reads_every_gpu_hold_from_a_real_grpc_server(kubelet):
    path, lister = kubelet
    holds = PodResourcesSource(path, "node-1", timeout_s=5).poll()
    assert lister.calls == 1
    got = {(h.job, h.account, h.uuid, h.gpu_index, h.labels["container"]) for h in holds}
    assert got == {
        ("team-a/trainer-0", "team-a", U[0], None, "worker"), ("team-a/trainer-0", "team-a", U[1], None, "worker"),
        ("team-a/trainer-0", "team-a", U[2], None, "sidecar"), ("team-a/trainer-0", "team-a", U[3], None, "sidecar"),
        ("team-b/serve-7f9", "team-b", U[4], None, "server"),
        ("team-c/mig-job", "team-c", MIG, None, "main"),
        ("team-b/shared-1", "team-b", U[5], None, "c"),
        ("team-a/gke-job", "team-a", None, 6, "c"),
        ("team-a/odd", "team-a", None, None, "c"),
    }
    assert all(h.host == "node-1" for h in holds)
    assert all(h.class_label == h.account for h in holds)  # no pod labels in the v1 API: class by namespace
    mig = next(h for h in holds if h.uuid == MIG)
    assert mig.labels["mig"] == "true"
    shared = next(h for h in holds if h.uuid == U[5])
    assert shared.labels["replica"] == "3" and shared.labels["device_id"] == f"{U[5]}::3"
    assert not any(h.job == "frontend/web" for h in holds)  # a pod with no GPU holds none


def test_holds_become_workload_points_with_tenant_and_class_by_namespace(kubelet):
    path, _ = kubelet
    holds = PodResourcesSource(path, "node-1").poll()
    mapping = WorkloadMapping(tenants={"team-a": "kaist", "team-b": "etri"}, job_classes={"team-a": "training",
                                                                                          "team-b": "inference"})
    gpus = {("node-1", i): U[i] for i in range(8)}
    mapped = workload_points(holds, gpus, mapping, site="s", source="kubernetes", now_ns=1)
    by_uuid = {p.tags["uuid"]: p.fields for p in mapped.points}
    assert by_uuid[U[0]]["tenant"] == "kaist" and by_uuid[U[0]]["job_class"] == "training"
    assert by_uuid[U[4]]["tenant"] == "etri" and by_uuid[U[4]]["job_class"] == "inference"
    assert by_uuid[MIG]["tenant"] == "unmapped:team-c" and by_uuid[MIG]["job_class"] == "unknown"
    assert by_uuid[U[6]]["job"] == "team-a/gke-job"  # index 6 on node-1 resolved to its UUID
    assert by_uuid[U[7]]["job"] == ""  # idle GPU
    assert by_uuid["unresolved:node-1:-"]["job"] == "team-a/odd"  # counted, not dropped
    assert mapped.jobs == 6 and mapped.unplaced == 1


def test_missing_socket_is_a_clear_error(sockdir):
    with pytest.raises(WorkloadError, match=r"kubelet PodResources socket .*nope\.sock does not exist"):
        PodResourcesSource(sockdir / "nope.sock", "node-1").poll()


def test_kubelet_down_is_unavailable(sockdir):
    path = sockdir / "kubelet.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # the file exists, nobody listens: a stopped kubelet's stale socket
    dead.close()
    t0 = time.monotonic()
    with pytest.raises(WorkloadError, match="unavailable"):
        PodResourcesSource(path, "node-1", timeout_s=5).poll()
    assert time.monotonic() - t0 < 4  # refused at once, not after the deadline


def test_slow_kubelet_hits_the_deadline(sockdir):
    path = sockdir / "kubelet.sock"
    server = _serve(path, Lister(PODS, delay_s=3))
    try:
        t0 = time.monotonic()
        with pytest.raises(WorkloadError, match=r"no answer within 0\.3 s"):
            PodResourcesSource(path, "node-1", timeout_s=0.3).poll()
        assert time.monotonic() - t0 < 2
    finally:
        server.stop(0)


def test_kubelet_refusal_names_the_grpc_status(sockdir):
    path = sockdir / "kubelet.sock"
    server = _serve(path, Lister(PODS, abort=(grpc.StatusCode.PERMISSION_DENIED, "socket not allowed")))
    try:
        with pytest.raises(WorkloadError, match="PERMISSION_DENIED: socket not allowed"):
            PodResourcesSource(path, "node-1").poll()
    finally:
        server.stop(0)


def test_collector_reports_a_down_kubelet_and_recovers(sockdir):
    path = sockdir / "kubelet.sock"
    source = PodResourcesSource(path, "node-1", timeout_s=1)
    collector = WorkloadCollector(source, WorkloadMapping({}, {}), site="s", gpus=lambda: {("node-1", 0): U[0]})
    [down] = asyncio.run(collector.poll(5))
    assert down.ok is False and "does not exist" in down.error and down.target == f"kubelet:{path}"
    server = _serve(path, Lister(PODS))
    try:
        [up] = asyncio.run(collector.poll(5))
    finally:
        server.stop(0)
    assert up.ok is True and up.counters["jobs"] == 6
    assert {p.fields["job"] for p in up.points if p.tags["uuid"] == U[0]} == {"team-a/trainer-0"}


def test_from_config_reads_the_kubernetes_section(tmp_path):
    from dcim.config import parse_config

    rooms = [{"name": "hall", "rows": [{"name": "A", "racks": [{"name": "R1"}]}]}]
    cfg = parse_config({"site": {"name": "s"}, "rooms": rooms,
                        "workload": {"source": "kubernetes",
                                     "kubernetes": {"pod_resources_socket": str(tmp_path / "k.sock"),
                                                    "timeout_s": 2.5}}})
    source = PodResourcesSource.from_config(cfg, "gpu-7")
    assert (source.socket_path, source.host, source.timeout_s, source.name) == (tmp_path / "k.sock", "gpu-7", 2.5,
                                                                                "kubernetes")
