#!/usr/bin/env python3
"""dcgm-exporter scrape cost: CPU per node page for `dcim collect` reading many exporters.

A page as an 8-GPU Kubernetes node's dcgm-exporter serves it: the default counters CSV plus the
profiling fields the optimizer uses, every sample with dcgm-exporter's labels (gpu, UUID,
pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION, container, namespace, pod) and
two pod labels. It is served by a loopback HTTP server; ``--nodes`` URLs point at it (each URL a
distinct path) and one DcgmExporterCollector scrapes them all once per round, then one
DcgmWorkloadSource polls them all.

Anchor: a central `dcim collect` reading 1,000 nodes (8,000 GPUs) every 10 s must spend at most
10 s of one core per round, i.e. <= 10 ms CPU per page for telemetry; the workload source
(every 30 s) gets the same per-page budget. Printed: CPU ms per page for each, and the ratio to
the 10 ms target (<= 1.0 passes).
Usage: .venv/bin/python bench/dcgm_scrape.py [--nodes 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS_PER_PAGE = 10.0
METRICS = ["DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_GPU_TEMP",
           "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
           "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL",
           "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED",
           "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
           "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
           "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_POWER_MGMT_LIMIT", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
           "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_PROF_SM_OCCUPANCY",
           "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_PROF_PCIE_TX_BYTES",
           "DCGM_FI_PROF_PCIE_RX_BYTES"]


def node_page(gpus: int = 8) -> str:
    lines = []
    for name in METRICS:
        lines += [f"# HELP {name} {name}.", f"# TYPE {name} gauge"]
        for i in range(gpus):
            labels = (f'gpu="{i}",UUID="GPU-{i:08x}-1111-2222-3333-444455556666",pci_bus_id="00000000:{i:02X}:00.0",'
                      f'device="nvidia{i}",modelName="NVIDIA H100 80GB HBM3",Hostname="node",'
                      f'DCGM_FI_DRIVER_VERSION="550.54.15",container="worker",namespace="team-{i % 3}",'
                      f'pod="job-{i // 2}-worker",dcim_io_job_class="training",app="trainer"')
            lines.append(f"{name}{{{labels}}} {100 + i * 1.5}")
    return "\n".join(lines) + "\n"


def serve(page: bytes):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    from collectors.gpu.dcgm_exporter import DcgmExporterCollector
    from collectors.workload.dcgm import DcgmWorkloadSource

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    page = node_page().encode()
    server = serve(page)
    port = server.server_address[1]
    urls = [f"http://127.0.0.1:{port}/n{i}/metrics" for i in range(args.nodes)]
    print(f"page: {len(page) / 1024:.0f} KiB, {page.count(b'{')} samples, 8 GPUs; {args.nodes} nodes, "
          f"{args.rounds} rounds")
    # the server shares this process: its CPU is included, so the figure is pessimistic
    collector = DcgmExporterCollector(urls, site="bench", timeout_s=10)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(args.rounds):
        results = asyncio.run(collector.poll(60))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    cpu_ms = (time.process_time() - cpu0) * 1000 / (args.nodes * args.rounds)
    wall_s = (time.perf_counter() - t0) / args.rounds
    print(f"telemetry: {cpu_ms:.2f} ms CPU per page (incl. serving it), {wall_s:.2f} s wall per round; "
          f"ratio to {TARGET_MS_PER_PAGE:g} ms target: {cpu_ms / TARGET_MS_PER_PAGE:.2f}")
    source = DcgmWorkloadSource(urls, timeout_s=10)
    cpu0 = time.process_time()
    for _ in range(args.rounds):
        holds = source.poll()
    cpu_ms = (time.process_time() - cpu0) * 1000 / (args.nodes * args.rounds)
    print(f"workload:  {cpu_ms:.2f} ms CPU per page (incl. serving it), {len(holds)} holds per round; "
          f"ratio to {TARGET_MS_PER_PAGE:g} ms target: {cpu_ms / TARGET_MS_PER_PAGE:.2f}")
    source.close()
    asyncio.run(collector.close())
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
