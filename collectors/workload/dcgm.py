"""Kubernetes jobs on GPUs from an existing dcgm-exporter's /metrics (``[workload] source = "dcgm"``).

dcgm-exporter, run with ``--kubernetes`` (the GPU Operator's default), labels each GPU's samples
with the pod that holds it: ``pod``, ``namespace``, ``container`` beside ``gpu``, ``UUID``,
``Hostname``; with ``--kubernetes-enable-pod-labels`` it adds every pod label, its name sanitised
for Prometheus (each character outside ``[a-zA-Z0-9_]`` becomes ``_``: ``dcim.io/job-class`` →
``dcim_io_job_class``). One hold per (GPU, pod):

- job: ``<namespace>/<pod>``, or ``<namespace>/<value>`` of ``[workload.kubernetes] job_label``
  where dcgm-exporter exports that pod label; account: the namespace;
- class: the value of ``[dcgm_exporter] class_label``; without it, the namespace (as the
  PodResources source does), both looked up in ``[workload] job_classes``;
- a sample with no ``pod`` (or an empty one) is an idle GPU: no hold;
- a MIG instance's samples (label ``GPU_I_ID``) give a hold on ``<UUID>/gi<N>``, one per slice.

Every URL is scraped in parallel, each within ``timeout_s`` and the page size limit. The source
is one target in the ``collector`` measurement: when **every** exporter fails, the poll fails
(WorkloadError, ok=False); when only some fail, the poll returns the holds it read, the error
field names the failed URLs (ok stays True), a warning is logged when an exporter goes down and
again when it is back, and ``unreachable_hosts`` names the hosts last seen behind the failed
URLs, so their GPUs are left without a point this cycle instead of being written as idle.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
from urllib.parse import urlsplit

from collectors.gpu.dcgm_exporter import MAX_BODY_BYTES, MAX_WORKERS, Sample, ScrapeError, host_of, scrape
from collectors.workload.base import GpuHold, WorkloadError, WorkloadSource

log = logging.getLogger(__name__)

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_label(pod_label: str) -> str:
    """The name dcgm-exporter gives a pod label (its utils.SanitizeLabelName)."""
    return _INVALID_LABEL_CHARS.sub("_", pod_label)


def holds_from_samples(samples: list[Sample], url: str, *, class_label: str,
                       job_label: str | None = None) -> list[GpuHold]:
    """One hold per (GPU or MIG slice, pod) found in a dcgm-exporter page."""
    holds: dict[tuple[str, str], GpuHold] = {}
    for s in samples:
        if not s.name.startswith("DCGM_FI_"):
            continue
        labels = s.labels
        pod, namespace, uuid = labels.get("pod"), labels.get("namespace", ""), labels.get("UUID")
        if not pod or not uuid:
            continue  # an idle GPU, or not a GPU sample
        if labels.get("GPU_I_ID"):
            uuid = f"{uuid}/gi{labels['GPU_I_ID']}"
        job_name = labels.get(job_label, "") if job_label else ""
        job = f"{namespace}/{job_name or pod}"
        if (uuid, job) in holds:
            continue
        index = labels.get("gpu", "")
        holds[(uuid, job)] = GpuHold(
            job=job, host=host_of(labels, url), account=namespace, uuid=uuid,
            gpu_index=int(index) if index.isdigit() else None,
            class_label=labels.get(class_label) or namespace,
            labels={"pod": pod, "container": labels.get("container", ""), "exporter": url})
    return list(holds.values())


class DcgmWorkloadSource(WorkloadSource):
    name = "dcgm"
    target = "dcgm-exporter"

    def __init__(self, urls: list[str], *, timeout_s: float = 5.0, class_label: str = "dcim.io/job-class",
                 job_label: str | None = None, max_bytes: int = MAX_BODY_BYTES):
        self.urls = list(urls)
        self.timeout_s = timeout_s
        self.class_label = prometheus_label(class_label)
        self.job_label = prometheus_label(job_label) if job_label else None
        self.max_bytes = max_bytes
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(self.urls))),
                                                           thread_name_prefix="dcgm-workload")
        self._hosts: dict[str, set[str]] = {u: {urlsplit(u).hostname or u} for u in self.urls}
        self._failed: dict[str, str] = {}  # url → why, as of the last poll

    @classmethod
    def from_config(cls, cfg) -> DcgmWorkloadSource:
        settings = cfg.dcgm_exporter
        return cls(settings.urls, timeout_s=settings.timeout_s, class_label=settings.class_label,
                   job_label=cfg.workload.kubernetes.job_label)

    def poll(self) -> list[GpuHold]:
        if not self.urls:
            raise WorkloadError('[workload] source = "dcgm" needs [dcgm_exporter] urls (none configured)')
        pages, failed = self._scrape_all()
        self._note(failed)
        if not pages:
            detail = "; ".join(f"{u}: {why}" for u, why in failed.items())
            raise WorkloadError(f"every dcgm-exporter failed ({len(failed)}): {detail}"[:500])
        holds: list[GpuHold] = []
        for url, samples in pages.items():
            found = holds_from_samples(samples, url, class_label=self.class_label, job_label=self.job_label)
            self._hosts[url] = {host_of(s.labels, url) for s in samples if s.labels.get("UUID")} or self._hosts[url]
            holds.extend(found)
        return holds

    def _scrape_all(self) -> tuple[dict[str, list[Sample]], dict[str, str]]:
        futures = {self._pool.submit(scrape, url, self.timeout_s, self.max_bytes): url for url in self.urls}
        # each scrape ends itself within timeout_s; the margin covers thread start and parsing
        done, _ = concurrent.futures.wait(futures, timeout=self.timeout_s + 5.0)
        pages: dict[str, list[Sample]] = {}
        failed: dict[str, str] = {}
        for future, url in futures.items():
            if future not in done:
                failed[url] = f"no page within {self.timeout_s:g} s"
                continue
            try:
                pages[url] = future.result()
            except ScrapeError as exc:
                failed[url] = str(exc)
            except Exception as exc:  # noqa: BLE001 — one exporter never fails the others
                failed[url] = f"{type(exc).__name__}: {exc}"
        return pages, failed

    def _note(self, failed: dict[str, str]) -> None:
        """Log an exporter going down or coming back once, not every poll."""
        for url, why in failed.items():
            if url not in self._failed:
                log.warning("dcgm-exporter %s failed: %s (its GPUs get no workload point until it is back)", url, why)
        for url in self._failed.keys() - failed.keys():
            log.warning("dcgm-exporter %s is back", url)
        self._failed = dict(failed)

    def unreachable_hosts(self) -> set[str]:
        return set().union(*(self._hosts[u] for u in self._failed)) if self._failed else set()

    def partial_error(self) -> str | None:
        if not self._failed:
            return None
        return f"{len(self._failed)} of {len(self.urls)} dcgm-exporters failed: " + "; ".join(
            f"{u}: {why}" for u, why in sorted(self._failed.items()))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
