"""[exporter]: the store's latest values as Prometheus /metrics (``dcim exporter``, and served by
``dcim up``), for sites that already run Prometheus and Grafana."""

from __future__ import annotations

from pydantic import Field, field_validator

from dcim.config.base import Strict, check_host


class ExporterSettings(Strict):
    enabled: bool = True            # dcim up serves it too (dcim exporter serves it alone)
    host: str = "127.0.0.1"
    port: int = Field(9109, ge=0, le=65535)   # 0: any free port; the collectors' own metrics are on 9108
    max_age_s: float = Field(300.0, gt=0, le=86400)       # series with no reading for longer are left out
    render_every_s: float = Field(15.0, ge=0, le=3600)    # rendered ahead while scraped; 0: at each scrape

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)
