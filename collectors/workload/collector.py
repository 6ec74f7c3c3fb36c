"""The workload collector: polls one :class:`~collectors.workload.base.WorkloadSource` per
interval and writes a ``workload`` point per GPU.

A scheduler that is down, slow or answers garbage gives ``ok=False`` with the reason in the
``collector`` measurement (target: the source's target), and no ``workload`` points that
cycle: the last ones age, and readers that need fresh workload (the optimizer) treat the GPUs
as unknown. The other collectors keep their own cycles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from collectors.base import Collector, TargetResult
from collectors.workload.base import WorkloadError, WorkloadSource
from collectors.workload.mapping import WorkloadMapping, workload_points


class WorkloadCollector(Collector):
    def __init__(self, source: WorkloadSource, mapping: WorkloadMapping, *, site: str,
                 gpus: Callable[[], Mapping[tuple[str, int], str]], interval_s: float = 30.0,
                 clock_ns: Callable[[], int] = time.time_ns):
        """*gpus* returns every known GPU, (host, index) → UUID (from the GPU telemetry in the
        store): Slurm names GPUs by index, the contract keys them by UUID."""
        self.source = source
        self.mapping = mapping
        self.site = site
        self.gpus = gpus
        self.interval_s = interval_s
        self.name = f"workload-{source.name}"
        self.clock_ns = clock_ns

    def targets(self) -> list[str]:
        return [self.source.target]

    async def poll(self, deadline_s: float) -> list[TargetResult]:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            holds, gpus = await asyncio.wait_for(loop.run_in_executor(None, self._read), timeout=deadline_s)
        except TimeoutError:
            return [self._failed(f"timeout after {deadline_s:g} s", started)]
        except WorkloadError as exc:
            return [self._failed(str(exc), started)]
        except Exception as exc:  # noqa: BLE001 — a collector never raises: report it, keep collecting
            return [self._failed(f"{type(exc).__name__}: {exc}", started)]
        mapped = workload_points(holds, gpus, self.mapping, site=self.site, source=self.source.name,
                                 now_ns=self.clock_ns())
        return [TargetResult(self.source.target, mapped.points, duration_s=time.monotonic() - started,
                             error=self.source.partial_error(),
                             counters={"jobs": mapped.jobs, "jobs_unplaced": mapped.unplaced})]

    def _read(self):
        holds, gpus = self.source.poll(), self.gpus()
        unread = self.source.unreachable_hosts()
        return holds, ({k: v for k, v in gpus.items() if k[0] not in unread} if unread else gpus)

    def _failed(self, error: str, started: float) -> TargetResult:
        return TargetResult(self.source.target, [], ok=False, error=error[:500],
                            duration_s=time.monotonic() - started)

    async def close(self) -> None:
        self.source.close()
