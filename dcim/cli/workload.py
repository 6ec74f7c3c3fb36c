"""Wiring of the workload sources ([workload] source) into `dcim collect` and `dcim agent`.

Slurm and dcgm-exporter are read centrally, by `dcim collect` (its shard 0); Kubernetes'
PodResources API is a socket on each GPU node, read by that node's `dcim agent`. Each source
module has a ``from_config`` that takes the whole config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

CENTRAL_SOURCES = ("slurm", "dcgm")
GPU_MAX_AGE_S = 3600.0  # a GPU silent for an hour is not matched to a job by index any more


def central_workload_collector(cfg, store):
    """The workload collector `dcim collect` runs, or None when the source is not central."""
    source_name = cfg.workload.source
    if source_name == "slurm":
        from collectors.workload.slurm import SlurmSource

        source = SlurmSource.from_config(cfg)
    elif source_name == "dcgm":
        from collectors.workload.dcgm import DcgmWorkloadSource

        source = DcgmWorkloadSource.from_config(cfg)
    else:
        return None
    return _collector(cfg, source, gpus_from_store(store, cfg.site.name))


def node_workload_collector(cfg, host: str, backend):
    """The workload collector `dcim agent` runs on a Kubernetes GPU node, or None."""
    if cfg.workload.source != "kubernetes":
        return None
    from collectors.workload.kubernetes import PodResourcesSource

    source = PodResourcesSource.from_config(cfg, host)
    return _collector(cfg, source, lambda: {(host, d.index): d.uuid for d in backend.devices()})


def _collector(cfg, source, gpus: Callable[[], Mapping[tuple[str, int], str]]):
    from collectors.workload.collector import WorkloadCollector
    from collectors.workload.mapping import WorkloadMapping

    return WorkloadCollector(source, WorkloadMapping.from_config(cfg.workload), site=cfg.site.name, gpus=gpus,
                             interval_s=cfg.workload.interval_s)


def gpus_from_store(store, site: str) -> Callable[[], dict[tuple[str, int], str]]:
    """(host, GPU index) → UUID from the GPU telemetry in the store (the agents' or dcgm-exporter's)."""

    def gpus() -> dict[tuple[str, int], str]:
        since = time.time_ns() - int(GPU_MAX_AGE_S * 1e9)
        out = {}
        for p in store.latest("gpu", where={"site": site}, since_ns=since):
            host, index, uuid = p.tags.get("host"), p.tags.get("gpu"), p.tags.get("uuid")
            if host and uuid and index is not None and str(index).isdigit():
                out[(host, int(index))] = uuid
        return out

    return gpus


def progress_collector(cfg):
    """The collector `dcim collect` runs for [[progress_scrape]] (inference servers' /metrics as
    job progress), or None when none is configured."""
    if not cfg.progress_scrape:
        return None
    from collectors.progress.collector import ProgressScrapeCollector, Service

    return ProgressScrapeCollector([Service.from_settings(s) for s in cfg.progress_scrape], site=cfg.site.name)
