"""dcgm-exporter as a GPU telemetry and a workload source, against a real loopback HTTP server.

The pages follow dcgm-exporter's documented exposition (its README's sample output: HELP/TYPE
lines, labels ``gpu``, ``UUID`` with a space after the comma, ``pod``/``namespace``/``container``
empty on an idle GPU, the DCGM blank sentinel 9223372036854775794 for an unsupported field),
plus the labels newer releases add (``device``, ``modelName``, ``Hostname``,
``DCGM_FI_DRIVER_VERSION``) and a pod label as ``--kubernetes-enable-pod-labels`` names it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collectors.gpu.dcgm_exporter import DcgmExporterCollector, ScrapeError, scrape
from collectors.workload.base import WorkloadError
from collectors.workload.collector import WorkloadCollector
from collectors.workload.dcgm import DcgmWorkloadSource, prometheus_label
from collectors.workload.mapping import WorkloadMapping
from dcim.metrics import validate_point

U0 = "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"
U1 = "GPU-1b2c3d4e-0000-1111-2222-333344445555"
U2 = "GPU-99990000-aaaa-bbbb-cccc-ddddeeeeffff"
MODEL = "NVIDIA H100 80GB HBM3"

HEAD = """# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
# HELP DCGM_FI_DEV_MEMORY_TEMP Memory temperature (in C).
# TYPE DCGM_FI_DEV_MEMORY_TEMP gauge
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
# HELP DCGM_FI_PROF_SM_ACTIVE The ratio of cycles an SM has at least 1 warp assigned.
# TYPE DCGM_FI_PROF_SM_ACTIVE gauge
"""


def _labels(index, uuid, host, pod="", namespace="", container="", extra=""):
    return (f'gpu="{index}", UUID="{uuid}",pci_bus_id="00000000:{18 + index:02X}:00.0",device="nvidia{index}",'
            f'modelName="{MODEL}",Hostname="{host}",DCGM_FI_DRIVER_VERSION="550.54.15",'
            f'container="{container}",namespace="{namespace}",pod="{pod}"{extra}')


def node1_page():
    busy = _labels(0, U0, "gpu-node-1", "trainer-0", "team-a", "worker", ',dcim_io_job_class="training"')
    idle = _labels(1, U1, "gpu-node-1")
    return HEAD + "\n".join([
        f"DCGM_FI_DEV_SM_CLOCK{{{busy}}} 1980",
        f"DCGM_FI_DEV_MEM_CLOCK{{{busy}}} 2619",
        f"DCGM_FI_DEV_GPU_TEMP{{{busy}}} 61",
        f"DCGM_FI_DEV_MEMORY_TEMP{{{busy}}} 9223372036854775794",  # DCGM's "not supported"
        f"DCGM_FI_DEV_POWER_USAGE{{{busy}}} 312.456",
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{busy}}} 123456789012",
        f"DCGM_FI_DEV_GPU_UTIL{{{busy}}} 97",
        f"DCGM_FI_DEV_MEM_COPY_UTIL{{{busy}}} 41",
        f"DCGM_FI_DEV_FB_USED{{{busy}}} 40960",
        f"DCGM_FI_DEV_POWER_MGMT_LIMIT{{{busy}}} 700",
        f"DCGM_FI_DEV_ENFORCED_POWER_LIMIT{{{busy}}} 600",
        f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{busy}}} 2",
        f"DCGM_FI_DEV_CLOCKS_EVENT_REASONS{{{busy}}} 4",
        f"DCGM_FI_DEV_XID_ERRORS{{{busy}}} 0",
        f"DCGM_FI_PROF_SM_ACTIVE{{{busy}}} 0.734",
        f"DCGM_FI_DEV_SM_CLOCK{{{idle}}} 345",
        f"DCGM_FI_DEV_GPU_TEMP{{{idle}}} 33",
        f"DCGM_FI_DEV_POWER_USAGE{{{idle}}} 140737488355328",  # DCGM_FP64_BLANK
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{idle}}} 5000",
        f"DCGM_FI_DEV_FB_USED{{{idle}}} 0",
    ]) + "\n"


def node2_page():
    busy = _labels(0, U2, "gpu-node-2", "serve-7f9", "team-b", "server")
    mig = _labels(0, U2, "gpu-node-2", "mig-job", "team-c", "main", ',GPU_I_ID="3",GPU_I_PROFILE="1g.10gb"')
    return HEAD + "\n".join([
        f"DCGM_FI_DEV_POWER_USAGE{{{busy}}} 250",
        f"DCGM_FI_DEV_GPU_TEMP{{{busy}}} 55",
        f"DCGM_FI_DEV_FB_USED{{{mig}}} 9000",  # a MIG slice's sample: not the whole GPU's memory
    ]) + "\n"


class Exporters:
    """A loopback HTTP server with one path per simulated node."""

    def __init__(self):
        self.pages = {"/node1/metrics": node1_page(), "/node2/metrics": node2_page()}
        exporters = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 — http.server's name
                path = self.path
                if path == "/slow/metrics":
                    time.sleep(3)
                if path == "/drip/metrics":  # headers at once, then a byte every 0.2 s
                    self.send_response(200)
                    self.end_headers()
                    for _ in range(25):
                        self.wfile.write(b"#")
                        self.wfile.flush()
                        time.sleep(0.2)
                    return
                if path == "/huge/metrics":  # no Content-Length: the reader must stop by itself
                    self.send_response(200)
                    self.end_headers()
                    line = b"DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",UUID=\"GPU-x\"} 50\n"
                    try:
                        for _ in range(200_000):
                            self.wfile.write(line)
                    except OSError:
                        pass
                    return
                body = exporters.pages.get(path)
                if path == "/garbage/metrics":
                    body = '<html><body>not a metrics page</body></html>\nDCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-x\n'
                if body is None:
                    self.send_error(404, "no such page")
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hung up early (it refused an error or an oversized page)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, node):
        return f"{self.base}/{node}/metrics"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporters():
    e = Exporters()
    yield e
    e.close()


@pytest.fixture
def dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/metrics"


# ---------------------------------------------------------------- telemetry


def test_units_converted_and_blanks_absent(exporters):
    collector = DcgmExporterCollector([exporters.url("node1")], site="s1", timeout_s=5)
    [result] = asyncio.run(collector.poll(10))
    assert result.ok, result.error
    by_uuid = {p.tags["uuid"]: p for p in result.points}
    busy = by_uuid[U0]
    assert busy.tags == {"site": "s1", "host": "gpu-node-1", "gpu": "0", "uuid": U0, "model": MODEL}
    f = busy.fields
    assert f["power_w"] == pytest.approx(312.456)
    assert f["energy_j"] == pytest.approx(123_456_789.012)  # 123456789012 mJ / 1000
    assert f["mem_used_bytes"] == 42_949_672_960 and isinstance(f["mem_used_bytes"], int)  # 40960 MiB × 2^20
    assert f["sm_active_pct"] == pytest.approx(73.4)  # ratio 0.734 × 100
    assert f["power_limit_w"] == 600  # the enforced limit, not the management limit (700)
    assert f["throttle_reasons"] == 4 and f["ecc_uncorrected"] == 2
    assert (f["sm_clock_mhz"], f["mem_clock_mhz"], f["temp_c"], f["util_pct"], f["mem_util_pct"]) == (
        1980, 2619, 61, 97, 41)
    assert "mem_temp_c" not in f  # 9223372036854775794: DCGM's NOT_SUPPORTED, absent, never a number
    idle = by_uuid[U1].fields
    assert "power_w" not in idle  # 2^47: DCGM_FP64_BLANK
    assert idle["energy_j"] == pytest.approx(5.0) and idle["mem_used_bytes"] == 0
    for p in result.points:
        validate_point(p)  # every field is in the gpu contract


def test_inventory_tags_and_mig_samples(exporters):
    from dcim.inventory import GpuSlot

    slots = [GpuSlot("s1", "hall", "R7", "gpu-node-2", 0, "H100 (inventory)", None)]
    collector = DcgmExporterCollector([exporters.url("node2")], site="s1", slots=slots)
    [result] = asyncio.run(collector.poll(10))
    [point] = result.points
    assert point.tags == {"site": "s1", "room": "hall", "rack": "R7", "host": "gpu-node-2", "gpu": "0",
                          "uuid": U2, "model": MODEL}
    assert point.fields == {"power_w": 250, "temp_c": 55}  # the MIG slice's 9000 MiB is not the GPU's


def test_bad_endpoints_fail_alone(exporters, dead_url):
    urls = [exporters.url("node1"), dead_url, exporters.url("garbage"), exporters.url("huge"),
            exporters.url("missing"), exporters.url("slow"), exporters.url("drip"), exporters.url("node2")]
    collector = DcgmExporterCollector(urls, site="s1", timeout_s=1.0, max_bytes=256 * 1024)
    t0 = time.monotonic()
    results = {r.target: r for r in asyncio.run(collector.poll(10))}
    elapsed = time.monotonic() - t0
    assert elapsed < 3.5  # in parallel, each bounded by its 1 s timeout
    assert results[exporters.url("node1")].ok and len(results[exporters.url("node1")].points) == 2
    assert results[exporters.url("node2")].ok
    assert "unreachable" in results[dead_url].error and "refused" in results[dead_url].error.lower()
    assert "not Prometheus text format" in results[exporters.url("garbage")].error
    assert "over the 262144 byte limit" in results[exporters.url("huge")].error
    assert results[exporters.url("missing")].error == "HTTP 404 no such page"
    assert "no answer within 1 s" in results[exporters.url("slow")].error
    assert "no complete page within 1 s" in results[exporters.url("drip")].error
    assert all(not results[u].ok and not results[u].points for u in urls[1:7])


def test_a_page_with_no_gpu_readings_is_not_ok(exporters):
    exporters.pages["/empty/metrics"] = "# HELP go_goroutines Number of goroutines.\ngo_goroutines 12\n"
    [result] = asyncio.run(DcgmExporterCollector([exporters.url("empty")], site="s").poll(5))
    assert not result.ok and "no GPU readings among 0 DCGM samples" in result.error


def test_scrape_refuses_a_declared_oversize_body(exporters):
    with pytest.raises(ScrapeError, match="page of .* bytes is over the 100 byte limit"):
        scrape(exporters.url("node1"), 5, max_bytes=100)


# ---------------------------------------------------------------- workload


def test_holds_from_pod_labels(exporters):
    source = DcgmWorkloadSource([exporters.url("node1"), exporters.url("node2")], timeout_s=5)
    holds = {h.uuid: h for h in source.poll()}
    assert set(holds) == {U0, U2, f"{U2}/gi3"}  # U1 is idle (pod=""): no hold
    h = holds[U0]
    assert (h.job, h.host, h.account, h.gpu_index, h.class_label) == (
        "team-a/trainer-0", "gpu-node-1", "team-a", 0, "training")  # class from the pod label
    assert holds[U2].class_label == "team-b"  # no class label exported: the namespace
    assert holds[f"{U2}/gi3"].job == "team-c/mig-job"
    assert source.partial_error() is None and source.unreachable_hosts() == set()


def test_job_label_names_the_job(exporters):
    exporters.pages["/node1/metrics"] = node1_page().replace('dcim_io_job_class="training"',
                                                             'dcim_io_job_class="training",batch_job="run-42"')
    source = DcgmWorkloadSource([exporters.url("node1")], job_label="batch.job")
    assert prometheus_label("batch.job") == "batch_job"
    assert [h.job for h in source.poll()] == ["team-a/run-42"]


def test_one_exporter_down_keeps_the_others_and_hides_its_gpus(exporters):
    source = DcgmWorkloadSource([exporters.url("node1"), exporters.url("node2")], timeout_s=2)
    mapping = WorkloadMapping({"team-a": "kaist"}, {"training": "training"})
    gpus = {("gpu-node-1", 0): U0, ("gpu-node-1", 1): U1, ("gpu-node-2", 0): U2}
    collector = WorkloadCollector(source, mapping, site="s", gpus=lambda: gpus)
    [first] = asyncio.run(collector.poll(10))
    assert first.ok and first.error is None
    node2_page_text = exporters.pages.pop("/node2/metrics")  # node 2's exporter now answers 404
    [second] = asyncio.run(collector.poll(10))
    assert second.ok  # one of two exporters still answered
    assert "1 of 2 dcgm-exporters failed" in second.error and exporters.url("node2") in second.error
    by_uuid = {p.tags["uuid"]: p.fields for p in second.points}
    assert by_uuid[U0]["job"] == "team-a/trainer-0" and by_uuid[U0]["tenant"] == "kaist"
    assert by_uuid[U0]["job_class"] == "training"
    assert by_uuid[U1]["job"] == ""  # node 1's idle GPU, read: idle
    assert U2 not in by_uuid  # node 2 unread: no point, rather than a false "idle"
    exporters.pages["/node2/metrics"] = node2_page_text
    [third] = asyncio.run(collector.poll(10))
    assert third.ok and third.error is None and by_uuid.keys() < {p.tags["uuid"] for p in third.points}


def test_every_exporter_down_is_a_workload_error(dead_url, exporters):
    source = DcgmWorkloadSource([dead_url, exporters.url("garbage")], timeout_s=1)
    with pytest.raises(WorkloadError, match="every dcgm-exporter failed \\(2\\).*unreachable.*not Prometheus"):
        source.poll()


def test_slow_exporter_hits_the_deadline(exporters):
    source = DcgmWorkloadSource([exporters.url("slow"), exporters.url("node1")], timeout_s=0.5)
    t0 = time.monotonic()
    holds = source.poll()
    assert time.monotonic() - t0 < 2.5
    assert [h.uuid for h in holds] == [U0] and "no answer within 0.5 s" in source.partial_error()


def test_no_urls_is_a_clear_error():
    with pytest.raises(WorkloadError, match=r"needs \[dcgm_exporter\] urls"):
        DcgmWorkloadSource([]).poll()


# ---------------------------------------------------------------- dcim collect --once


def test_collect_once_writes_gpu_and_workload_points(exporters, dead_url, tmp_path, capsys):
    from dcim.cli.main import main
    from dcim.store.sqlite import SqliteStore

    db = tmp_path / "dcgm.sqlite"
    cfg = tmp_path / "dcgm.toml"
    cfg.write_text(f"""
[site]
name = "hub"

[[tenants]]
name = "kaist"
kind = "university"

[[rooms]]
name = "hall"
[[rooms.rows]]
name = "A"
[[rooms.rows.racks]]
name = "R1"
servers = [{{ host = "gpu-node-1", gpus = 2 }}]

[workload]
source = "dcgm"
tenants = {{ team-a = "kaist" }}
job_classes = {{ training = "training" }}

[dcgm_exporter]
urls = ["{exporters.url('node1')}", "{dead_url}"]
telemetry = true
timeout_s = 2

[store]
backend = "sqlite"
path = "{db}"
[store.spool]
path = "{tmp_path / 'spool'}"
""")
    rc = main(["collect", "--config", str(cfg), "--once", "--no-gpu", "--no-metrics"])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 1, captured.err  # one exporter is down
    assert "ERROR" in out and dead_url in out
    store = SqliteStore(db)
    try:
        gpu = {p.tags["uuid"]: p for p in store.latest("gpu")}
        assert gpu[U0].tags["rack"] == "R1" and gpu[U0].tags["room"] == "hall"  # from the inventory
        assert gpu[U0].fields["energy_j"] == pytest.approx(123_456_789.012)
        work = {p.tags["uuid"]: p.fields for p in store.latest("workload")}
        assert work[U0]["job"] == "team-a/trainer-0" and work[U0]["tenant"] == "kaist"
        assert work[U0]["job_class"] == "training" and work[U0]["source"] == "dcgm"
        health = {(p.tags["collector"], p.tags["target"]): p.fields for p in store.latest("collector")}
        assert health[("dcgm-exporter", exporters.url("node1"))]["ok"] is True
        assert health[("dcgm-exporter", dead_url)]["ok"] is False
        assert health[("workload-dcgm", "dcgm-exporter")]["ok"] is True
    finally:
        store.close()


def test_parse_label_blocks_with_braces_escapes_and_timestamps():
    from collectors.gpu.dcgm_exporter import MAPPED, dcgm_value, parse

    page = ('# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n'
            'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-1",pod="a}b \\"q\\""} 50 1700000000000\n'
            'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1",pod="a}b \\"q\\""} NaN\n'
            'go_goroutines 12\n')
    temp, power = parse(page, MAPPED)
    assert temp.labels == {"gpu": "0", "UUID": "GPU-1", "pod": 'a}b "q"'} and temp.value == 50
    assert power.name == "DCGM_FI_DEV_POWER_USAGE" and dcgm_value(power.name, power.value) is None
    with pytest.raises(ScrapeError, match="line 1: no numeric value"):
        parse('DCGM_FI_DEV_GPU_TEMP{gpu="0"} fifty\n', MAPPED)
