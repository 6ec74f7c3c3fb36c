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
per series; the tests hold the two outputs equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dcim.metrics import MEASUREMENTS, FieldSpec, Measurement
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
                      f"{measurement.description}: {spec.description}{unit_note}")


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
                  f"{PREFIX}_exporter_read_duration_seconds": "gauge"})
    return names


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class _Series:
    labels: tuple[str, ...]       # the measurement's tag values, in its tag order
    fields: dict
    time_ns: int


@dataclass
class Snapshot:
    """One read of the store: per measurement, its series; and how the read went."""

    series: dict[str, list[_Series]]
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
        self._labels: dict[str, dict[tuple, str]] = {}

    # --- reading ---------------------------------------------------------------------------

    def read(self) -> Snapshot:
        t0 = time.perf_counter()
        since_ns = int((self.clock() - self.max_age_s) * 1e9)
        out: dict[str, list[_Series]] = {}
        try:
            for m in self.measurements:
                tags = MEASUREMENTS[m].tags
                points = self.store.latest(m, since_ns=None if m == "alarm" else since_ns)
                if m == "alarm":
                    points = [p for p in points if p.fields.get("state") in ACTIVE_ALARM_STATES]
                out[m] = [_Series(tuple(p.tags.get(t, "") for t in tags), p.fields, p.time_ns) for p in points]
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
                for s in series:
                    value = s.fields.get(spec.field)
                    if value is not None:
                        family.add_sample(spec.name, dict(zip(tags, s.labels)), float(value) * spec.scale)
                if family.samples:
                    yield family
            if INFO_LABELS[m] and series:
                info = GaugeMetricFamily(info_name(m), f"{MEASUREMENTS[m].description}: identity (value 1)",
                                         labels=tags + list(INFO_LABELS[m]))
                for s in series:
                    info.add_metric(list(s.labels) + [str(s.fields.get(f, "")) for f in INFO_LABELS[m]], 1.0)
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
        """The text format (0.0.4) of :meth:`collect`: one label string per series (kept between
        scrapes), then each field's samples written as one column."""
        snap = self.read()
        out: list[str] = []
        add = out.append
        for m, series in snap.series.items():
            label_strs = self._label_strings(m, series)
            for spec in NUMERIC[m]:
                column = _column(spec, series)
                if column is None:
                    continue
                add(f"# HELP {spec.name} {_escape_help(spec.help)}\n# TYPE {spec.name} {spec.kind}\n")
                name = spec.name
                add("".join([f"{name}{labels} {value!r}\n" for labels, value in zip(label_strs, column)
                             if value is not None]))
            if INFO_LABELS[m] and series:
                name = info_name(m)
                add(f"# HELP {name} {_escape_help(MEASUREMENTS[m].description + ': identity (value 1)')}\n"
                    f"# TYPE {name} gauge\n")
                fields = INFO_LABELS[m]
                extras = self._labels.setdefault(f"{m}:info", {})   # few distinct jobs and tenants
                if len(extras) > 2 * len(series) + 1024:
                    extras.clear()
                lines = []
                for s, labels in zip(series, label_strs):
                    key = tuple(s.fields.get(f, "") for f in fields)
                    extra = extras.get(key)
                    if extra is None:
                        extra = extras[key] = ",".join(f'{f}="{_escape(str(v))}"' for f, v in zip(fields, key))
                    lines.append(f"{name}{labels[:-1]},{extra}}} 1.0\n")
                add("".join(lines))
        from prometheus_client.exposition import generate_latest

        own = generate_latest(_Families(list(self._own_families(snap))))
        return "".join(out).encode() + own

    def _label_strings(self, measurement: str, series: list[_Series]) -> list[str]:
        """'{tag="value",...}' per series, from a cache kept across scrapes (the same GPUs every
        time), rebuilt when it grows past twice the series it serves (GPUs replaced)."""
        cache = self._labels.setdefault(measurement, {})
        if len(cache) > 2 * len(series) + 1024:
            cache.clear()
        tags = MEASUREMENTS[measurement].tags
        out = []
        for s in series:
            text = cache.get(s.labels)
            if text is None:
                text = cache[s.labels] = "{" + ",".join(f'{t}="{_escape(v)}"' for t, v in zip(tags, s.labels)) + "}"
            out.append(text)
        return out


def _column(spec: MetricSpec, series: list[_Series]) -> list | None:
    """One field's exposed values per series (None where absent), or None when no series has it.
    Values are written with repr(): a float as Python writes it (which Prometheus parses, inf
    included), an int as digits; bools become 1/0."""
    field = spec.field
    values = [s.fields.get(field) for s in series]
    first = next((v for v in values if v is not None), None)
    if first is None:
        return None
    if spec.scale != 1.0:
        scale = spec.scale
        return [None if v is None else float(v) * scale for v in values]
    if isinstance(first, bool):
        return [None if v is None else int(v) for v in values]
    return values


class _Families:
    """A fixed list of families, as ``generate_latest`` takes a registry."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


# --- serving -----------------------------------------------------------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_app(collector: StoreCollector, registry=None):
    """A WSGI app: ``GET /metrics`` answers the store's series (:meth:`StoreCollector.render`)
    followed by *registry*'s own metrics (the process's, say); any other path is 404."""
    from prometheus_client.exposition import generate_latest

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are on /metrics\n"]
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain; charset=utf-8"),
                                                      ("Allow", "GET, HEAD")])
            return [b"GET only\n"]
        body = collector.render() + (generate_latest(registry) if registry is not None else b"")
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app
