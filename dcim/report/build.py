"""Build the energy report's rows from the store (the only I/O here is ``store.query``).

Where each figure comes from:

- **Facility energy**: the ``facility_total`` meter's energy counter; else its integrated power;
  else the integrated ``facility.total_power_w``.
- **IT energy (site)**: at the metering point of the site's PUE category — category 1: UPS
  output energy counters (else integrated UPS output power); category 2/3: the PDUs.
- **IT energy (room, rack, tenant)**: the rack PDUs' energy counters (A + B feeds), else their
  integrated power. A tenant is charged for the racks it owns.
- **IT energy (GPU)**: the GPU's own energy counter (board power only), else integrated power.
- **Cooling**: the ``cooling`` meter, else the cooling units' integrated power.
- **Losses and other**: facility − IT − cooling (UPS, distribution and other loads).
- **Facility energy of an entity** (chargeback): its IT energy × the site's period PUE.
- **Peak demand**: the largest hourly mean power (site: 15-minute mean; room, rack, tenant: the
  hourly sum of its PDUs' means), with its local time.
- **Optimizer savings**: the integral of the facility saving the optimizer states every cycle
  (its cycle rows' ``est_saving_w``, hourly means); shared out to racks by the savings its
  decisions estimated for their hosts' GPUs.

Counters give their increase per key (``Store.counter_increase``: resets found between and
inside UTC days); power is read per hour. Coverage is the share of hours with data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dcim.config import Config
from dcim.inventory import Inventory, build_inventory
from dcim.metrics import OPTIMIZER_CYCLE_ACTION
from dcim.report.energy import (
    allocate_overhead,
    coverage_of,
    integrate_mean_sum,
    peak,
    pue,
)
from dcim.report.job_level import read_billing
from dcim.report.periods import Period, trailing_twelve_months
from dcim.store.base import Aggregate, BucketStats, Store

HOUR_S = 3600
QUARTER_HOUR_S = 900

COLUMNS: list[tuple[str, str]] = [
    ("period", "period label (2026Q3, 2026-07, or from..to)"),
    ("period_start", "start of the period, local time (ISO 8601 with offset)"),
    ("period_end", "end of the period (exclusive), local time"),
    ("level", "site, room, rack, tenant, gpu or job"),
    ("entity", "name of the site, room, rack, tenant, the GPU's UUID, or the job id ('(no job)': a rack owner's "
               "energy no job held)"),
    ("site", "site name"),
    ("room", "room (room, rack and gpu rows)"),
    ("rack", "rack (rack and gpu rows)"),
    ("host", "server (gpu rows)"),
    ("tenant", "tenant owning the rack (rack, tenant and gpu rows); the job's tenant (job rows)"),
    ("job", "scheduler job id (job rows)"),
    ("account", "the job's scheduler account or namespace (job rows)"),
    ("it_kwh", "IT energy, kWh"),
    ("it_method", "counter, integrated_power or none"),
    ("coverage_pct", "share of the period's hours with data, %"),
    ("counter_resets", "counter resets detected and handled"),
    ("cooling_kwh", "cooling energy, kWh (site rows)"),
    ("loss_other_kwh", "UPS, distribution and other losses, kWh (site rows)"),
    ("facility_kwh", "facility energy, kWh: metered (site) or IT × site PUE (chargeback)"),
    ("pue", "period PUE = facility ÷ IT energy (energy-based)"),
    ("pue_category", "The Green Grid measurement category of the IT energy (1: UPS output, 2: PDU output)"),
    ("pue_ttm", "trailing-twelve-month PUE ending with the period (site rows)"),
    ("avg_kw", "average IT demand (site: facility demand), kW"),
    ("peak_kw", "peak demand, kW (site: 15-min mean, or hourly where the store no longer holds 15-min detail for "
                "the whole period; others: hourly mean)"),
    ("peak_time", "local time the peak interval started"),
    ("co2e_kg", "facility energy × grid factor, kg CO2e"),
    ("grid_kgco2e_per_kwh", "grid emission factor used"),
    ("optimizer_saved_kwh", "energy the optimizer's caps saved (estimated from its audit trail), kWh"),
    ("gpu_hours", "GPU-hours with telemetry"),
    ("gpu_busy_hours", "GPU-hours weighted by utilisation"),
    ("share_of_it_pct", "share of the site's IT energy, %"),
    ("gpus", "distinct GPUs the job held (job rows)"),
    ("start", "first time the job was seen holding a GPU in the period, local time (job rows)"),
    ("end", "last time the job was seen holding a GPU in the period, local time (job rows)"),
    ("gpu_kwh", "GPU energy while the job (tenant rows: the tenant's jobs) held the GPUs, kWh"),
    ("chargeback_method", "job (billed by the jobs' GPU energy), rack_owner (by rack tenancy) or mixed"),
]
COLUMN_NAMES = [c for c, _ in COLUMNS]
LEVELS = ("site", "room", "rack", "tenant", "gpu", "job")


@dataclass
class _Energy:
    kwh: float | None
    method: str
    coverage_pct: float
    resets: int


def _series_by(store: Store, measurement: str, field: str, period: Period, every_s: int, agg: Aggregate,
               group_by: tuple[str, ...], where=None) -> dict[tuple, tuple[list[int], list]]:
    out = {}
    for s in store.query(measurement, [field], period.start_ns, period.end_ns, every_s=every_s, agg=agg,
                         group_by=group_by, where=where):
        out[tuple(s.tags.get(t, "") for t in group_by)] = (s.times_ns, s.values[field])
    return out


class _Source:
    """Counter and power figures of one measurement, keyed by a tag tuple, for one period:
    *counter* {key: (increase, resets)} in the counter's unit, *power* {key: its hourly power
    summarised (hours with data, Σ hourly means, the peak hour: ``Store.bucket_stats``)}, or a
    function that reads it, called on first use (see _read_source)."""

    def __init__(self, period: Period, key: tuple[str, ...], counter: dict[tuple, tuple[float, int]],
                 power: dict[tuple, BucketStats] | Callable[[], dict[tuple, BucketStats]],
                 counter_scale_kwh: float = 1.0):
        self.period = period
        self.key = key
        self.counter = counter
        self.counter_scale_kwh = counter_scale_kwh
        self._power = power

    @property
    def power(self) -> dict[tuple, BucketStats]:
        if callable(self._power):
            self._power = self._power()
        return self._power

    def keys(self) -> set[tuple]:
        return set(self.power) | set(self.counter)

    def peak(self, k: tuple) -> tuple[float | None, int | None]:
        """The largest hourly mean power (W) of one key and the start of its hour."""
        st = self.power.get(k)
        return (st.peak, st.peak_ns) if st else (None, None)

    def energy(self, k: tuple, with_coverage: bool = True) -> _Energy:
        """Energy of one key; *with_coverage* False skips the coverage (0.0) where counters
        give the energy, so the hourly power is not read for it."""
        hours = round(self.period.hours)
        if k in self.counter:
            delta, resets = self.counter[k]
            cov = coverage_of(self._hours(k), hours) if with_coverage else 0.0
            return _Energy(delta * self.counter_scale_kwh, "counter", cov, resets)
        st = self.power.get(k)
        if st is not None and st.buckets:
            return _Energy(integrate_mean_sum(st.total, HOUR_S), "integrated_power",
                           coverage_of(st.buckets, hours), 0)
        return _Energy(None, "none", 0.0, 0)

    def _hours(self, k: tuple) -> int:
        st = self.power.get(k)
        return st.buckets if st else 0


def _sum_energy(parts: list[_Energy]) -> _Energy:
    known = [p for p in parts if p.kwh is not None]
    if not known:
        return _Energy(None, "none", 0.0, 0)
    kwh = sum(p.kwh for p in known if p.kwh is not None)
    methods = {p.method for p in known}
    method = methods.pop() if len(methods) == 1 else "mixed"
    # Coverage of a sum is limited by its least-covered part: a missing PDU makes the rack figure low.
    return _Energy(kwh, method, min(p.coverage_pct for p in parts), sum(p.resets for p in parts))


def _local(ns: int | None, tz: ZoneInfo) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=tz).isoformat(timespec="minutes")


def _round(value: float | None, digits: int = 3):
    return "" if value is None else round(value, digits)


def _read_source(store: Store, period: Period, measurement: str, key: tuple[str, ...], counter_field: str | None,
                 power_field: str) -> _Source:
    """A _Source read from *store*: the counter now, the hourly power on first use (an energy
    figure from counters needs it only for its coverage, and the trailing-twelve-month PUE
    needs none)."""
    counter = {}
    if counter_field:
        counter = store.counter_increase(measurement, counter_field, period.start_ns, period.end_ns, group_by=key)
    return _Source(period, key, counter, lambda: store.bucket_stats(measurement, power_field, period.start_ns,
                                                                    period.end_ns, HOUR_S, group_by=key))


def _source(cache: dict | None, store: Store, period: Period, measurement: str, key: tuple[str, ...],
            counter_field: str | None, power_field: str) -> _Source:
    """One _Source per (store, period, series) within one report: the site totals and the rack
    rows read the same PDU series."""
    if cache is None:
        return _read_source(store, period, measurement, key, counter_field, power_field)
    ck = (id(store), period.start_ns, period.end_ns, measurement, key, counter_field, power_field)
    src = cache.get(ck)
    if src is None:
        src = cache[ck] = _read_source(store, period, measurement, key, counter_field, power_field)
    return src


def site_totals(store: Store, config: Config, period: Period, *, coverage: bool = True,
                cache: dict | None = None) -> dict:
    """Facility, IT, cooling energy and PUE of the site over *period* (kWh). With *coverage*
    False, coverage_pct of counter-based figures is not computed (0.0), which saves reading
    hourly power where counters exist (the trailing-twelve-month PUE needs none)."""
    cov = coverage
    meters = _source(cache, store, period, "meter", ("role",), "energy_kwh", "power_w")
    facility = meters.energy(("facility_total",), cov)
    if facility.kwh is None:
        fac = _source(cache, store, period, "facility", ("site",), None, "total_power_w")
        facility = fac.energy((config.site.name,), cov)
    if config.site.pue_category == 1 and config.ups:
        ups = _source(cache, store, period, "ups", ("ups",), "energy_kwh", "output_power_w")
        it = _sum_energy([ups.energy((u.name,), cov) for u in config.ups])
    else:
        pdus = _source(cache, store, period, "pdu", ("pdu",), "energy_kwh", "power_w")
        it = _sum_energy([pdus.energy((p.name,), cov) for p in config.pdus])
    cooling = meters.energy(("cooling",), cov)
    if cooling.kwh is None and config.cooling:
        units = _source(cache, store, period, "cooling", ("unit",), None, "power_w")
        cooling = _sum_energy([units.energy((c.name,), cov) for c in config.cooling])
    loss = None
    if facility.kwh is not None and it.kwh is not None:
        loss = facility.kwh - it.kwh - (cooling.kwh or 0.0)
    return {"facility": facility, "it": it, "cooling": cooling, "loss_kwh": loss,
            "pue": pue(facility.kwh, it.kwh)}


def build_report(store: Store, config: Config, period: Period, by: str = "rack",
                 progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows of the energy report for *period*: one site row first, then one row per *by* entity
    (room, rack, tenant or gpu). Columns are ``COLUMN_NAMES``; units in ``COLUMNS``."""
    if by not in LEVELS:
        raise ValueError(f"--by must be one of {', '.join(LEVELS)}, got {by!r}")
    say = progress or (lambda _msg: None)
    inv = build_inventory(config)
    tz = ZoneInfo(config.site.timezone)
    base = {"period": period.label, "period_start": period.start.isoformat(), "period_end": period.end.isoformat(),
            "site": config.site.name, "grid_kgco2e_per_kwh": config.site.grid_kgco2e_per_kwh,
            "pue_category": config.site.pue_category}
    cache: dict = {}
    say("site totals")
    site = site_totals(store, config, period, cache=cache)
    site_row, saved_by_host = _site_row(store, config, period, base, site, tz, say)
    rows = [site_row]
    if by == "gpu":
        rows += _gpu_rows(store, config, inv, period, base, site, saved_by_host, tz, say)
    elif by != "site":
        rows += _entity_rows(store, config, inv, period, by, base, site, saved_by_host, tz, cache, say)
    return [_complete(r) for r in rows]


def _site_row(store: Store, config: Config, period: Period, base: dict, site: dict, tz: ZoneInfo,
              say: Callable[[str], None]) -> tuple[dict, dict[str, float]]:
    """The site's row, and the optimizer's saving per host (kWh) that the entity rows share out."""
    say("trailing twelve months")
    ttm = site_totals(store, config, trailing_twelve_months(period), coverage=False)
    say("site peak")
    peak_w, peak_at = _site_peak(store, config, period)
    say("optimizer savings")
    saved_kwh, saved_by_host = _savings(store, period)
    fac = site["facility"]
    it = site["it"]
    grid = config.site.grid_kgco2e_per_kwh
    row = dict(base, level="site", entity=config.site.name,
               it_kwh=_round(it.kwh), it_method=it.method, coverage_pct=_round(min(fac.coverage_pct, it.coverage_pct), 1),
               counter_resets=fac.resets + it.resets, cooling_kwh=_round(site["cooling"].kwh),
               loss_other_kwh=_round(site["loss_kwh"]), facility_kwh=_round(fac.kwh), pue=_round(site["pue"], 4),
               pue_ttm=_round(ttm["pue"], 4),
               avg_kw=_round(None if fac.kwh is None else fac.kwh / period.hours),
               peak_kw=_round(None if peak_w is None else peak_w / 1000), peak_time=_local(peak_at, tz),
               co2e_kg=_round(None if fac.kwh is None else fac.kwh * grid),
               optimizer_saved_kwh=_round(saved_kwh),
               share_of_it_pct=100.0 if it.kwh else "")
    return row, saved_by_host


def _entity_rows(store: Store, config: Config, inv: Inventory, period: Period, by: str, base: dict, site: dict,
                 saved_by_host: dict[str, float], tz: ZoneInfo, cache: dict, say: Callable[[str], None]) -> list[dict]:
    """One row per room, rack, tenant or job: the energy of its racks' PDUs."""
    say("GPU utilisation")
    # Per GPU: the hours it reported utilisation and the sum of those hourly means, added up
    # per rack (a GPU that fell silent adds no hours).
    util = store.bucket_stats("gpu", "util_pct", period.start_ns, period.end_ns, HOUR_S, group_by=("rack",),
                              combine="each")
    say("rack PDUs")
    rack_energy = _rack_energy(store, inv, period, cache)
    grid = config.site.grid_kgco2e_per_kwh
    billing = None
    if by in ("job", "tenant"):
        say("job holds")
        billing = read_billing(store, config, inv, period, rack_energy)
        if by == "job":
            return billing.job_rows(base, site, tz, grid)

    groups: dict[str, list[str]] = defaultdict(list)
    for rack in inv.racks:
        key = {"room": rack.room, "rack": rack.rack, "tenant": rack.tenant or "(none)"}[by]
        groups[key].append(rack.rack)
    say("peak demand")
    peaks = _group_peaks(store, config, period, by, groups)
    host_rack = {s.host: s.rack for s in inv.servers}
    saved_by_rack: dict[str, float] = defaultdict(float)
    for host, kwh in saved_by_host.items():
        saved_by_rack[host_rack.get(host, "")] += kwh

    total_it = sum(e.kwh for e in rack_energy.values() if e.kwh is not None)
    rows = []
    for name in sorted(groups):
        racks = groups[name]
        row = _group_row(inv, period, by, name, racks, base, site, rack_energy, peaks.get(name, (None, None)),
                         _gpu_hours(util, racks), sum(saved_by_rack.get(r, 0.0) for r in racks), total_it, tz, grid)
        rows.append(row if billing is None else billing.tenant_row(row, name, site, total_it, grid))
    if billing is not None:
        rows += [billing.tenant_row(dict(base, level="tenant", entity=t), t, site, total_it, grid)
                 for t in billing.tenants_without_racks(set(groups))]
    return rows


def _rack_energy(store: Store, inv: Inventory, period: Period, cache: dict) -> dict[str, _Energy]:
    """Each rack's IT energy: its PDUs' (A + B feeds) together."""
    pdus = _source(cache, store, period, "pdu", ("pdu",), "energy_kwh", "power_w")
    rack_energy: dict[str, _Energy] = {}
    for rack in inv.racks:
        names = [p.name for p in inv.pdus_by_rack.get(rack.rack, [])]
        rack_energy[rack.rack] = _sum_energy([pdus.energy((n,)) for n in names]) if names else _Energy(None, "none", 0.0, 0)
    return rack_energy


def _gpu_hours(util: dict[tuple, BucketStats], racks: list[str]) -> tuple[float, float]:
    """GPU-hours with telemetry and busy GPU-hours (weighted by utilisation) of *racks*."""
    hours = busy = 0.0
    for rack in racks:
        st = util.get((rack,))
        if st is not None:
            hours += st.buckets
            busy += st.total / 100.0
    return hours, busy


def _group_row(inv: Inventory, period: Period, by: str, name: str, racks: list[str], base: dict, site: dict,
               rack_energy: dict[str, _Energy], peak_at: tuple[float | None, int | None],
               gpu_hours: tuple[float, float], saved_kwh: float, total_it: float, tz: ZoneInfo, grid: float) -> dict:
    """The row of one room, rack or tenant (*name*, holding *racks*)."""
    e = _sum_energy([rack_energy[r] for r in racks])
    pk, pk_at = peak_at
    hours, busy = gpu_hours
    first = inv.rack_by_name[racks[0]]
    fac_kwh = allocate_overhead(e.kwh, site["it"].kwh, site["facility"].kwh) if e.kwh is not None else None
    return dict(
        base, level=by, entity=name,
        room=first.room if by in ("room", "rack") else "", rack=name if by == "rack" else "",
        tenant=(first.tenant or "") if by in ("rack", "tenant") else "",
        it_kwh=_round(e.kwh), it_method=e.method, coverage_pct=_round(e.coverage_pct, 1), counter_resets=e.resets,
        facility_kwh=_round(fac_kwh), pue=_round(site["pue"], 4),
        avg_kw=_round(None if e.kwh is None else e.kwh / period.hours),
        peak_kw=_round(None if pk is None else pk / 1000), peak_time=_local(pk_at, tz),
        co2e_kg=_round(None if fac_kwh is None else fac_kwh * grid),
        optimizer_saved_kwh=_round(saved_kwh),
        gpu_hours=_round(hours, 1), gpu_busy_hours=_round(busy, 1),
        share_of_it_pct=_round(None if not total_it or e.kwh is None else 100 * e.kwh / total_it, 2),
    )


def _site_peak(store: Store, config: Config, period: Period) -> tuple[float | None, int | None]:
    """The site's peak demand: the largest 15-minute mean of facility power, where the store
    holds 15-minute detail for every hour it has data; else the largest hourly mean. (SQLite
    keeps its 1-minute rollups for a limited time; a 15-minute peak over only the part of the
    period still held would silently miss the rest, and differ from a store that keeps all.)"""
    key = (config.site.name,)
    fine = _series_by(store, "facility", "total_power_w", period, QUARTER_HOUR_S, "mean", ("site",)).get(key, ([], []))
    hourly = _series_by(store, "facility", "total_power_w", period, HOUR_S, "mean", ("site",)).get(key, ([], []))
    step = HOUR_S * 1_000_000_000
    fine_hours = {t - t % step for t, v in zip(*fine) if v is not None}
    hours = {t for t, v in zip(*hourly) if v is not None}
    if fine_hours and fine_hours >= hours:
        return peak(*fine)
    return peak(*hourly)


def _savings(store: Store, period: Period) -> tuple[float | None, dict[str, float]]:
    """(kWh the optimizer saved over *period*, its share per host). The cycle rows hold the
    facility's saving each cycle: their integral is the total. The decision rows say which GPUs
    it came from (each cap's estimated saving when set): a host's share of their integral is its
    share of the total. Without cycle rows (an audit trail from before them), the decisions'
    integral per host is all there is."""
    stats = store.bucket_stats("optimizer", "est_saving_w", period.start_ns, period.end_ns, HOUR_S,
                               group_by=("host", "action"), combine="each")
    cycle_kwh = [integrate_mean_sum(st.total, HOUR_S) for (_, action), st in stats.items()
                 if action == OPTIMIZER_CYCLE_ACTION]
    by_host: dict[str, float] = defaultdict(float)
    for (host, action), st in stats.items():
        if action != OPTIMIZER_CYCLE_ACTION:
            by_host[host] += integrate_mean_sum(st.total, HOUR_S)
    if not cycle_kwh:
        return (sum(by_host.values()) if by_host else None), dict(by_host)
    total = sum(cycle_kwh)
    weights = sum(by_host.values())
    return total, {h: total * kwh / weights for h, kwh in by_host.items()} if weights > 0 else {}


def _group_peaks(store: Store, config: Config, period: Period, by: str,
                 groups: dict[str, list[str]]) -> dict[str, tuple[float | None, int | None]]:
    """Per room, rack or tenant: the largest hourly power (W) of its racks' PDUs together (the
    sum of each PDU's hourly mean) and the start of that hour. Only the PDUs the config names,
    the same ones its energy comes from."""
    names = [p.name for p in config.pdus]
    start, end = period.start_ns, period.end_ns
    if by in ("room", "rack"):
        stats = store.bucket_stats("pdu", "power_w", start, end, HOUR_S, group_by=(by,), where={"pdu": names})
        return {k[0]: (st.peak, st.peak_ns) for k, st in stats.items()}
    out = {}
    for name, racks in groups.items():  # a tenant is no tag of a PDU: one read per tenant, of its racks
        st = store.bucket_stats("pdu", "power_w", start, end, HOUR_S, where={"rack": racks, "pdu": names}).get(())
        out[name] = (st.peak, st.peak_ns) if st else (None, None)
    return out


def _gpu_rows(store, config, inv, period, base, site, saved_by_host, tz, say) -> list[dict]:
    say("GPU energy counters")
    gpu_key = ("uuid", "host", "rack", "room")
    counters, hourly = store.period_figures("gpu", period.start_ns, period.end_ns, counters=["energy_j"],
                                            hourly=["power_w", "util_pct"], group_by=gpu_key)
    gpus = _Source(period, gpu_key, counters["energy_j"], hourly["power_w"], counter_scale_kwh=1 / 3.6e6)
    util = hourly["util_pct"]
    tenant_of = {r.rack: r.tenant or "" for r in inv.racks}
    rows = []
    fac, it = site["facility"], site["it"]
    for key in sorted(gpus.keys(), key=lambda k: (k[3], k[2], k[1], k[0])):
        uuid, host, rack, room = key
        e = gpus.energy(key)
        pk, pk_at = gpus.peak(key)
        u = util.get(key)
        fac_kwh = allocate_overhead(e.kwh, it.kwh, fac.kwh) if e.kwh is not None else None
        rows.append(dict(
            base, level="gpu", entity=uuid, room=room, rack=rack, host=host, tenant=tenant_of.get(rack, ""),
            it_kwh=_round(e.kwh), it_method=e.method, coverage_pct=_round(e.coverage_pct, 1), counter_resets=e.resets,
            facility_kwh=_round(fac_kwh), pue=_round(site["pue"], 4),
            avg_kw=_round(None if e.kwh is None else e.kwh / period.hours),
            peak_kw=_round(None if pk is None else pk / 1000), peak_time=_local(pk_at, tz),
            co2e_kg=_round(None if fac_kwh is None else fac_kwh * config.site.grid_kgco2e_per_kwh),
            gpu_hours=float(u.buckets if u else 0), gpu_busy_hours=_round(u.total / 100.0 if u else 0.0, 1),
            share_of_it_pct=_round(None if not it.kwh or e.kwh is None else 100 * e.kwh / it.kwh, 4),
        ))
    return rows


def _complete(row: dict) -> dict:
    return {c: row.get(c, "") for c in COLUMN_NAMES}
