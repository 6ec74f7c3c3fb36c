"""Tenants: who uses the GPUs now, and what this month has cost each so far.

*Now* comes from each GPU's latest power and the job holding it (the workload source's latest
point); *this month* is the energy report's tenant rows for the month so far (the same
chargeback the quarterly CSV bills: by job where a workload source runs, else by rack owner),
rebuilt once an hour.
"""

from __future__ import annotations

from dash import html

from dashboards import components as c
from dashboards.i18n import fmt_num, t
from dashboards.pages.base import cached

PATH = "/tenants"
TITLE = "nav.tenants"
IDLE = ""  # GPUs no job holds: one row of their own


def tenants_now(gpus: list[dict]) -> dict[str, dict]:
    """Per tenant: jobs, GPUs and GPU power now, from GPU rows joined to their jobs."""
    out: dict[str, dict] = {}
    for g in gpus:
        row = out.setdefault(g.get("tenant") or IDLE, {"jobs": set(), "gpus": 0, "gpu_kw": 0.0})
        if g.get("job"):
            row["jobs"].add(g["job"])
        row["gpus"] += 1
        if g.get("power_w") is not None and not g.get("stale"):
            row["gpu_kw"] += float(g["power_w"]) / 1000.0
    return out


def tenant_rows(now: dict[str, dict], month: list[dict], names: dict[str, str], lang: str) -> list[dict]:
    billed = {r["entity"]: r for r in month}
    rows = []
    for tenant in sorted(set(now) | set(billed), key=lambda k: (k == IDLE, k)):
        n = now.get(tenant, {"jobs": set(), "gpus": 0, "gpu_kw": 0.0})
        b = billed.get(tenant, {})
        rows.append({"tenant": names.get(tenant, tenant) if tenant != IDLE else t("tenants.idle", lang),
                     "jobs": len(n["jobs"]), "gpus": n["gpus"], "gpu_kw": round(n["gpu_kw"], 1),
                     "it_kwh": _r(b.get("it_kwh")), "facility_kwh": _r(b.get("facility_kwh")),
                     "method": b.get("chargeback_method") or "", "_state": "ok"})
    return rows


def _r(v):
    return None if v is None or v == "" else round(float(v), 0)


def _month(ctx) -> list[dict]:
    try:
        return ctx.data.tenants_month()
    except Exception:  # noqa: BLE001 — the month's figures are a convenience; the page still shows now
        return []


def unplaced_holds(points, stale) -> int:
    """Jobs' holds on GPUs the workload source could not match to a known GPU (a node or GPU
    index not in the telemetry): recorded as ``unresolved:<host>:<index>``, shown here."""
    return sum(1 for p in points if p.tags.get("uuid", "").startswith("unresolved:") and p.fields.get("job")
               and not stale(p.time_ns))


@cached
def update(ctx) -> dict:
    names = {x.name: x.display_name or x.name for x in ctx.config.tenants}
    now = tenants_now(ctx.data.gpus())
    rows = tenant_rows(now, _month(ctx), names, ctx.lang)
    busy = sum(r["gpus"] for k, r in now.items() if k != IDLE)
    total = sum(r["gpus"] for r in now.values())
    now_ns = int(ctx.data.now() * 1e9)
    unplaced = unplaced_holds(ctx.data.latest("workload"), lambda t_ns: ctx.data.stale("workload", t_ns, now_ns))
    return {"v": {"tn_count": (str(sum(1 for k in now if k != IDLE)), ""),
                  "tn_unplaced": (str(unplaced), "warning" if unplaced else "zero"),
                  "tn_busy": (f"{busy:,} / {total:,}", ""),
                  "tn_kw": (fmt_num(sum(r["gpu_kw"] for k, r in now.items() if k != IDLE), 1, "kW"), "")},
            "fig": {}, "tbl": {"tenants": rows}}


COLUMNS = (("tenant", "col.tenant", "text"), ("jobs", "col.jobs", "numeric"), ("gpus", "col.gpus", "numeric"),
           ("gpu_kw", "col.gpu_kw", "numeric"), ("it_kwh", "col.it_kwh_mtd", "numeric"),
           ("facility_kwh", "col.facility_kwh_mtd", "numeric"), ("method", "col.chargeback_method", "text"))


def layout(ctx):
    u = update(ctx)
    L = ctx.lang
    cols = [{"id": k, "name": t(n, L), "type": typ} for k, n, typ in COLUMNS]
    return html.Div([
        html.H1(t("tenants.title", L), className="page-title"),
        html.Div([c.kpi("tn_count", t("tenants.active", L), u["v"]["tn_count"][0]),
                  c.kpi("tn_busy", t("tenants.busy", L), u["v"]["tn_busy"][0]),
                  c.kpi("tn_kw", t("col.gpu_kw", L), u["v"]["tn_kw"][0]),
                  c.kpi("tn_unplaced", t("tenants.unplaced", L), *u["v"]["tn_unplaced"])], className="kpis four"),
        c.panel(t("tenants.title", L), c.table("tenants", cols, u["tbl"]["tenants"], page_size=50)),
    ])
