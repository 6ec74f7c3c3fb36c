"""The Grafana dashboards in deploy/grafana/ (one for Prometheus, one for InfluxDB with InfluxQL):
each JSON loads, every query names metrics, measurements, fields and tags that the exposition and
the metric contract produce, and every query returns data when run by the real server the
dashboard is for (Debian's prometheus scraping the exporter; Debian's influxd holding what the
InfluxDB store wrote)."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from dcim.exposition import INFO_LABELS, StoreCollector, exposed_names, metrics_app
from dcim.metrics import MEASUREMENTS, Point
from dcim.web import WsgiServer
from tests.prometheus.conftest import wait_for

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
PROMQL_WORDS = {"sum", "max", "min", "count", "by", "on", "group_left", "increase", "rate", "avg", "without"}


def dashboard(name: str) -> dict:
    return json.loads((GRAFANA / name).read_text())


def targets(board: dict) -> list[dict]:
    return [t for p in board["panels"] for t in p.get("targets", [])]


def site_points(now_ns: int) -> list[Point]:
    """One of everything the dashboards read, stamped now."""
    gpu = {"site": "s1", "room": "hall-1", "model": "H100"}
    return [
        Point("facility", {"site": "s1"}, {"pue": 1.3, "total_power_w": 390e3, "it_power_w": 300e3,
                                           "cooling_power_w": 80e3, "outdoor_temp_c": 12.0}, now_ns),
        Point("gpu", {**gpu, "rack": "A01", "host": "h1", "gpu": "0", "uuid": "GPU-1"},
              {"power_w": 400.0, "temp_c": 60.0, "energy_j": 1e9}, now_ns),
        Point("gpu", {**gpu, "rack": "A02", "host": "h2", "gpu": "0", "uuid": "GPU-2"},
              {"power_w": 500.0, "temp_c": 70.0, "energy_j": 2e9}, now_ns),
        Point("workload", {"site": "s1", "host": "h1", "uuid": "GPU-1"}, {"job": "7", "tenant": "t1"}, now_ns),
        Point("env", {"site": "s1", "room": "hall-1", "rack": "A01", "sensor": "A01-in", "position": "inlet"},
              {"temp_c": 24.0}, now_ns),
        Point("env", {"site": "s1", "room": "hall-1", "rack": "A01", "sensor": "A01-out", "position": "outlet"},
              {"temp_c": 38.0}, now_ns),
        Point("pdu_phase", {"site": "s1", "room": "hall-1", "rack": "A01", "pdu": "p1", "feed": "A", "phase": "L1"},
              {"load_pct": 45.0}, now_ns),
        Point("cooling", {"site": "s1", "room": "hall-1", "unit": "c1", "kind": "inrow"},
              {"cooling_kw": 30.0, "power_w": 2000.0}, now_ns),
        Point("ups", {"site": "s1", "ups": "u1"}, {"load_pct": 50.0, "on_battery": False}, now_ns),
        Point("meter", {"site": "s1", "meter": "main", "role": "facility_total"},
              {"power_w": 390e3, "energy_kwh": 1000.0}, now_ns),
        Point("alarm", {"site": "s1", "rule": "inlet_high", "entity": "A01", "severity": "warning"},
              {"state": "raised", "summary": "A01 inlet 28 C"}, now_ns),
        Point("optimizer", {"site": "s1", "host": "", "uuid": "", "action": "cycle"}, {"est_saving_w": 900.0}, now_ns),
        Point("collector", {"collector": "snmp", "target": "p1"}, {"ok": False, "duration_s": 2.0}, now_ns),
    ]


# --- Prometheus -----------------------------------------------------------------------------------


def promql(t: dict) -> str:
    return t["expr"].replace('"$site"', '".*"').replace("$__range", "1m")


def test_prometheus_dashboard_names_only_exposed_metrics_and_labels():
    board = dashboard("dcim-prometheus.json")
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    names = exposed_names()
    labels = {t for m in MEASUREMENTS.values() for t in m.tags} | {f for v in INFO_LABELS.values() for f in v}
    labels |= {"instance", "job"}
    exprs = [t["expr"] for t in targets(board)]
    assert len(exprs) >= 10
    for expr in exprs:
        metrics = set(re.findall(r"\bdcim_[a-z0-9_]+", expr))
        assert metrics, expr
        assert metrics <= set(names), (expr, metrics - set(names))
        used = set(re.findall(r"(\w+)\s*=~?\s*\"", expr))
        for group in re.findall(r"\b(?:by|on|group_left)\s*\(([^)]*)\)", expr):
            used |= {x.strip() for x in group.split(",") if x.strip()}
        assert used <= labels, (expr, used - labels)


def test_every_prometheus_panel_query_returns_data(store, prometheus_for):
    store.write(site_points(time.time_ns()))
    server = WsgiServer(metrics_app(StoreCollector(store)), "127.0.0.1", 0, name="test-exporter").start()
    try:
        prom = prometheus_for([f"127.0.0.1:{server.port}"])
        assert wait_for(lambda: prom.query("dcim_facility_pue"), timeout_s=30), prom.api("targets")
        time.sleep(2.5)  # increase() needs two scrapes
        empty = [promql(t) for t in targets(dashboard("dcim-prometheus.json"))
                 if not wait_for(lambda t=t: prom.query(promql(t)), timeout_s=10)]
        assert not empty, f"queries with no data: {empty}"
        by_tenant = prom.query(promql(next(t for t in targets(dashboard("dcim-prometheus.json"))
                                           if "tenant" in t["expr"])))
        assert [(r["metric"]["tenant"], float(r["value"][1])) for r in by_tenant] == [("t1", 400.0)]
    finally:
        server.stop()


# --- InfluxDB -----------------------------------------------------------------------------------


def influxql(t: dict) -> str:
    return t["query"].replace("$timeFilter", "time > now() - 1h").replace("$__interval", "1m")


def test_influxdb_dashboard_names_only_contract_measurements_fields_and_tags():
    board = dashboard("dcim-influxdb.json")
    assert board["__inputs"][0]["pluginId"] == "influxdb"
    queries = [t["query"] for t in targets(board)]
    assert len(queries) >= 10
    for q in queries:
        assert all(t["rawQuery"] for t in targets(board))
        measurement = re.findall(r'FROM "(\w+)"', q)
        assert measurement and all(m in MEASUREMENTS for m in measurement), q
        spec = MEASUREMENTS[measurement[-1]]
        known = set(spec.fields) | set(spec.tags)
        aliases = set(re.findall(r'AS "(\w+)"', q))
        quoted = set(re.findall(r'"(\w+)"', q)) - set(measurement) - aliases
        assert quoted <= known, (q, quoted - known)


@pytest.fixture
def influx_store():
    from dcim.store.influx import InfluxStore
    from tests.fixtures.influxd import InfluxdProcess

    server = InfluxdProcess().start()
    store = InfluxStore(server.url, "grafana")
    yield server, store
    store.close()
    server.stop()


def test_every_influxdb_panel_query_returns_data(influx_store):
    server, store = influx_store
    store.write(site_points(time.time_ns() - 60 * 10**9))
    store.flush()
    empty = []
    for t in targets(dashboard("dcim-influxdb.json")):
        url = f"{server.url}/query?{urllib.parse.urlencode({'db': 'grafana', 'q': influxql(t)})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            result = json.load(resp)["results"][0]
        assert "error" not in result, (influxql(t), result)
        if not result.get("series"):
            empty.append(influxql(t))
    assert not empty, f"queries with no data: {empty}"
