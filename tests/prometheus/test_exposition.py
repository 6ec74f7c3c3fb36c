"""The store's latest values as Prometheus /metrics (dcim/exposition.py): names and units as
Prometheus and its exporters write them, values converted to base units (expected values worked
by hand here), stale series left out, alarms while active, the fast text path equal to
prometheus_client's own rendering, and Debian's real prometheus scraping it."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dcim.exposition import (
    NUMERIC,
    StoreCollector,
    exposed_names,
    metric_spec,
    metrics_app,
)
from dcim.metrics import MEASUREMENTS, FieldSpec, Point
from dcim.web import WsgiServer
from tests.prometheus.conftest import wait_for

GPU_TAGS = {"site": "s1", "room": "hall-1", "rack": "A01", "host": "gpu-a01-1", "gpu": "3",
            "uuid": "GPU-0f3c-1", "model": "NVIDIA H100 80GB HBM3"}
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def gpu_point(time_ns=None, **fields):
    base = {"power_w": 350.0, "temp_c": 61.5, "util_pct": 55.0, "energy_j": 1.25e9, "sm_clock_mhz": 1980.0,
            "mem_used_bytes": 42 * 2 ** 30, "ecc_uncorrected": 0}
    base.update(fields)
    return Point("gpu", dict(GPU_TAGS), base, time_ns)


def samples(text: str) -> dict[tuple, float]:
    """{(name, sorted labels): value} of a text exposition, read by prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_names_follow_prometheus_conventions():
    names = exposed_names()
    assert all(NAME_RE.match(n) for n in names)
    # what the issue names, and the exporters operators compare with
    assert names["dcim_gpu_power_watts"] == "gauge"
    assert names["dcim_gpu_temp_celsius"] == "gauge"
    assert names["dcim_gpu_util_ratio"] == "gauge"
    assert names["dcim_gpu_energy_joules_total"] == "counter"
    assert names["dcim_pdu_energy_joules_total"] == "counter"
    assert names["dcim_gpu_ecc_uncorrected_total"] == "counter"
    assert names["dcim_env_temp_celsius"] == "gauge"
    assert names["dcim_gpu_sm_clock_hertz"] == "gauge"
    assert names["dcim_pdu_breaker_rating_amperes"] == "gauge"   # pdu.breaker_a, not a pdu_breaker metric
    assert names["dcim_workload_info"] == "gauge"
    # one field, one name: no two fields of the contract collide
    specs = [s for m in NUMERIC.values() for s in m]
    assert len({s.name for s in specs}) == len(specs)
    assert "job_energy" not in NUMERIC and "job_day" not in NUMERIC


def test_a_unit_with_no_prometheus_name_is_refused():
    from dcim.exposition import ExpositionError

    with pytest.raises(ExpositionError, match="gpu.x_furlongs"):
        metric_spec(MEASUREMENTS["gpu"], FieldSpec("x_furlongs", float, "furlong", "?"))


def test_values_in_base_units(store):
    now = time.time()
    store.write([gpu_point(),
                 Point("pdu", {"site": "s1", "room": "hall-1", "rack": "A01", "pdu": "pdu-A01-a", "feed": "A"},
                       {"energy_kwh": 2.5, "load_pct": 40.0, "breaker_a": 32.0, "power_factor": 0.97}),
                 Point("ups", {"site": "s1", "ups": "ups-1"}, {"on_battery": True, "runtime_s": 540.0}),
                 Point("cooling", {"site": "s1", "room": "hall-1", "unit": "irc-1", "kind": "inrow"},
                       {"cooling_kw": 28.0})])
    got = samples(StoreCollector(store, clock=lambda: now).render().decode())
    gpu = tuple(sorted(GPU_TAGS.items()))
    assert got[("dcim_gpu_power_watts", gpu)] == 350.0
    assert got[("dcim_gpu_temp_celsius", gpu)] == 61.5
    assert got[("dcim_gpu_util_ratio", gpu)] == pytest.approx(0.55)
    assert got[("dcim_gpu_energy_joules_total", gpu)] == 1.25e9
    assert got[("dcim_gpu_sm_clock_hertz", gpu)] == pytest.approx(1.98e9)
    assert got[("dcim_gpu_mem_used_bytes", gpu)] == 45097156608.0
    assert got[("dcim_gpu_ecc_uncorrected_total", gpu)] == 0.0
    pdu = (("feed", "A"), ("pdu", "pdu-A01-a"), ("rack", "A01"), ("room", "hall-1"), ("site", "s1"))
    assert got[("dcim_pdu_energy_joules_total", pdu)] == pytest.approx(9.0e6)   # 2.5 kWh x 3.6 MJ
    assert got[("dcim_pdu_load_ratio", pdu)] == pytest.approx(0.40)
    assert got[("dcim_pdu_breaker_rating_amperes", pdu)] == 32.0
    assert got[("dcim_pdu_power_factor_ratio", pdu)] == 0.97
    ups = (("site", "s1"), ("ups", "ups-1"))
    assert got[("dcim_ups_on_battery", ups)] == 1.0
    assert got[("dcim_ups_runtime_seconds", ups)] == 540.0
    cooling = (("kind", "inrow"), ("room", "hall-1"), ("site", "s1"), ("unit", "irc-1"))
    assert got[("dcim_cooling_cooling_watts", cooling)] == 28000.0
    # a field the device did not report is absent, never 0
    assert not any(name == "dcim_gpu_mem_temp_celsius" for name, _ in got)
    assert got[("dcim_exporter_store_up", ())] == 1.0
    assert got[("dcim_exporter_series", (("measurement", "gpu"),))] == 1.0


def test_text_identity_is_an_info_metric_and_free_text_is_not_exposed(store):
    now = time.time()
    store.write([Point("workload", {"site": "s1", "host": "gpu-a01-1", "uuid": "GPU-0f3c-1"},
                       {"job": "4242", "tenant": "hanbit-univ", "job_class": "training", "account": "hanbit",
                        "source": "slurm", "user": "kim"}),
                 Point("collector", {"collector": "snmp", "target": "pdu-A01-a"},
                       {"ok": False, "error": "timeout after 2 s", "duration_s": 2.0})])
    text = StoreCollector(store, clock=lambda: now).render().decode()
    got = samples(text)
    key = ("dcim_workload_info", (("account", "hanbit"), ("host", "gpu-a01-1"), ("job", "4242"),
                                  ("job_class", "training"), ("site", "s1"), ("source", "slurm"),
                                  ("tenant", "hanbit-univ"), ("uuid", "GPU-0f3c-1")))
    assert got[key] == 1.0
    assert "kim" not in text and "timeout after" not in text   # user (privacy) and free text
    assert got[("dcim_collector_ok", (("collector", "snmp"), ("target", "pdu-A01-a")))] == 0.0


def test_stale_series_are_left_out_and_active_alarms_kept(store):
    now = time.time()
    old_ns = int((now - 3600) * 1e9)
    stale = dict(GPU_TAGS, uuid="GPU-stale", gpu="4")
    store.write([gpu_point(), Point("gpu", stale, {"power_w": 100.0}, old_ns),
                 Point("alarm", {"site": "s1", "rule": "ups_on_battery", "entity": "ups-1", "severity": "critical"},
                       {"state": "raised", "value": 1.0, "summary": "UPS ups-1 is on battery"}, old_ns),
                 Point("alarm", {"site": "s1", "rule": "inlet_high", "entity": "A02", "severity": "warning"},
                       {"state": "cleared", "value": 24.0}, old_ns)])
    got = samples(StoreCollector(store, max_age_s=300, clock=lambda: now).render().decode())
    uuids = {dict(labels).get("uuid") for name, labels in got if name == "dcim_gpu_power_watts"}
    assert uuids == {"GPU-0f3c-1"}
    alarms = {dict(labels)["entity"]: dict(labels)["state"] for name, labels in got if name == "dcim_alarm_info"}
    assert alarms == {"ups-1": "raised"}
    # a longer window takes the stale GPU back
    got = samples(StoreCollector(store, max_age_s=7200, clock=lambda: now).render().decode())
    assert ("dcim_gpu_power_watts", tuple(sorted(stale.items()))) in got


def test_fast_text_equals_prometheus_client_rendering(store):
    """render() is a faster writer of what generate_latest writes from collect(): the same
    families, types, samples and values, odd label values included."""
    now = time.time()
    odd = dict(GPU_TAGS, host='node "7"\\east', uuid="GPU-odd", model="line\nbreak")
    store.write([gpu_point(), Point("gpu", odd, {"power_w": 0.5, "energy_j": 7.0}),
                 Point("meter", {"site": "s1", "meter": "main", "role": "facility_total"},
                       {"power_w": 412000.0, "energy_kwh": 1e6}),
                 Point("workload", {"site": "s1", "host": "h", "uuid": "GPU-odd"}, {"job": 'a"b', "tenant": ""}),
                 Point("facility", {"site": "s1"}, {"pue": 1.31, "outdoor_rh_pct": 71.0})])
    collector = StoreCollector(store, clock=lambda: now)
    registry = CollectorRegistry()
    registry.register(collector)
    reference = generate_latest(registry).decode()
    fast = collector.render().decode()
    drop = {"dcim_exporter_read_duration_seconds"}   # measured per read: differs between two reads
    ref_samples = {k: v for k, v in samples(reference).items() if k[0] not in drop}
    fast_samples = {k: v for k, v in samples(fast).items() if k[0] not in drop}
    assert fast_samples == ref_samples
    assert families(fast) == families(reference)
    assert len(ref_samples) > 20


def test_a_store_that_is_down_gives_store_up_0(tmp_path):
    from dcim.store.influx import InfluxStore
    from tests.prometheus.conftest import free_port

    dead = InfluxStore(f"http://127.0.0.1:{free_port()}", "dcim", max_retries=0, timeout_s=1.0)
    got = samples(StoreCollector(dead).render().decode())
    assert got[("dcim_exporter_store_up", ())] == 0.0
    assert not any(name.startswith("dcim_gpu") for name, _ in got)


def test_http_endpoint(store):
    store.write([gpu_point()])
    server = WsgiServer(metrics_app(StoreCollector(store)), "127.0.0.1", 0, name="test-exporter").start()
    try:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            body = resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}/other", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()
    assert ("dcim_gpu_power_watts", tuple(sorted(GPU_TAGS.items()))) in samples(body)


def test_real_prometheus_scrapes_the_exporter(store, prometheus_for):
    """Debian's prometheus scrapes the exporter every second; its query API returns the GPU's
    power with every identity label, the counter typed as a counter, and a new reading in the
    store reaches a query on a later scrape."""
    store.write([gpu_point()])
    server = WsgiServer(metrics_app(StoreCollector(store)), "127.0.0.1", 0, name="test-exporter").start()
    try:
        prom = prometheus_for([f"127.0.0.1:{server.port}"])
        result = wait_for(lambda: prom.query('dcim_gpu_power_watts{uuid="GPU-0f3c-1"}'), timeout_s=30)
        assert result, f"prometheus never scraped the series; targets: {prom.api('targets')}"
        labels = result[0]["metric"]
        assert labels["__name__"] == "dcim_gpu_power_watts"
        assert {k: labels[k] for k in GPU_TAGS} == GPU_TAGS
        assert float(result[0]["value"][1]) == 350.0
        assert float(prom.query('dcim_gpu_util_ratio{uuid="GPU-0f3c-1"}')[0]["value"][1]) == pytest.approx(0.55)
        store.write([gpu_point(power_w=512.0)])
        assert wait_for(lambda: [r for r in prom.query('dcim_gpu_power_watts{uuid="GPU-0f3c-1"}')
                                 if float(r["value"][1]) == 512.0], timeout_s=30)
        meta = wait_for(lambda: prom.api("metadata", metric="dcim_gpu_energy_joules_total"), timeout_s=30)
        assert meta["dcim_gpu_energy_joules_total"][0]["type"] == "counter"
        assert prom.query("up")[0]["value"][1] == "1"
    finally:
        server.stop()

