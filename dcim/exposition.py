"""Prometheus exposition of the store: the latest value of every series, as ``/metrics``.

For sites that already run Prometheus and Grafana. Names follow Prometheus' conventions and the
exporters operators know (snmp_exporter, dcgm-exporter): ``dcim_<measurement>_<field>_<unit>``
with base units as suffixes (``dcim_gpu_power_watts``, ``dcim_env_temp_celsius``, percentages as
``_ratio`` 0..1, kWh counters as ``_joules_total``), counters as ``_total`` with their raw value
(Prometheus' ``rate()`` handles resets, as the store's readers do), the measurement's tags as
labels. Text fields that identify something (a GPU's job and tenant, an alarm's state) become
labels of a ``dcim_<measurement>_info`` gauge of 1, to join on; free text (errors, notes,
summaries) is not exposed. Derived report tables (``job_energy``, ``job_day``) are not series.

Only series read within ``max_age_s`` are exposed, so a device that falls silent goes stale in
Prometheus (``absent()`` fires) instead of repeating its last value for ever. Alarms are state,
not samples: every alarm not cleared is exposed whatever its age.

:class:`StoreCollector` is a ``prometheus_client`` custom collector (register it on any
registry; ``generate_latest`` renders it). A fleet of 32,000 GPUs is ~650,000 samples, which
``generate_latest`` renders at ~5 µs each (label names validated and escaped per sample, seconds
per scrape), so :meth:`StoreCollector.render` writes the same text format from one label string
per series (``dcim.exposition_text``); the tests hold the two outputs equal. Even so a rendering
of that fleet costs ~1 s of CPU, most of it the store's read, so ``dcim exporter`` renders ahead
of the scrape (``dcim.exposition_ahead``) and answers with the last rendering.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dcim.exposition_ahead import RenderAhead
from dcim.exposition_text import InfoCache, LabelCache, column, escape_help, interleave
from dcim.metrics import MEASUREMENTS, FieldSpec, Measurement, Point
from dcim.store.base import StoreError, Where

PREFIX = "dcim"
DEFAULT_MAX_AGE_S = 300.0
# Derived tables of the report, not series of a device.
SKIPPED_MEASUREMENTS = frozenset({"job_energy", "job_day"})
# Text fields that are free text or personal: never labels (unbounded cardinality, privacy).
FREE_TEXT_FIELDS = frozenset({"error", "summary", "note", "parts", "reason", "by", "pairs", "user", "actor"})
# Alarms are exposed while in one of these states, whatever the age of their last transition.
ACTIVE_ALARM_STATES = frozenset({"raised", "acked", "shelved"})

# The contract's unit -> (Prometheus base-unit suffix, factor to that unit).
UNIT_SUFFIX: dict[str, tuple[str, float]] = {
    "W": ("watts", 1.0), "kW": ("watts", 1e3), "J": ("joules", 1.0), "kWh": ("joules", 3.6e6),
    "°C": ("celsius", 1.0), "%": ("ratio", 0.01), "A": ("amperes", 1.0), "V": ("volts", 1.0),
    "VA": ("voltamperes", 1.0), "B": ("bytes", 1.0), "MHz": ("hertz", 1e6), "s": ("seconds", 1.0),
    "ns": ("timestamp_seconds", 1e-9), "m³/s": ("cubic_meters_per_second", 1.0),
}
# Dimensionless fields that are a ratio 0..1 by nature.
RATIO_FIELDS = frozenset({"power_factor"})
# Field bases renamed where the plain name would read as another measurement's metric
# (pdu.breaker_a next to the pdu_breaker measurement's dcim_pdu_breaker_*).
RENAMED_BASES = {"breaker": "breaker_rating"}


class LatestReader(Protocol):
    """What the exposition needs of a store: its latest values (a Store, or the dashboard's
    LazyStore that opens one once it exists)."""

    def latest(self, measurement: str, *, where: Where | None = None,
               since_ns: int | None = None) -> list: ...


class ExpositionError(ValueError):
    """A field of the metric contract this module cannot name (a unit it does not know)."""


@dataclass(frozen=True)
class MetricSpec:
    """How one field of one measurement is exposed."""

    measurement: str
    field: str
    name: str          # the sample name, with _total for counters
    family: str        # the family name (the sample name without _total)
    kind: str          # "gauge" or "counter"
    scale: float       # contract value x scale = exposed value
    help: str
    boolean: bool = False  # a bool in the store, exposed as 1/0


def metric_spec(measurement: Measurement, spec: FieldSpec) -> MetricSpec:
    """The Prometheus name and scale of a numeric field, from its unit."""
    base = spec.name
    if spec.unit:
        if spec.unit not in UNIT_SUFFIX:
            raise ExpositionError(f"{measurement.name}.{spec.name}: no Prometheus unit for {spec.unit!r}")
        suffix, scale = UNIT_SUFFIX[spec.unit]
        base = base.rsplit("_", 1)[0] if "_" in base else base  # power_w -> power, temp_c -> temp
        base = RENAMED_BASES.get(base, base)
        base = f"{base}_{suffix}"
    else:
        scale = 1.0
        if spec.name in RATIO_FIELDS:
            base = f"{base}_ratio"
    family = f"{PREFIX}_{measurement.name}_{base}"
    kind = "counter" if spec.counter else "gauge"
    name = f"{family}_total" if spec.counter else family
    unit_note = f" ({spec.unit} in the store)" if spec.unit and scale != 1.0 else ""
    return MetricSpec(measurement.name, spec.name, name, family, kind, scale,
                      f"{measurement.description}: {spec.description}{unit_note}", spec.kind is bool)


def _plan() -> tuple[dict[str, list[MetricSpec]], dict[str, tuple[str, ...]]]:
    numeric: dict[str, list[MetricSpec]] = {}
    info: dict[str, tuple[str, ...]] = {}
    for m in MEASUREMENTS.values():
        if m.name in SKIPPED_MEASUREMENTS:
            continue
        numeric[m.name] = [metric_spec(m, f) for f in m.fields.values() if f.kind is not str]
        info[m.name] = tuple(f.name for f in m.fields.values() if f.kind is str and f.name not in FREE_TEXT_FIELDS)
    return numeric, info


NUMERIC, INFO_LABELS = _plan()


def info_name(measurement: str) -> str:
    return f"{PREFIX}_{measurement}_info"


def exposed_names() -> dict[str, str]:
    """Every sample name this module can expose -> "gauge" or "counter" (the Grafana test reads it)."""
    names = {s.name: s.kind for specs in NUMERIC.values() for s in specs}
    names.update({info_name(m): "gauge" for m, labels in INFO_LABELS.items() if labels})
    names.update({f"{PREFIX}_exporter_store_up": "gauge", f"{PREFIX}_exporter_series": "gauge",
                  f"{PREFIX}_exporter_newest_sample_timestamp_seconds": "gauge",
                  f"{PREFIX}_exporter_read_duration_seconds": "gauge",
                  f"{PREFIX}_exporter_render_age_seconds": "gauge", f"{PREFIX}_exporter_render_cpu_seconds": "gauge"})
    return names


@dataclass
class Snapshot:
    """One read of the store: per measurement, its series' latest Points; and how the read went."""

    series: dict[str, list[Point]]
    store_up: bool
    read_s: float
    error: str = ""


class StoreCollector(Collector):
    """A ``prometheus_client`` collector over *store*'s latest values (read at each scrape)."""

    def __init__(self, store: LatestReader, *, max_age_s: float = DEFAULT_MAX_AGE_S,
                 measurements: Iterable[str] | None = None, clock: Callable[[], float] = time.time):
        if max_age_s <= 0:
            raise ValueError("max_age_s must be > 0")
        self.store = store
        self.max_age_s = max_age_s
        names = list(NUMERIC) if measurements is None else list(measurements)
        unknown = [m for m in names if m not in NUMERIC]
        if unknown:
            raise ValueError(f"not exposed measurement(s): {', '.join(unknown)} (exposed: {', '.join(NUMERIC)})")
        self.measurements = names
        self.clock = clock
        self._labels = {m: LabelCache(MEASUREMENTS[m].tags) for m in names}
        self._info = {m: InfoCache(info_name(m), INFO_LABELS[m]) for m in names if INFO_LABELS[m]}

    # --- reading ---------------------------------------------------------------------------

    def read(self) -> Snapshot:
        t0 = time.perf_counter()
        since_ns = int((self.clock() - self.max_age_s) * 1e9)
        out: dict[str, list[Point]] = {}
        try:
            for m in self.measurements:
                points = self.store.latest(m, since_ns=None if m == "alarm" else since_ns)
                if m == "alarm":
                    points = [p for p in points if p.fields.get("state") in ACTIVE_ALARM_STATES]
                out[m] = points
        except StoreError as exc:  # down or missing: store_up 0, and no stale series
            return Snapshot({}, False, time.perf_counter() - t0, str(exc))
        return Snapshot(out, True, time.perf_counter() - t0)

    # --- prometheus_client's model ---------------------------------------------------------

    def describe(self) -> list[Metric]:
        return []  # read at each scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        snap = self.read()
        for m, series in snap.series.items():
            tags = list(MEASUREMENTS[m].tags)
            for spec in NUMERIC[m]:
                family = Metric(spec.family, spec.help, spec.kind)
                for p in series:
                    value = p.fields.get(spec.field)
                    if value is not None:
                        family.add_sample(spec.name, {t: p.tags.get(t, "") for t in tags}, float(value) * spec.scale)
                if family.samples:
                    yield family
            if INFO_LABELS[m] and series:
                info = GaugeMetricFamily(info_name(m), f"{MEASUREMENTS[m].description}: identity (value 1)",
                                         labels=tags + list(INFO_LABELS[m]))
                for p in series:
                    info.add_metric([p.tags.get(t, "") for t in tags] + [str(p.fields.get(f, "")) for f in INFO_LABELS[m]],
                                    1.0)
                yield info
        yield from self._own_families(snap)

    def _own_families(self, snap: Snapshot) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_exporter_store_up", "1 if the store answered this scrape")
        up.add_metric([], 1.0 if snap.store_up else 0.0)
        yield up
        took = GaugeMetricFamily(f"{PREFIX}_exporter_read_duration_seconds", "time to read the store's latest values")
        took.add_metric([], snap.read_s)
        yield took
        count = GaugeMetricFamily(f"{PREFIX}_exporter_series", "series exposed per measurement", labels=["measurement"])
        newest = GaugeMetricFamily(f"{PREFIX}_exporter_newest_sample_timestamp_seconds",
                                   "time of the newest sample per measurement (UTC)", labels=["measurement"])
        for m, series in snap.series.items():
            count.add_metric([m], float(len(series)))
            if series:
                newest.add_metric([m], max(s.time_ns for s in series) / 1e9)
        yield count
        yield newest

    # --- the fast text path ----------------------------------------------------------------

    def render(self) -> bytes:
        """The text format (0.0.4) of :meth:`collect`, written by ``dcim.exposition_text``: one
        label string per series (kept between scrapes), then each field's samples as one column."""
        from prometheus_client.exposition import generate_latest

        snap = self.read()
        out: list[str] = []
        add = out.append
        for m, points in snap.series.items():
            if not points:
                continue
            labels = self._labels[m].strings([p.tags for p in points])
            fields = [p.fields for p in points]
            for spec in NUMERIC[m]:
                values = column(spec.field, spec.scale, fields, boolean=spec.boolean)
                if values is not None:
                    add(interleave(f"# HELP {spec.name} {escape_help(spec.help)}\n# TYPE {spec.name} {spec.kind}",
                                   spec.name, labels, values))
            if m in self._info:
                name = info_name(m)
                add(f"# HELP {name} {escape_help(MEASUREMENTS[m].description + ': identity (value 1)')}\n"
                    f"# TYPE {name} gauge\n")
                add(self._info[m].lines(labels, fields))
        own = generate_latest(_Families(list(self._own_families(snap))))
        return "".join(out).encode() + own


class _Families:
    """A fixed list of families, as ``generate_latest`` takes a registry."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


# --- serving -----------------------------------------------------------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_app(collector: StoreCollector, registry=None, ahead: RenderAhead | None = None):
    """A WSGI app: ``GET /metrics`` answers the store's series (:meth:`StoreCollector.render`,
    or *ahead*'s last rendering of it) followed by *registry*'s own metrics (the process's, say);
    any other path is 404. The body goes out as its parts, not copied into one."""
    from prometheus_client.exposition import generate_latest

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are on /metrics\n"]
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain; charset=utf-8"),
                                                      ("Allow", "GET, HEAD")])
            return [b"GET only\n"]
        parts = [collector.render()] if ahead is None else _ahead_parts(ahead)
        if registry is not None:
            parts.append(generate_latest(registry))
        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(sum(len(p) for p in parts)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else parts

    return app


def _ahead_parts(ahead: RenderAhead) -> list[bytes]:
    """The last rendering, then how old it is and what it cost (known only at the scrape)."""
    rendering = ahead.get()
    age, cpu = f"{PREFIX}_exporter_render_age_seconds", f"{PREFIX}_exporter_render_cpu_seconds"
    own = (f"# HELP {age} seconds since the store's values served were read and rendered\n"
           f"# TYPE {age} gauge\n{age} {ahead.age_s(rendering)!r}\n"
           f"# HELP {cpu} CPU time of the last rendering (read and text)\n"
           f"# TYPE {cpu} gauge\n{cpu} {rendering.cpu_s!r}\n")
    return [rendering.body, own.encode()]
