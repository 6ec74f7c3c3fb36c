"""The progress collector: scrapes each configured inference server's /metrics and writes its
work-done counter as a ``progress`` point (source ``scrape``).

A server that is down, slow, answers an error or a page without the counter gives ``ok=False``
for that service with the reason (in the ``collector`` measurement); the others are unaffected.
Counters are stored raw: a server restart resets them, which readers detect (the contract).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collectors.base import Collector, TargetResult
from collectors.progress.scrape import ScrapeError, default_unit, sample_names, work_done
from dcim.metrics import Point

MAX_PAGE_BYTES = 16 << 20  # a vLLM page with many models is a few hundred KB


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    names: tuple[str, ...]  # the sample names to sum
    labels: dict
    job: str
    tenant: str
    unit: str
    interval_s: float
    timeout_s: float

    @classmethod
    def from_settings(cls, s) -> Service:
        return cls(s.name, s.url, sample_names(s.kind, s.metric), dict(s.labels), s.job, s.tenant or "",
                   s.unit or default_unit(s.kind), s.interval_s, s.timeout_s)


def fetch(url: str, timeout_s: float) -> str:
    """The page at *url*; ScrapeError for anything but a 200 with a text body."""
    req = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 — http(s) checked in config
            body = resp.read(MAX_PAGE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"HTTP {exc.code} from {url}") from None
    except (OSError, ValueError) as exc:  # refused, timed out, reset, bad URL
        raise ScrapeError(f"cannot read {url}: {getattr(exc, 'reason', None) or exc}") from None
    if len(body) > MAX_PAGE_BYTES:
        raise ScrapeError(f"{url} answered more than {MAX_PAGE_BYTES >> 20} MiB")
    return body.decode("utf-8", "replace")


class ProgressScrapeCollector(Collector):
    name = "progress-scrape"

    def __init__(self, services: Sequence[Service], *, site: str, clock_ns: Callable[[], int] = time.time_ns):
        """Every service is scraped each cycle, at the shortest *interval_s* configured: one
        cycle reports on every target (the runner's health and /metrics expect that), and a
        page of counters costs milliseconds."""
        if not services:
            raise ValueError("no services to scrape")
        self.services = list(services)
        self.site = site
        self.clock_ns = clock_ns
        self.interval_s = min(s.interval_s for s in self.services)

    def targets(self) -> list[str]:
        return [s.name for s in self.services]

    async def poll(self, deadline_s: float) -> list[TargetResult]:
        return list(await asyncio.gather(*(self._scrape(s, deadline_s) for s in self.services)))

    async def _scrape(self, service: Service, deadline_s: float) -> TargetResult:
        started = time.monotonic()
        timeout_s = min(service.timeout_s, deadline_s)
        try:
            total = await asyncio.wait_for(asyncio.to_thread(self._read, service, timeout_s), timeout_s + 0.5)
        except TimeoutError:
            return self._failed(service, f"no answer within {timeout_s:g} s", started)
        except ScrapeError as exc:
            return self._failed(service, str(exc), started)
        except Exception as exc:  # noqa: BLE001 — a collector never raises: report it, keep collecting
            return self._failed(service, f"{type(exc).__name__}: {exc}", started)
        point = Point("progress", {"site": self.site, "job": service.job, "tenant": service.tenant},
                      {"work_done": total, "unit": service.unit, "source": "scrape"}, self.clock_ns())
        return TargetResult(service.name, [point], duration_s=time.monotonic() - started)

    @staticmethod
    def _read(service: Service, timeout_s: float) -> float:
        return work_done(fetch(service.url, timeout_s), service.names, service.labels)

    @staticmethod
    def _failed(service: Service, error: str, started: float) -> TargetResult:
        return TargetResult(service.name, [], ok=False, error=error[:500], duration_s=time.monotonic() - started)
