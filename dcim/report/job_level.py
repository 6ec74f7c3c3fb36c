"""The report's job rows (``--by job``) and the tenant rows billed by job.

Job rows: one per job seen holding a GPU in the period (HPC accounting, like Slurm's sacct
ConsumedEnergy plus the facility's overhead), then one ``(no job)`` row per rack owner with the
IT energy no job held (idle GPUs, hours without workload data, the non-GPU IT of racks whose
GPUs ran no job), so the job rows add up to the racks' IT energy. Facility energy = IT × the
site's period PUE, as every chargeback row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dcim.report.chargeback import NO_OWNER, Bill, Gpus, JobTotals, bills, job_totals
from dcim.report.energy import allocate_overhead, pue
from dcim.report.job_days import read_pairs
from dcim.report.periods import Period
from dcim.store.base import Store

NO_JOB_ENTITY = "(no job)"


def _local(ns: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=tz).isoformat(timespec="minutes")


def _r(value: float | None, digits: int = 3):
    return "" if value is None else round(value, digits)


@dataclass
class Billing:
    totals: JobTotals
    bills: dict[str, Bill]
    period: Period

    @classmethod
    def read(cls, store: Store, site_name: str, tz: str, period: Period, interval_s: float,
             rack_it_kwh: dict[str, float | None], owner_of: dict[str, str]) -> Billing:
        pairs = read_pairs(store, site_name, tz, period.start_ns, period.end_ns, interval_s)
        if not len(pairs):  # no job held a GPU: no GPU figures to read
            gpus = Gpus({}, {}, {})
        else:
            gpus = Gpus.read(store, period.start_ns, period.end_ns)
        factor = gpus.factors(rack_it_kwh)
        totals = job_totals(pairs, gpus, factor, period.start_ns, period.end_ns)
        return cls(totals, bills(pairs, totals, gpus, factor, rack_it_kwh, owner_of), period)

    def job_rows(self, base: dict, site: dict, tz: ZoneInfo, grid: float) -> list[dict]:
        t = self.totals
        fac, it = site["facility"], site["it"]
        site_pue = pue(fac.kwh, it.kwh)
        rows = []

        def row(entity: str, tenant: str, it_kwh: float | None, method: str, **extra) -> dict:
            fac_kwh = allocate_overhead(it_kwh, it.kwh, fac.kwh) if it_kwh is not None else None
            return dict(base, level="job", entity=entity, tenant=tenant, it_kwh=_r(it_kwh), facility_kwh=_r(fac_kwh),
                        pue=_r(site_pue, 4), co2e_kg=_r(None if fac_kwh is None else fac_kwh * grid),
                        share_of_it_pct=_r(None if not it.kwh or it_kwh is None else 100 * it_kwh / it.kwh, 4),
                        chargeback_method=method, **extra)

        order = sorted(range(len(t.jobs)), key=lambda c: (t.start_ns[c], t.jobs[c]))
        for c in order:
            if t.gpu_hours[c] <= 0:
                continue
            rows.append(row(t.jobs[c], t.tenant[c], float(t.it_kwh[c]), "job", job=t.jobs[c],
                            account=t.account[c], gpus=int(t.gpus[c]), start=_local(t.start_ns[c], tz),
                            end=_local(t.end_ns[c], tz), gpu_hours=_r(float(t.gpu_hours[c]), 3),
                            gpu_kwh=_r(float(t.gpu_kwh[c]))))
        for tenant in sorted(self.bills):
            b = self.bills[tenant]
            if b.owner_known:
                rows.append(row(NO_JOB_ENTITY, tenant, b.owner_it_kwh, "rack_owner"))
        return rows

    def tenant_row(self, row: dict, tenant: str, site: dict, total_it: float | None, grid: float) -> dict:
        """A tenant row billed by job: its jobs' IT energy plus the remainder of its racks."""
        b = self.bills.get(tenant) or Bill()
        it_kwh = b.it_kwh
        fac, it = site["facility"], site["it"]
        fac_kwh = allocate_overhead(it_kwh, it.kwh, fac.kwh) if it_kwh is not None else None
        row = dict(row, tenant=tenant, it_kwh=_r(it_kwh), facility_kwh=_r(fac_kwh),
                   pue=_r(pue(fac.kwh, it.kwh), 4),
                   co2e_kg=_r(None if fac_kwh is None else fac_kwh * grid),
                   avg_kw=_r(None if it_kwh is None else it_kwh / self.period.hours),
                   gpu_kwh=_r(b.job_gpu_kwh), chargeback_method=b.method,
                   share_of_it_pct=_r(None if not total_it or it_kwh is None else 100 * it_kwh / total_it, 2))
        if b.method != "rack_owner":  # the racks' PDU peak is not this tenant's demand
            row.update(peak_kw="", peak_time="")
        if not b.racks:
            row.update(gpu_hours=_r(b.job_gpu_hours, 1), coverage_pct="", it_method="")
        return row

    def tenants_without_racks(self, named: set[str]) -> list[str]:
        """Tenants billed only by job (an ``unmapped:<account>``, a tenant owning no rack)."""
        return sorted(t for t, b in self.bills.items() if t not in named and (b.job_it_kwh > 0 or b.owner_known))


def read_billing(store: Store, config, inv, period: Period, rack_energy: dict) -> Billing:
    owner_of = {r.rack: r.tenant or NO_OWNER for r in inv.racks}
    return Billing.read(store, config.site.name, config.site.timezone, period, config.workload.interval_s,
                        {r: e.kwh for r, e in rack_energy.items()},
                        owner_of)
