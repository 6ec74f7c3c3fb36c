"""The progress collector against a real HTTP server on loopback serving each inference server's
/metrics in its documented exposition format (vLLM, Triton, TGI), and against failures."""

import asyncio
import socket
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collectors.base import TargetResult
from collectors.progress.collector import ProgressScrapeCollector, Service
from collectors.progress.scrape import ScrapeError, sample_names, work_done
from dcim.cli.workload import progress_collector
from dcim.config import DEMO_CONFIG, ConfigError, parse_config

# vLLM (V1 engine, prometheus_client exposition: counters carry _total and a _created series)
VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 99999.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 15360.0
vllm:generation_tokens_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 640.0
# HELP vllm:generation_tokens_created Number of generation tokens processed.
# TYPE vllm:generation_tokens_created gauge
vllm:generation_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7e+09
# HELP vllm:request_generation_tokens Number of generation tokens processed.
# TYPE vllm:request_generation_tokens histogram
vllm:request_generation_tokens_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:request_generation_tokens_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 40.0
vllm:request_generation_tokens_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 40.0
vllm:request_generation_tokens_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 15360.0
"""

# Triton (its own C++ exposition: counters without _total, labels model and version)
TRITON = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="resnet50",version="1"} 120
nv_inference_request_success{model="bert",version="2"} 30
# HELP nv_inference_count Number of inferences performed (does not include cached requests)
# TYPE nv_inference_count counter
nv_inference_count{model="resnet50",version="1"} 960
nv_inference_count{model="bert",version="2"} 30
# HELP nv_inference_exec_count Number of model executions performed (does not include cached requests)
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="resnet50",version="1"} 120
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{gpu_uuid="GPU-1d3f0a2b"} 0.41
"""

# TGI (Rust metrics-exporter-prometheus: histograms as buckets, _sum and _count)
TGI = """\
# TYPE tgi_request_count counter
tgi_request_count 57
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="1"} 0
tgi_request_generated_tokens_bucket{le="10"} 3
tgi_request_generated_tokens_bucket{le="+Inf"} 57
tgi_request_generated_tokens_sum 7296
tgi_request_generated_tokens_count 57
# TYPE tgi_queue_size gauge
tgi_queue_size 2
"""

PAGES = {"/vllm": (200, VLLM), "/triton": (200, TRITON), "/tgi": (200, TGI),
         "/custom": (200, "# TYPE train_samples counter\ntrain_samples_total{rank=\"0\"} 4096\n"
                          "train_samples_created{rank=\"0\"} 1.7e9\n"),
         "/error": (500, "boom"), "/empty": (200, "# nothing here\n"),
         "/garbled": (200, "vllm:generation_tokens_total{engine=\"0\" 12\n"),
         "/negative": (200, "nv_inference_count{model=\"m\",version=\"1\"} -5\n"),
         "/nan": (200, "nv_inference_count{model=\"m\",version=\"1\"} NaN\n")}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 — http.server's name
        if self.path == "/slow":
            time.sleep(3)
        code, text = PAGES.get(self.path, (404, "not found"))
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def service(name, url, kind="vllm", metric=None, labels=None, unit=None, timeout_s=2.0, tenant="uni-a"):
    from dcim.config import ProgressScrape

    return Service.from_settings(ProgressScrape(name=name, url=url, kind=kind, metric=metric, labels=labels or {},
                                                job=f"job-{name}", tenant=tenant, unit=unit, timeout_s=timeout_s))


def poll(*services, deadline_s=5.0) -> dict[str, TargetResult]:
    collector = ProgressScrapeCollector(services, site="site1", clock_ns=lambda: 42)
    return {r.target: r for r in asyncio.run(collector.poll(deadline_s))}


def test_each_server_kind(server):
    results = poll(service("v", server + "/vllm"), service("t", server + "/triton", kind="triton"),
                   service("g", server + "/tgi", kind="tgi"),
                   service("c", server + "/custom", kind="custom", metric="train_samples", unit="samples"))
    got = {name: (r.ok, r.points[0].tags, r.points[0].fields) for name, r in results.items()}
    assert got["v"] == (True, {"site": "site1", "job": "job-v", "tenant": "uni-a"},
                        {"work_done": 16000.0, "unit": "tokens", "source": "scrape"})  # both engines
    assert got["t"][2] == {"work_done": 990.0, "unit": "samples", "source": "scrape"}  # every model
    assert got["g"][2] == {"work_done": 7296.0, "unit": "tokens", "source": "scrape"}  # the histogram's _sum
    assert got["c"][2] == {"work_done": 4096.0, "unit": "samples", "source": "scrape"}  # _created left out
    assert all(r.points[0].time_ns == 42 for r in results.values())


def test_label_filter_picks_one_triton_model(server):
    (r,) = poll(service("t", server + "/triton", kind="triton", labels={"model": "resnet50"})).values()
    assert r.ok and r.points[0].fields["work_done"] == 960.0
    (r,) = poll(service("t", server + "/triton", kind="triton", labels={"model": "gpt"})).values()
    assert not r.ok and "model" in r.error and "gpt" in r.error


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("path,kind,why", [
    ("/error", "vllm", "HTTP 500"),
    ("/nope", "vllm", "HTTP 404"),
    ("/empty", "vllm", "no vllm:generation_tokens_total series"),
    ("/garbled", "vllm", "cannot parse"),
    ("/negative", "triton", "not a counter value"),
    ("/nan", "triton", "not a counter value"),
    ("/tgi", "vllm", "no vllm:generation_tokens_total"),  # the wrong kind configured
])
def test_bad_pages_fail_that_service_only(server, path, kind, why):
    results = poll(service("bad", server + path, kind=kind), service("good", server + "/vllm"))
    assert not results["bad"].ok and why in results["bad"].error and results["bad"].points == []
    assert results["good"].ok and results["good"].points[0].fields["work_done"] == 16000.0


def test_server_down_and_slow_server_bounded(server):
    started = time.monotonic()
    results = poll(service("down", f"http://127.0.0.1:{closed_port()}/metrics"),
                   service("slow", server + "/slow", timeout_s=0.5), service("good", server + "/tgi", kind="tgi"))
    assert time.monotonic() - started < 2.0
    assert not results["down"].ok and "cannot read" in results["down"].error
    assert not results["slow"].ok and results["slow"].error
    assert results["good"].ok


def test_work_done_parser_directly():
    assert work_done(VLLM, sample_names("vllm", None), {"engine": "1"}) == 640.0
    assert sample_names("custom", "x_total") == ("x_total",)
    with pytest.raises(ScrapeError):
        work_done("vllm:generation_tokens_totally 5\n", sample_names("vllm", None))


def _config(scrapes):
    data = tomllib.loads(DEMO_CONFIG.read_text())
    data["progress_scrape"] = scrapes
    return parse_config(data)


def test_config_and_wiring(server):
    assert progress_collector(_config([])) is None
    cfg = _config([{"name": "llm-1", "url": server + "/vllm", "kind": "vllm", "job": "team-a/vllm-0",
                    "interval_s": 30},
                   {"name": "tr-1", "url": server + "/triton", "kind": "triton", "job": "4242",
                    "labels": {"model": "bert"}, "interval_s": 10}])
    collector = progress_collector(cfg)
    assert collector.targets() == ["llm-1", "tr-1"] and collector.interval_s == 10
    results = {r.target: r for r in asyncio.run(collector.poll(5.0))}
    assert results["tr-1"].points[0].fields["work_done"] == 30.0
    assert results["llm-1"].points[0].tags == {"site": cfg.site.name, "job": "team-a/vllm-0", "tenant": ""}


@pytest.mark.parametrize("entry,key", [
    ({"name": "x", "url": "ftp://h/metrics", "kind": "vllm", "job": "1"}, "progress_scrape[0].url"),
    ({"name": "x", "url": "http://u:p@h/metrics", "kind": "vllm", "job": "1"}, "progress_scrape[0].url"),
    ({"name": "x", "url": "http://h/metrics", "kind": "custom", "job": "1"}, "progress_scrape[0]"),
    ({"name": "x", "url": "http://h/metrics", "kind": "sglang", "job": "1"}, "progress_scrape[0].kind"),
    ({"name": "x", "url": "http://h/metrics", "kind": "vllm", "job": "a b"}, "progress_scrape[0].job"),
    ({"name": "x", "url": "http://h/metrics", "kind": "vllm", "job": "1", "interval_s": 0}, "interval_s"),
])
def test_bad_config_names_the_key(entry, key):
    with pytest.raises(ConfigError) as err:
        _config([entry])
    assert key in str(err.value)


def test_dcim_collect_once_stores_progress_from_an_inference_server(server, tmp_path, capsys):
    """The shipped path: `dcim collect --once` with [[progress_scrape]] writes `progress` points."""
    from dcim.cli.main import main
    from dcim.store.sqlite import SqliteStore

    db = tmp_path / "p.sqlite"
    cfg = tmp_path / "p.toml"
    cfg.write_text(f"""
[site]
name = "hub"
[[rooms]]
name = "hall"
[[rooms.rows]]
name = "A"
[[rooms.rows.racks]]
name = "R1"

[[progress_scrape]]
name = "llama"
url = "{server}/vllm"
kind = "vllm"
job = "inference-llama"

[store]
path = "{db}"
[store.spool]
path = "{tmp_path / 'spool'}"
""")
    rc = main(["collect", "--config", str(cfg), "--once", "--no-gpu", "--no-metrics"])
    assert rc == 0, capsys.readouterr()
    store = SqliteStore(db)
    try:
        [p] = store.latest("progress")
        assert p.tags["job"] == "inference-llama"
        assert p.fields["work_done"] == 15360.0 + 640.0 and p.fields["unit"] == "tokens"
    finally:
        store.close()
