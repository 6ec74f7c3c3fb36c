"""The metric contract: every measurement, its tags and its fields with units, defined once.

Both stores, every collector, the optimizer, the dashboard and the report use these names.
Rules (DESIGN.md): SI units in field names; counters stored raw (resets are handled
downstream); a missing reading is *absent*, never 0 or a sentinel; GPUs keyed by UUID;
timestamps are UTC nanoseconds since the epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

FieldValue = float | int | bool | str


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: type  # float, int, bool or str
    unit: str  # SI unit, or "" for strings/flags
    description: str
    counter: bool = False


@dataclass(frozen=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: dict[str, FieldSpec]
    description: str

    def field_names(self) -> frozenset[str]:
        return frozenset(self.fields)


def _m(name: str, tags: tuple[str, ...], description: str, *fields: FieldSpec) -> Measurement:
    return Measurement(name, tags, {f.name: f for f in fields}, description)


F = FieldSpec
_PDU_FIELDS = (
    F("power_w", float, "W", "active power"),
    F("apparent_power_va", float, "VA", "apparent power"),
    F("power_factor", float, "", "power factor 0..1"),
    F("energy_kwh", float, "kWh", "energy counter (raw, may reset)", counter=True),
    F("current_a", float, "A", "RMS current"),
    F("voltage_v", float, "V", "RMS voltage"),
    F("load_pct", float, "%", "load as a share of the rated/breaker current"),
    F("breaker_a", float, "A", "rated current of the breaker or input"),
)

MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (
    _m("gpu", ("site", "room", "rack", "host", "gpu", "uuid", "model"), "one GPU, sampled over NVML",
       F("power_w", float, "W", "instantaneous board power"),
       F("power_avg_w", float, "W", "power averaged by the driver over ~1 s"),
       F("energy_j", float, "J", "total energy counter since driver load (raw)", counter=True),
       F("power_limit_w", float, "W", "enforced power limit"),
       F("power_limit_default_w", float, "W", "default power limit"),
       F("power_limit_min_w", float, "W", "lowest settable power limit"),
       F("power_limit_max_w", float, "W", "highest settable power limit"),
       F("temp_c", float, "°C", "GPU core temperature"),
       F("mem_temp_c", float, "°C", "HBM temperature"),
       F("util_pct", float, "%", "SM utilisation"),
       F("mem_util_pct", float, "%", "memory controller utilisation"),
       F("sm_active_pct", float, "%", "time SMs had a warp resident, averaged over all SMs (DCGM profiling "
         "DCGM_FI_PROF_SM_ACTIVE x 100; dcgm-exporter only)"),
       F("mem_used_bytes", int, "B", "memory used"),
       F("mem_total_bytes", int, "B", "memory installed"),
       F("sm_clock_mhz", float, "MHz", "SM clock"),
       F("mem_clock_mhz", float, "MHz", "memory clock"),
       F("throttle_reasons", int, "", "NVML clock event reasons bitmask"),
       F("ecc_uncorrected", int, "", "volatile uncorrected ECC errors", counter=True),
       F("ecc_corrected", int, "", "volatile corrected ECC errors", counter=True),
       F("fan_pct", float, "%", "fan speed"),
       F("pstate", int, "", "performance state P0..P15")),
    _m("workload", ("site", "host", "uuid"), "what runs on a GPU, from the scheduler (or the twin)",
       F("job", str, "", "job id, empty when idle"),
       F("tenant", str, "", "tenant of the job ('unmapped:<account>' when the config does not map it)"),
       F("job_class", str, "", "training, fine_tuning, inference, batch or unknown"),
       F("account", str, "", "the scheduler's identity the tenant comes from: Slurm account or Kubernetes "
         "namespace"),
       F("start_ns", int, "ns", "when the job started (UTC, ns since the epoch)"),
       F("user", str, "", "the job's user; only where [workload] record_users is set"),
       F("source", str, "", "slurm, kubernetes or dcgm")),
    _m("pdu", ("site", "room", "rack", "pdu", "feed"), "a rack PDU as a whole (its input)", *_PDU_FIELDS),
    _m("pdu_phase", ("site", "room", "rack", "pdu", "feed", "phase"), "one input phase/line of a PDU", *_PDU_FIELDS),
    _m("pdu_breaker", ("site", "room", "rack", "pdu", "feed", "breaker"), "one overcurrent protector of a PDU",
       *_PDU_FIELDS),
    _m("pdu_outlet", ("site", "room", "rack", "pdu", "feed", "outlet"), "one outlet of a PDU", *_PDU_FIELDS),
    _m("cooling", ("site", "room", "unit", "kind"), "a CRAH, in-row cooler or chiller",
       F("supply_temp_c", float, "°C", "supply air (or chilled water) temperature"),
       F("return_temp_c", float, "°C", "return air (or water) temperature"),
       F("setpoint_c", float, "°C", "supply temperature set point"),
       F("rack_inlet_temp_c", float, "°C", "rack inlet temperature it controls to"),
       F("fan_pct", float, "%", "fan speed"),
       F("airflow_m3s", float, "m³/s", "air flow"),
       F("cooling_kw", float, "kW", "heat removed"),
       F("power_w", float, "W", "electrical input"),
       F("humidity_pct", float, "%", "relative humidity"),
       F("economizer_pct", float, "%", "share of load carried by free cooling"),
       F("cop", float, "", "coefficient of performance")),
    _m("ups", ("site", "ups"), "an uninterruptible power supply",
       F("input_power_w", float, "W", "input active power"),
       F("output_power_w", float, "W", "output active power"),
       F("load_pct", float, "%", "output load as a share of capacity"),
       F("on_battery", bool, "", "running on battery"),
       F("energy_kwh", float, "kWh", "output energy counter (raw)", counter=True),
       F("battery_charge_pct", float, "%", "battery charge"),
       F("runtime_s", float, "s", "estimated runtime on battery"),
       F("input_voltage_v", float, "V", "input voltage"),
       F("output_voltage_v", float, "V", "output voltage")),
    _m("meter", ("site", "meter", "role"), "an electricity meter",
       F("power_w", float, "W", "active power"),
       F("energy_kwh", float, "kWh", "energy counter (raw)", counter=True)),
    _m("env", ("site", "room", "rack", "sensor", "position"), "a temperature/humidity probe",
       F("temp_c", float, "°C", "temperature"),
       F("humidity_pct", float, "%", "relative humidity")),
    _m("facility", ("site",), "site totals derived from the meters",
       F("total_power_w", float, "W", "facility input power"),
       F("it_power_w", float, "W", "IT power (at the metering point of the PUE category)"),
       F("cooling_power_w", float, "W", "cooling power"),
       F("loss_power_w", float, "W", "distribution and UPS losses"),
       F("pue", float, "", "instantaneous PUE = total / IT"),
       F("outdoor_temp_c", float, "°C", "outdoor dry-bulb temperature"),
       F("outdoor_rh_pct", float, "%", "outdoor relative humidity")),
    _m("optimizer", ("site", "host", "uuid", "action"), "one optimizer decision (advice or action)",
       F("power_limit_w", float, "W", "cap decided"),
       F("previous_w", float, "W", "cap before"),
       F("reason", str, "", "why"),
       F("mode", str, "", "off, advise or enforce"),
       F("predicted_pue", float, "", "PUE the model predicted for the decision"),
       F("est_saving_w", float, "W", "estimated facility power saved"),
       F("lease_s", float, "s", "how long the cap holds without renewal"),
       F("measured_saving_pct", float, "%", "M&V: measured energy saving per unit of work, capped jobs vs the "
         "control group at default limits (action 'measured')"),
       F("measured_ci_low_pct", float, "%", "M&V: low end of the measured saving's 95 % confidence interval"),
       F("measured_ci_high_pct", float, "%", "M&V: high end of the measured saving's 95 % confidence interval"),
       F("control_jobs", int, "", "M&V: jobs in the control group the measured saving compares against"),
       F("treated_jobs", int, "", "M&V: jobs the optimizer may cap that the measured saving covers"),
       F("dr_budget_w", float, "W", "demand response: the facility budget set (action 'demand_response')"),
       F("dr_until_ns", int, "ns", "demand response: when the budget ends, UTC"),
       F("actor", str, "", "demand response: who set or ended it")),
    _m("progress", ("site", "job", "tenant"), "work a job reports having done (by itself or its inference server)",
       F("work_done", float, "", "work done so far, in the job's own unit (a counter)", counter=True),
       F("unit", str, "", "what work_done counts: steps, samples, tokens, requests"),
       F("source", str, "", "post (POST /v1/progress) or scrape (an inference server's metrics)")),
    # Derived (dcim.report.job_days), never collected: one local day's job attribution, computed
    # once from the hourly gpu and workload data, so a quarter's report by job reads ~100 points
    # per day instead of 98,000 GPU-hours. The (job, GPU) pairs travel as one JSON table per rack
    # (and part: at most PAIRS_PER_POINT rows, under InfluxDB's 64 KB string limit): as points
    # per (job, GPU) a quarter was 520,000 series-days, 4 s per read through either store.
    _m("job_energy", ("site", "rack", "part"),
       "derived: the (job, GPU) pairs of one rack in one local day (time: the day's start + its version)",
       F("pairs", str, "", "JSON table: jobs ([job, tenant, account]) and uuids named once, then per pair columns "
         "job and gpu (indices), power_kwh (the GPU's hourly mean power integrated over the job's share of each "
         "hour; the report scales it to the GPU's energy counter over the period), gpu_hours, first_ns and "
         "last_ns (first and last time held, UTC ns)"),
       F("pair_count", int, "", "rows in pairs"),
       F("version", int, "", "the computation of the day it belongs to (job_day's version); readers take only the "
         "day's current one")),
    _m("job_day", ("site",), "derived: which local days job_energy holds, and the input counts they were computed "
       "from (time: the day's start + its version)",
       F("version", int, "", "the day's job_energy version (ms, added to the day's start)"),
       F("start_ns", int, "ns", "the day's start: local midnight (UTC, ns since the epoch)"),
       F("end_ns", int, "ns", "the day's end: the next local midnight"),
       F("workload_points", int, "", "workload points in the UTC days the day (and the hour before it) overlaps, "
         "when computed"),
       F("gpu_points", int, "", "gpu power_w points in the UTC days the day overlaps, when computed"),
       F("pairs", int, "", "job-GPU pairs written")),
    # The alarm engine's (alerts/) state and history: one point per transition of one alarm
    # (rule x entity); the newest point of an alarm is its state, so a restarted engine resumes it.
    _m("alarm", ("site", "rule", "entity", "severity"), "one alarm's state change (alerts/ engine, operators)",
       F("state", str, "", "raised, acked, shelved or cleared"),
       F("value", float, "", "the reading that raised (or cleared) it, in the rule's unit"),
       F("threshold", float, "", "the limit it crossed, in the rule's unit"),
       F("unit", str, "", "the unit of value and threshold"),
       F("summary", str, "", "one line for people: what, where, how far over"),
       F("parts", str, "", "the device's parts in alarm (phases, outlets, sensors, GPUs), comma-separated"),
       F("raised_ns", int, "ns", "when this occurrence was raised (UTC ns); the same for its ack/shelve/clear"),
       F("shelved_until_ns", int, "ns", "while shelved: when it returns (UTC ns)"),
       F("by", str, "", "who acknowledged or shelved it (the engine for raise/clear)"),
       F("note", str, "", "the operator's note")),
    _m("collector", ("collector", "target"), "the collectors' own health",
       F("duration_s", float, "s", "time the poll took"),
       F("ok", bool, "", "poll succeeded"),
       F("error", str, "", "why it failed"),
       F("points", int, "", "points produced"),
       F("dropped", int, "", "points dropped by the writer (counted)"),
       F("replies_unsolicited", int, "", "SNMP replies dropped unread this cycle: not from a polled "
         "address, or an unknown request id"),
       F("replies_garbled", int, "", "SNMP replies that did not decode this cycle"),
       F("jobs", int, "", "jobs on GPUs the workload source reported this cycle"),
       F("jobs_unplaced", int, "", "of those, GPU holds on a host or GPU index not in the inventory or "
         "telemetry (recorded under host/index, never dropped)")),
)}

# The optimizer's audit trail: one row per decision (action set, revert, advise, ...) and one per
# cycle under this action, host "" and uuid "", whose est_saving_w is the whole facility's
# estimated saving at that cycle. Savings over time integrate the cycle rows; decision rows
# repeat a share of it at the moment a cap changed.
OPTIMIZER_CYCLE_ACTION = "cycle"


class PointError(ValueError):
    """A point that does not fit the metric contract."""


class Point:
    """One sample: measurement, identity tags, field values, UTC time in nanoseconds."""

    __slots__ = ("measurement", "tags", "fields", "time_ns")

    def __init__(self, measurement: str, tags: dict[str, str], fields: dict[str, FieldValue],
                 time_ns: int | None = None):
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        self.time_ns = time.time_ns() if time_ns is None else int(time_ns)

    def __repr__(self) -> str:
        return f"Point({self.measurement!r}, {self.tags!r}, {self.fields!r}, {self.time_ns})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Point) and self.measurement == other.measurement and self.tags == other.tags
                and self.fields == other.fields and self.time_ns == other.time_ns)

    def to_json(self) -> dict:
        from datetime import UTC, datetime

        ts = datetime.fromtimestamp(self.time_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
        return {"measurement": self.measurement, "tags": dict(self.tags), "fields": dict(self.fields), "time": ts}


_FIELD_SETS = {name: m.field_names() for name, m in MEASUREMENTS.items()}
_TAG_SETS = {name: frozenset(m.tags) for name, m in MEASUREMENTS.items()}


def validate_point(point: Point) -> None:
    """Raise PointError if the point has an unknown measurement, tag or field, no fields,
    or a value of the wrong kind. Cheap enough for the write path."""
    allowed = _FIELD_SETS.get(point.measurement)
    if allowed is None:
        raise PointError(f"unknown measurement {point.measurement!r}")
    if not point.fields:
        raise PointError(f"{point.measurement}: a point needs at least one field")
    if not point.fields.keys() <= allowed:
        unknown = sorted(set(point.fields) - allowed)
        raise PointError(f"{point.measurement}: unknown field(s) {unknown}")
    if not point.tags.keys() <= _TAG_SETS[point.measurement]:
        unknown = sorted(set(point.tags) - _TAG_SETS[point.measurement])
        raise PointError(f"{point.measurement}: unknown tag(s) {unknown}")
    specs = MEASUREMENTS[point.measurement].fields
    for name, value in point.fields.items():
        kind = specs[name].kind
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise PointError(f"{point.measurement}.{name}: expected a number, got {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise PointError(f"{point.measurement}.{name}: expected an integer, got {value!r}")
        elif not isinstance(value, kind):
            raise PointError(f"{point.measurement}.{name}: expected {kind.__name__}, got {value!r}")


def field_unit(measurement: str, field: str) -> str:
    return MEASUREMENTS[measurement].fields[field].unit
