"""Dashboard memory with many screens open: RSS of a real `dcim dashboard` process (waitress, the
warmer thread, a SQLite store another process keeps writing) while N simulated wall screens poll
it over HTTP the way a browser does (the page render once, then every refresh the refresh and
banner callbacks; a kiosk screen rotates pages). Prints RSS after warm-up and at the end, and
the growth as a ratio to its anchor: <= 5 % growth after warm-up over an hour (issue 24).

    .venv/bin/python bench/dashboard_memory.py                       # 20 screens, 5 min (a quick look)
    nice -n 10 .venv/bin/python bench/dashboard_memory.py --minutes 60   # the hour the target is about

Warm-up is the first --warmup-min minutes (default: a fifth of the run, at least 1): caches
filled, every page rendered, glibc arenas sized for the server's threads. The anchor: 5 % growth
from the end of warm-up to the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcim.metrics import Point  # noqa: E402

NS = 1_000_000_000
ANCHOR_GROWTH = 0.05
PAGES = ["/", "/alarms", "/racks", "/gpus", "/cooling", "/power", "/energy", "/optimizer", "/tenants"]


PATCHED_CACHE = """
import sys
import dcim.store.sqlite as q
connect = q.SqliteStore._connect
def _connect(self):
    conn = connect(self)
    conn.execute("PRAGMA cache_size = -{kib}")
    return conn
q.SqliteStore._connect = _connect
from dcim.cli.main import main
sys.argv = ["dcim"] + sys.argv[1:]
sys.exit(main())
"""


def site_config(root: Path, racks: int, refresh_s: float) -> dict:
    rows = [{"name": f"R{r}", "racks": [{"name": f"K{r}{k:02d}", "power_budget_kw": 40.0,
                                         "server_group": {"count": 2, "gpus": 8}} for k in range(8)]}
            for r in range(max(1, racks // 8))]
    names = [k["name"] for row in rows for k in row["racks"]]
    return {
        "site": {"name": "bench", "timezone": "Asia/Seoul"},
        "rooms": [{"name": "hall-1", "rows": rows}],
        "pdus": [{"name": f"pdu-{n}-{f.lower()}", "rack": n, "feed": f, "phases": 3, "breaker_a": 32.0,
                  "voltage_v": 230.0} for n in names for f in ("A", "B")],
        "cooling": [{"name": "crah-1", "room": "hall-1", "kind": "crah", "capacity_kw": 400.0}],
        "ups": [{"name": "ups-1", "capacity_kw": 800.0, "rooms": ["hall-1"]}],
        "collectors": {"snmp_interval_s": 10.0, "gpu_interval_s": 10.0},
        "store": {"backend": "sqlite", "path": str(root / "dcim.sqlite")},
        "dashboard": {"refresh_s": refresh_s, "kiosk_rotate_s": 10.0},
    }


def readings(cfg: dict, now_ns: int, k: int) -> list[Point]:
    """One poll of every device, values moving a little each time (as a live site's do)."""
    pts = [Point("facility", {"site": "bench"}, {"total_power_w": 600e3 + 1e3 * (k % 7), "it_power_w": 480e3,
                                                 "cooling_power_w": 90e3, "pue": (600e3 + 1e3 * (k % 7)) / 480e3},
                 now_ns)]
    for row in cfg["rooms"][0]["rows"]:
        for rack in row["racks"]:
            n = rack["name"]
            tags = {"site": "bench", "room": "hall-1", "rack": n}
            pts.append(Point("env", {**tags, "sensor": f"{n}-in", "position": "inlet"}, {"temp_c": 22 + (k % 5) * 0.1},
                             now_ns))
            pts.append(Point("env", {**tags, "sensor": f"{n}-out", "position": "outlet"}, {"temp_c": 35.0}, now_ns))
            for f in ("A", "B"):
                pt = {**tags, "pdu": f"pdu-{n}-{f.lower()}", "feed": f}
                pts.append(Point("pdu", pt, {"power_w": 6000.0 + k % 11, "current_a": 9.0}, now_ns))
                pts += [Point("pdu_phase", {**pt, "phase": ph}, {"current_a": 9.0 + (k % 3) * 0.1}, now_ns)
                        for ph in ("L1", "L2", "L3")]
            for s in (1, 2):
                for g in range(8):
                    pts.append(Point("gpu", {**tags, "host": f"{n}-n{s}", "gpu": str(g), "uuid": f"GPU-{n}-{s}-{g}",
                                             "model": "H100"},
                                     {"power_w": 400.0 + (k + g) % 50, "power_limit_w": 700.0,
                                      "power_limit_default_w": 700.0, "temp_c": 60.0, "util_pct": 90.0,
                                      "throttle_reasons": 0}, now_ns))
    pts.append(Point("ups", {"site": "bench", "ups": "ups-1"}, {"output_power_w": 500e3, "load_pct": 62.0,
                                                               "on_battery": False}, now_ns))
    pts.append(Point("cooling", {"site": "bench", "room": "hall-1", "unit": "crah-1", "kind": "crah"},
                     {"supply_temp_c": 19.0, "return_temp_c": 31.0, "cooling_kw": 300.0, "power_w": 60e3}, now_ns))
    return pts


class Writer(threading.Thread):
    """The collectors' side: a poll of every device every interval, into the same SQLite file."""

    def __init__(self, store, cfg, every_s: float, stop: threading.Event):
        super().__init__(daemon=True, name="writer")
        self.store, self.cfg, self.every_s, self.stop_ev = store, cfg, every_s, stop

    def run(self):
        k = 0
        while not self.stop_ev.is_set():
            self.store.write(readings(self.cfg, time.time_ns(), k))
            self.store.flush()
            k += 1
            self.stop_ev.wait(self.every_s)


class Screen(threading.Thread):
    """One open screen: the page's render once, then every refresh the refresh and banner callbacks
    with the ids the render returned, as dash-renderer sends them. Kiosk screens rotate pages."""

    def __init__(self, base: str, deps: list, page: str, refresh_s: float, stop: threading.Event, kiosk: bool):
        super().__init__(daemon=True, name=f"screen-{page}")
        self.base, self.deps, self.page, self.refresh_s, self.stop_ev, self.kiosk = base, deps, page, refresh_s, stop, kiosk
        self.requests = self.errors = 0

    def post(self, body) -> dict | None:
        req = urllib.request.Request(self.base + "/_dash-update-component", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                text = r.read()
                return json.loads(text) if r.status == 200 and text else {}
        except Exception:  # noqa: BLE001 — counted and reported
            self.errors += 1
            return None

    def dep(self, pred) -> dict:
        return next(d for d in self.deps if pred(d))

    @staticmethod
    def outputs(spec: str) -> list[dict]:
        return [{"id": o.rpartition(".")[0], "property": o.rpartition(".")[2]} for o in spec[2:-2].split("...")]

    def render(self, page: str, search: str) -> dict:
        render = self.dep(lambda d: d["output"].startswith("..page.children"))
        out = self.post({"output": render["output"], "outputs": self.outputs(render["output"]),
                         "inputs": [{"id": "url", "property": "pathname", "value": page},
                                    {"id": "url", "property": "search", "value": search}],
                         "changedPropIds": ["url.pathname"]})
        ids: dict = {"v": [], "fig": [], "tbl": []}

        def walk(node):
            if isinstance(node, dict):
                props = node.get("props", node)
                i = props.get("id") if isinstance(props, dict) else None
                if isinstance(i, dict) and i.get("type") in ids:
                    ids[i["type"]].append((i, props.get("className")))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(out or {})
        return ids

    def run(self):
        refresh = self.dep(lambda d: '"type":"v"' in d["output"])
        banner = self.dep(lambda d: d["output"].startswith("..banner.children"))
        search = "?kiosk=1" if self.kiosk else ""
        page = self.page
        ids = self.render(page, search)
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            if self.kiosk and n % 5 == 0:
                page = PAGES[(PAGES.index(page) + 1) % len(PAGES)]
                ids = self.render(page, search)
            outs = []
            for part in refresh["output"][2:-2].split("..."):
                ident, _, prop = part.rpartition(".")
                outs.append([{"id": i, "property": prop} for i, _ in ids[json.loads(ident)["type"]]])
            self.post({"output": refresh["output"], "outputs": outs,
                       "inputs": [{"id": "tick", "property": "n_intervals", "value": n}],
                       "state": [{"id": "url", "property": "pathname", "value": page},
                                 {"id": "url", "property": "search", "value": search},
                                 [{"id": i, "property": "id", "value": i} for i, _ in ids["v"]],
                                 [{"id": i, "property": "className", "value": c} for i, c in ids["v"]],
                                 [{"id": i, "property": "id", "value": i} for i, _ in ids["fig"]],
                                 [{"id": i, "property": "id", "value": i} for i, _ in ids["tbl"]]],
                       "changedPropIds": ["tick.n_intervals"]})
            self.post({"output": banner["output"], "outputs": self.outputs(banner["output"]),
                       "inputs": [{"id": "tick", "property": "n_intervals", "value": n},
                                  {"id": "url", "property": "search", "value": search}],
                       "changedPropIds": ["tick.n_intervals"]})
            self.stop_ev.wait(self.refresh_s)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(base: str, timeout_s: float = 60) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(base + "/_dash-dependencies", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--screens", type=int, default=20, help="screens polling (default 20; every third in kiosk)")
    ap.add_argument("--minutes", type=float, default=5.0, help="how long to run (default 5; the target: 60)")
    ap.add_argument("--warmup-min", type=float, default=None, help="warm-up minutes (default: a fifth, >= 1)")
    ap.add_argument("--racks", type=int, default=32, help="racks of 16 GPUs (default 32: 512 GPUs, 64 PDUs)")
    ap.add_argument("--refresh-s", type=float, default=2.0, help="the screens' refresh (default 2 s)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sample period (default 5 s)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the dashboard process (e.g. MALLOC_ARENA_MAX=2), repeatable")
    ap.add_argument("--reader-cache-kib", type=int, default=None,
                    help="diagnosis: the dashboard's SQLite page cache (the store sets 32 MiB per connection)")
    args = ap.parse_args(argv)
    import tomli_w

    from dcim.config import parse_config
    from dcim.store.sqlite import SqliteStore

    warmup_s = 60 * (args.warmup_min if args.warmup_min is not None else max(1.0, args.minutes / 5))
    with tempfile.TemporaryDirectory(prefix="dcim-dash-mem-") as tmp:
        root = Path(tmp)
        data = site_config(root, args.racks, args.refresh_s)
        port = free_port()
        data["dashboard"]["port"] = port
        (root / "dcim.toml").write_text(tomli_w.dumps(data))
        cfg = parse_config(data, "bench")
        store = SqliteStore(cfg.store.path)
        now = time.time_ns()
        # a day of facility history, so the trends and PUE periods have something to read
        store.write([Point("facility", {"site": "bench"}, {"total_power_w": 600e3, "it_power_w": 480e3, "pue": 1.25},
                           now - i * 600 * NS) for i in range(1, 24 * 6)])
        store.write(readings(data, now, 0))
        store.flush()
        stop = threading.Event()
        writer = Writer(store, data, 10.0, stop)
        writer.start()
        log = open(root / "dashboard.log", "w")
        command = [sys.executable, "-m", "dcim.cli.main", "dashboard", "--config", str(root / "dcim.toml")]
        if args.reader_cache_kib:  # the same command with the store's connections opened with a smaller cache
            command[1:3] = ["-c", PATCHED_CACHE.format(kib=args.reader_cache_kib)]
        dash = subprocess.Popen(command,
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                     **dict(e.split("=", 1) for e in args.env)})
        try:
            base = f"http://127.0.0.1:{port}"
            deps = wait_up(base)
            screens = [Screen(base, deps, PAGES[k % len(PAGES)], args.refresh_s, stop, kiosk=(k % 3 == 2))
                       for k in range(args.screens)]
            for s in screens:
                s.start()
            t0 = time.monotonic()
            samples: list[tuple[float, float]] = []
            print(f"dcim dashboard pid {dash.pid}: {args.screens} screens every {args.refresh_s:g} s, "
                  f"{len(cfg.inventory_racks) if hasattr(cfg, 'inventory_racks') else args.racks} racks, "
                  f"{args.minutes:g} min (warm-up {warmup_s / 60:g} min)", flush=True)
            while time.monotonic() - t0 < args.minutes * 60:
                time.sleep(args.sample_s)
                if dash.poll() is not None:
                    raise SystemExit(f"the dashboard exited ({dash.returncode}); see its log")
                samples.append((time.monotonic() - t0, rss_mib(dash.pid)))
                if len(samples) % max(1, int(60 / args.sample_s)) == 0:
                    print(f"  t={samples[-1][0]:5.0f}s rss={samples[-1][1]:.1f} MiB", flush=True)
        finally:
            stop.set()
            dash.terminate()
            dash.wait(timeout=20)
            writer.join(timeout=10)
            store.close()
        requests = sum(s.requests for s in screens)
        errors = sum(s.errors for s in screens)
        warm = next((r for t, r in samples if t >= warmup_s), samples[-1][1])
        end = samples[-1][1]
        peak = max(r for _, r in samples)
        growth = (end - warm) / warm
        print(f"RSS {samples[0][1]:.1f} MiB at start, {warm:.1f} after warm-up, {end:.1f} at the end "
              f"(peak {peak:.1f}); growth after warm-up {growth:+.1%} over {(samples[-1][0] - warmup_s) / 60:.1f} min; "
              f"{requests:,} callback requests, {errors} errors")
        print(f"growth / anchor ({ANCHOR_GROWTH:.0%}): {max(growth, 0) / ANCHOR_GROWTH:.2f} "
              f"({'within' if growth <= ANCHOR_GROWTH else 'OVER'} the target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
