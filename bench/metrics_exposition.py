"""Benchmark: one Prometheus scrape of the store's latest values (dcim exporter) for 32,000 GPUs.

Writes a site's latest readings into a SQLite store (32,000 GPUs on 4,000 hosts with the 19
fields the NVML collector writes, their workload rows, 1,000 racks' A/B PDUs with 3 phases each,
2,000 inlet/outlet probes), then times a whole /metrics answer the way the exporter renders it
(StoreCollector.render: the store's latest() of every measurement plus the text), best of
--repeat, wall time and CPU time: the text from one read of the values (what the exporter
itself adds) and the whole scrape with the store's read. For scale it also times prometheus_client's own
generate_latest over the same collector once (informational: that is the path render() replaces).

    .venv/bin/python bench/metrics_exposition.py [--gpus 32000] [--repeat 5] [--no-reference]

dcim exporter renders ahead (dcim/exposition_ahead.py: a thread renders every --render-every
seconds while scraped, a scrape gets the last rendering), so it also times a whole HTTP scrape
answered that way, and says what the renderings cost in CPU. Both figures are printed, named.

Target: /metrics for 32,000 GPUs renders in <= 500 ms. Prints the ratio to it (< 1 is within).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcim.cli.cmd_exporter import DEFAULT_RENDER_EVERY_S
from dcim.exposition import StoreCollector
from dcim.metrics import Point

TARGET_S = 0.5
S = 10**9


def site(now_ns: int, gpus: int, seed: int = 1) -> list[Point]:
    rnd = random.Random(seed)
    racks = max(1, gpus // 32)
    out: list[Point] = []
    for i in range(gpus):
        host, rack = f"gpu-{i // 8:05d}", f"R{(i // 32) % racks:04d}"
        power = 300.0 + rnd.random() * 400
        out.append(Point("gpu", {"site": "s", "room": f"hall-{i // 8000 + 1}", "rack": rack, "host": host,
                                 "gpu": str(i % 8), "uuid": f"GPU-{i:08x}-5a1e-4c0b-9d6e-{i:012x}",
                                 "model": "NVIDIA H100 80GB HBM3"},
                         {"power_w": power, "power_avg_w": power - 3.0, "energy_j": 1e9 + i * 1e4,
                          "power_limit_w": 700.0, "power_limit_default_w": 700.0, "power_limit_min_w": 200.0,
                          "power_limit_max_w": 700.0, "temp_c": 40.0 + rnd.random() * 40, "mem_temp_c": 55.0,
                          "util_pct": rnd.random() * 100, "mem_util_pct": 35.0, "mem_used_bytes": 40 * 2**30,
                          "mem_total_bytes": 80 * 2**30, "sm_clock_mhz": 1980.0, "mem_clock_mhz": 2619.0,
                          "throttle_reasons": 0, "ecc_uncorrected": 0, "ecc_corrected": 0, "pstate": 0},
                         now_ns - int(rnd.random() * 5 * S)))
        out.append(Point("workload", {"site": "s", "host": host, "uuid": f"GPU-{i:08x}-5a1e-4c0b-9d6e-{i:012x}"},
                         {"job": str(100000 + i // 64), "tenant": f"tenant-{i % 7}", "job_class": "training",
                          "account": f"acct-{i % 7}", "source": "slurm"}, now_ns - 10 * S))
    for r in range(racks):
        base = {"site": "s", "room": "hall-1", "rack": f"R{r:04d}"}
        for feed in "AB":
            pdu = {**base, "pdu": f"pdu-R{r:04d}-{feed}", "feed": feed}
            out.append(Point("pdu", pdu, {"power_w": 9000.0, "energy_kwh": 12345.6, "current_a": 40.0,
                                          "voltage_v": 230.0, "load_pct": 40.0, "breaker_a": 100.0}, now_ns - 3 * S))
            for ph in ("L1", "L2", "L3"):
                out.append(Point("pdu_phase", {**pdu, "phase": ph}, {"current_a": 13.0, "voltage_v": 230.0,
                                                                     "power_w": 3000.0, "breaker_a": 32.0},
                                 now_ns - 3 * S))
        for pos in ("inlet", "outlet"):
            out.append(Point("env", {**base, "sensor": f"R{r:04d}-{pos}", "position": pos},
                             {"temp_c": 24.0 if pos == "inlet" else 38.0}, now_ns - 3 * S))
    return out


def best(fn, repeat: int) -> tuple[float, float]:
    """The fastest of *repeat* calls: (wall s, CPU s)."""
    runs = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    return min(runs)


def scrape_ahead(collector: StoreCollector, repeat: int) -> tuple[float, float]:
    """Best wall time of a whole HTTP scrape of the exporter's app (waitress, as dcim exporter
    serves it) answered from a rendering made ahead, and that rendering's age at the scrape. The
    scraper is curl when there is one (its start, ~10 ms, counted in), else urllib in this process."""
    import shutil
    import subprocess
    import urllib.request

    from dcim.exposition import metrics_app
    from dcim.exposition_ahead import RenderAhead
    from dcim.web import Limits, WsgiServer

    ahead = RenderAhead(collector.render, every_s=DEFAULT_RENDER_EVERY_S)
    ahead.get()   # the first rendering, as the thread keeps one ready
    server = WsgiServer(metrics_app(collector, None, ahead), "127.0.0.1", 0, name="bench-exporter",
                        limits=Limits(connection_limit=200, threads=2, max_body_bytes=64 * 1024)).start()
    curl = shutil.which("curl")
    try:
        def get() -> None:
            if curl:   # the scraper is another process, as Prometheus is: it reads without our GIL
                subprocess.run([curl, "-sf", "-o", "/dev/null", f"{server.url}/metrics"], check=True, timeout=60)
                return
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=60) as resp:
                resp.read()

        wall, _ = best(get, repeat)
        return wall, ahead.age_s(ahead.get())
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=32_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-reference", action="store_true", help="skip the generate_latest comparison")
    args = ap.parse_args()
    from dcim.store.sqlite import SqliteStore

    now = time.time_ns()
    points = site(now, args.gpus)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "b.sqlite")
        for i in range(0, len(points), 50_000):
            store.write(points[i:i + 50_000])
        collector = StoreCollector(store)
        collector.render()  # warm: the store's series map, SQLite's page cache, the label strings
        scrape = best(collector.render, args.repeat)
        read = best(collector.read, args.repeat)
        snap = collector.read()
        fixed = StoreCollector(store)
        fixed.read = lambda: snap  # the text alone, from one read
        fixed.render()
        text = best(fixed.render, args.repeat)
        body = collector.render()
        samples = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
        print(f"site: {args.gpus:,} GPUs, {len(points):,} latest readings in SQLite; /metrics: {samples:,} samples, "
              f"{len(body) / 1e6:.1f} MB; best of {args.repeat}, wall (CPU)")
        print(f"/metrics text from the read values: {text[0]:.3f} s ({text[1]:.3f} s CPU)  "
              f"ratio {text[0] / TARGET_S:.2f} of the {TARGET_S * 1000:g} ms target")
        print(f"whole scrape, store read included:  {scrape[0]:.3f} s ({scrape[1]:.3f} s CPU)  "
              f"ratio {scrape[0] / TARGET_S:.2f} of the {TARGET_S * 1000:g} ms target")
        print(f"  of which the store's latest() of every measurement: {read[0]:.3f} s ({read[1]:.3f} s CPU)")
        served, age = scrape_ahead(collector, args.repeat)
        print(f"scrape served from the rendering made ahead (HTTP GET on loopback, dcim exporter's default): "
              f"{served:.3f} s  ratio {served / TARGET_S:.2f} of the {TARGET_S * 1000:g} ms target; the values "
              f"{age:.1f} s old; each rendering costs the whole-scrape CPU above, every --render-every "
              f"({DEFAULT_RENDER_EVERY_S:g} s) while scraped: {scrape[1] / DEFAULT_RENDER_EVERY_S:.0%} of a core")
        if not args.no_reference:
            from prometheus_client import CollectorRegistry, generate_latest

            registry = CollectorRegistry()
            registry.register(collector)
            t0 = time.perf_counter()
            generate_latest(registry)
            ref = time.perf_counter() - t0
            print(f"(info) prometheus_client's generate_latest over the same collector: {ref:.2f} s "
                  f"({ref / scrape[0]:.1f}x the whole fast scrape)")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
