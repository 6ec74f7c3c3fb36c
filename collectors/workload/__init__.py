"""Workload sources: which job holds which GPU, from the site's scheduler.

- :mod:`.base` — what every source returns (:class:`GpuHold`, one job's hold on one GPU) and
  the :class:`WorkloadSource` interface;
- :mod:`.mapping` — scheduler identities to tenants and job classes (config data), holds to
  ``workload`` points per GPU UUID (pure);
- :mod:`.collector` — the collector the runner polls.

One module per scheduler: Slurm (``squeue --json`` or slurmrestd), Kubernetes (the kubelet's
PodResources API), dcgm-exporter's pod labels.
"""
