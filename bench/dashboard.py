"""Benchmark: the dashboard overview for a large site (1,000 racks / 32,000 GPUs).

Writes a synthetic inventory's points to a SqliteStore in a temp dir, then measures
- server time to build the overview (layout + values + floor map) with a cold and a warm cache,
- server time of one refresh tick for a screen (warm),
- store queries per refresh tick with 1 and with 20 open screens (concurrent),
- the payload of the page-render callback and of one refresh, as served over HTTP.

    .venv/bin/python bench/dashboard.py [--racks 1000] [--gpus-per-server 8] [--servers-per-rack 4]

Targets: cold ≤ 300 ms, warm ≤ 50 ms. Prints ratios against them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboards.alarms import THROTTLE_MASK  # noqa: E402
from dcim.config import parse_config  # noqa: E402
from dcim.metrics import Point  # noqa: E402

NS = 1_000_000_000
COLD_TARGET_MS = 300.0
WARM_TARGET_MS = 50.0


def make_config(racks: int, servers: int, gpus: int):
    rooms_n = 4
    rows_per_room = max(1, racks // (rooms_n * 25))
    names, rooms = [], []
    k = 0
    for r in range(rooms_n):
        rows = []
        for w in range(rows_per_room):
            rr = []
            for _ in range(25):
                if k >= racks:
                    break
                name = f"R{k:04d}"
                names.append((name, f"hall-{r + 1}"))
                rr.append({"name": name, "ashrae_class": "A1" if k % 3 else "A2", "power_budget_kw": 60.0,
                           "server_group": {"count": servers, "gpus": gpus}})
                k += 1
            if rr:
                rows.append({"name": f"{chr(65 + w % 26)}{w // 26 or ''}", "racks": rr})
        if rows:
            rooms.append({"name": f"hall-{r + 1}", "rows": rows})
    data = {
        "site": {"name": "bench-site", "timezone": "Asia/Seoul"},
        "rooms": rooms,
        "pdus": [{"name": f"pdu-{n}-{f.lower()}", "rack": n, "feed": f, "phases": 3, "breaker_a": 63.0,
                  "voltage_v": 230.0} for n, _ in names for f in ("A", "B")],
        "cooling": [{"name": f"crah-{i}", "room": f"hall-{i % rooms_n + 1}", "kind": "crah", "capacity_kw": 800.0}
                    for i in range(40)],
        "ups": [{"name": f"ups-{i}", "capacity_kw": 4000.0} for i in range(8)],
        "dashboard": {"refresh_s": 10.0},
    }
    return parse_config(data, "bench"), names


def write_points(store, config, names, servers: int, gpus: int, now_ns: int) -> int:
    site = config.site.name
    n = 0
    batch: list[Point] = []

    def flush():
        nonlocal n, batch
        store.write(batch)
        n += len(batch)
        batch = []

    # 30 days of facility totals every 10 min
    t = now_ns - 30 * 86400 * NS
    i = 0
    while t < now_ns:
        it = 20e6 + 2e6 * ((i // 6) % 24) / 24
        batch.append(Point("facility", {"site": site}, {"total_power_w": it * 1.25, "it_power_w": it,
                                                        "cooling_power_w": it * 0.2, "pue": 1.25}, t))
        t += 600 * NS
        i += 1
    flush()
    for idx, (rack, room) in enumerate(names):
        tags = {"site": site, "room": room, "rack": rack}
        batch.append(Point("env", {**tags, "sensor": f"{rack}-in", "position": "inlet"},
                           {"temp_c": 22.0 + (idx % 70) / 10}, now_ns))
        batch.append(Point("env", {**tags, "sensor": f"{rack}-out", "position": "outlet"}, {"temp_c": 36.0}, now_ns))
        for feed in ("A", "B"):
            ptags = {**tags, "pdu": f"pdu-{rack}-{feed.lower()}", "feed": feed}
            amps = 20.0 + (idx % 10)
            batch.append(Point("pdu", ptags, {"power_w": 3 * amps * 230 * 0.95, "current_a": 3 * amps,
                                              "breaker_a": 63.0}, now_ns))
            for ph in ("L1", "L2", "L3"):
                batch.append(Point("pdu_phase", {**ptags, "phase": ph}, {"current_a": amps}, now_ns))
        for s in range(servers):
            host = f"{rack}-n{s + 1:02d}"
            for g in range(gpus):
                uuid = f"GPU-{rack}-{s}-{g}"
                capped = g % 4 == 0
                batch.append(Point("gpu", {**tags, "host": host, "gpu": str(g), "uuid": uuid,
                                           "model": "NVIDIA H100 80GB HBM3"},
                                   {"power_w": 500.0, "power_limit_w": 500.0 if capped else 700.0,
                                    "power_limit_default_w": 700.0, "temp_c": 60.0, "util_pct": 85.0,
                                    "throttle_reasons": 4 if capped else 0}, now_ns))
                if capped:
                    batch.append(Point("optimizer", {"site": site, "host": host, "uuid": uuid, "action": "cap"},
                                       {"power_limit_w": 500.0, "previous_w": 700.0, "mode": "enforce",
                                        "est_saving_w": 120.0, "predicted_pue": 1.24}, now_ns - 20 * NS))
        if len(batch) > 20000:
            flush()
    for u in config.ups:
        batch.append(Point("ups", {"site": site, "ups": u.name}, {"output_power_w": 2.5e6, "load_pct": 62.0,
                                                                  "on_battery": False}, now_ns))
    for c in config.cooling:
        batch.append(Point("cooling", {"site": site, "room": c.room, "unit": c.name, "kind": "crah"},
                           {"supply_temp_c": 19.0, "return_temp_c": 31.0, "cooling_kw": 600.0,
                            "power_w": 120e3}, now_ns))
    flush()
    store.flush()
    return n


def render_payload(app, path: str = "/") -> tuple[int, int]:
    """Bytes of the page-render callback response, over the Flask WSGI stack (raw, gzip)."""
    client = app.server.test_client()
    body = {
        "output": "..page.children...nav.children...chrome.className...kiosk-timer.disabled...root.className..",
        "outputs": [{"id": "page", "property": "children"}, {"id": "nav", "property": "children"},
                    {"id": "chrome", "property": "className"}, {"id": "kiosk-timer", "property": "disabled"},
                    {"id": "root", "property": "className"}],
        "inputs": [{"id": "url", "property": "pathname", "value": path},
                   {"id": "url", "property": "search", "value": ""}],
        "changedPropIds": ["url.pathname"], "state": [],
    }
    r = client.post("/_dash-update-component", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"render callback: HTTP {r.status_code}: {r.get_data()[:300]!r}")
    raw = r.get_data()
    return len(raw), len(gzip.compress(raw))


def cold_child(args) -> int:
    """In a fresh process, as ``dcim dashboard`` starts: open the populated store read-only, build
    the app, freeze the heap, then time the first overview build (what the first screen waits for).
    Prints one JSON line."""
    import gc

    t_start = time.perf_counter()
    from dashboards.app import create_app
    from dashboards.pages import make_ctx, overview
    from dcim.store.sqlite import SqliteStore

    try:
        from dashboards.data import freeze_heap
    except ImportError:  # a dashboard from before it (to compare against)
        freeze_heap = None
    config, _ = make_config(args.racks, args.servers_per_rack, args.gpus_per_server)
    reader = SqliteStore(args.cold_child, readonly=True)
    app = create_app(config, reader, clock=lambda: args.now)
    if freeze_heap is not None:
        freeze_heap()
    t_ready = time.perf_counter()
    gc_s = [0.0]
    gc_t = [0.0]

    def on_gc(phase, _info):
        if phase == "start":
            gc_t[0] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - gc_t[0]

    gc.callbacks.append(on_gc)
    data = app.data
    t, c = time.perf_counter(), time.process_time()
    overview.layout(make_ctx(data, ""))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    gc.callbacks.remove(on_gc)
    t = time.perf_counter()
    overview.layout(make_ctx(data, ""))
    warm = time.perf_counter() - t
    print(json.dumps({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "store_ms": data.store.seconds * 1000,
                      "store_calls": data.store.calls, "gc_ms": gc_s[0] * 1000, "warm_ms": warm * 1000,
                      "startup_ms": (t_ready - t_start) * 1000}))
    reader.close()
    return 0


def cold_runs(args, path: Path, now: float, runs: int = 3) -> list[dict]:
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), "--racks", str(args.racks),
           "--servers-per-rack", str(args.servers_per_rack), "--gpus-per-server", str(args.gpus_per_server),
           "--cold-child", str(path), "--now", repr(now)]
    out = []
    for _ in range(runs):
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--racks", type=int, default=1000)
    ap.add_argument("--servers-per-rack", type=int, default=4)
    ap.add_argument("--gpus-per-server", type=int, default=8)
    ap.add_argument("--screens", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes timed for the cold build")
    ap.add_argument("--cold-child", metavar="STORE", help=argparse.SUPPRESS)
    ap.add_argument("--now", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cold_child:
        return cold_child(args)

    from dashboards.app import create_app
    from dashboards.pages import make_ctx, overview
    from dcim.store.sqlite import SqliteStore

    config, names = make_config(args.racks, args.servers_per_rack, args.gpus_per_server)
    gpus_total = args.racks * args.servers_per_rack * args.gpus_per_server
    with tempfile.TemporaryDirectory(prefix="dcim-bench-dash-") as tmp:
        path = Path(tmp) / "dcim.sqlite"
        store = SqliteStore(path)
        t0 = time.perf_counter()
        now_ns = time.time_ns()
        n = write_points(store, config, names, args.servers_per_rack, args.gpus_per_server, now_ns)
        store.maintain()
        store.close()
        print(f"site: {args.racks} racks, {gpus_total} GPUs; wrote {n} points in {time.perf_counter() - t0:.1f} s")

        # fixed clock in the middle of a tick, so every measurement below stays in one tick
        frozen = [(int(time.time() // 10) * 10) + 1.0]
        # cold: the first build in a fresh process (as `dcim dashboard` starts), store populated
        runs = cold_runs(args, path, frozen[0], args.cold_runs)

        def med(k):
            return statistics.median(r[k] for r in runs)

        cold = med("wall_ms")
        walls = ", ".join(f"{r['wall_ms']:.0f}" for r in runs)
        print(f"overview build, cold (first build in a fresh process): {cold:7.1f} ms wall, {med('cpu_ms'):.1f} ms CPU"
              f" (median of {len(runs)}; target {COLD_TARGET_MS:.0f} ms, ratio {cold / COLD_TARGET_MS:.2f});"
              f" walls {walls} ms")
        print(f"  of it: {med('store_ms'):.1f} ms inside the store ({runs[0]['store_calls']} calls, series map"
              f" included), {med('gc_ms'):.1f} ms in GC passes; process start to app ready {med('startup_ms'):.0f} ms")

        colds, warms, refreshes = [], [], []
        for _ in range(3):
            # a cold cache in a warm process: fresh reader (its series map empty) and fresh app
            reader = SqliteStore(path, readonly=True)
            app = create_app(config, reader, clock=lambda: frozen[0])
            data = app.data
            t = time.perf_counter()
            overview.layout(make_ctx(data, ""))
            colds.append((time.perf_counter() - t) * 1000)
            for _ in range(5):  # warm: a refresh within the same tick
                t = time.perf_counter()
                overview.layout(make_ctx(data, ""))
                warms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                overview.update(make_ctx(data, ""))
                refreshes.append((time.perf_counter() - t) * 1000)
        warm, refresh = statistics.median(warms), statistics.median(refreshes)
        print(f"overview build, cold cache in a warm process: {statistics.median(colds):7.1f} ms (median of 3)")
        print(f"overview build, warm cache: {warm:7.1f} ms (median of {len(warms)}; target {WARM_TARGET_MS:.0f} ms,"
              f" ratio {warm / WARM_TARGET_MS:.2f})")
        print(f"refresh tick (values + floor map), warm: {refresh:7.1f} ms")
        print("  per store call (series map loaded):")
        for m in ("facility", "env", "pdu", "pdu_phase", "ups", "cooling", "gpu", "optimizer", "collector"):
            t = time.perf_counter()
            count = len(reader.latest(m))
            print(f"    store.latest({m!r}): {count:6d} series {(time.perf_counter() - t) * 1000:8.1f} ms")
        t = time.perf_counter()
        summary = reader.gpu_summary(THROTTLE_MASK)
        print(f"    store.gpu_summary():     {summary.count:6d} GPUs   {(time.perf_counter() - t) * 1000:8.1f} ms"
              f" (what the overview asks instead of latest('gpu'))")

        # store queries per refresh tick: 1 screen, then N concurrent screens, each on a fresh tick
        def tick_queries(screens: int) -> int:
            frozen[0] += 10.0
            before = data.store.calls
            barrier = threading.Barrier(screens)

            def screen():
                barrier.wait()
                c = make_ctx(data, "")
                overview.update(c)
                data.snapshot()  # the banner callback

            threads = [threading.Thread(target=screen) for _ in range(screens)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return data.store.calls - before

        # a screen refreshing at a tick boundary while the warmer rebuilds that tick's data
        boundary = []
        for _ in range(3):
            frozen[0] += 10.0
            started = threading.Event()

            def warmer(started=started):  # bound: joined within this iteration
                started.set()
                overview.update(make_ctx(data, ""))

            th = threading.Thread(target=warmer)
            th.start()
            started.wait()
            time.sleep(0.01)
            t = time.perf_counter()
            overview.update(make_ctx(data, ""))
            boundary.append((time.perf_counter() - t) * 1000)
            th.join()
        print(f"refresh at a tick boundary while the warmer rebuilds (served the previous tick): "
              f"{statistics.median(boundary):.1f} ms")

        q1 = tick_queries(1)
        qn = tick_queries(args.screens)
        print(f"store queries per refresh tick: 1 screen = {q1}, {args.screens} screens = {qn}"
              f" (ratio {qn / q1:.2f}; without the shared cache it would be {args.screens}x)")

        raw, gz = render_payload(app, "/")
        upd = overview.update(make_ctx(data, ""))
        refresh_bytes = len(json.dumps({"v": upd["v"], "fig": upd["fig"]["floor"]["data"]}))
        print(f"overview page payload (render callback): {raw / 1024:.0f} KiB raw, {gz / 1024:.0f} KiB gzip;"
              f" one refresh ≈ {refresh_bytes / 1024:.0f} KiB")
        reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
