"""Fault and load bench: the demo facility at 10x, collected for N minutes with 20 screens open,
plus the store outages at full length. Writes a Markdown table to bench/results/faults.md.

    .venv/bin/python bench/faults.py                 # 10 minutes, 10x, 20 screens, then outages
    .venv/bin/python bench/faults.py --minutes 2     # shorter
    .venv/bin/python bench/faults.py --skip-load     # outages only

Load phase: the config is built in code from deploy/demo.toml's shape (each hall, rack, PDU,
cooling unit and UPS repeated --scale times: 10x = 160 racks, 5,120 GPUs, 320 PDUs). The twin
(`dcim simulate`, a subprocess) serves every device over SNMP on loopback; this process runs the
real Runner + SnmpCollector + StoreWriter + SqliteStore at the demo's 10 s interval, and the
GPU servers' NVML agents are stood in for by a generator writing one `gpu` point per GPU every
gpu_interval_s through the same writer. `dcim dashboard` (a subprocess, waitress) is polled by
--screens concurrent clients, each doing what an open screen does every refresh: the page's
update callback (/_dash-update-component, the pattern-matching refresh with its real ids) and
the banner. Reported: cycles run/missed, cycle duration p50/p99, points generated vs written vs
in the store, RSS of each process over time, screen update latency.

Outage phase: a real influxd; a generator at the 10x site's full rate; influxd stopped for
--outage-s (60 s), then a second outage with a spool bound smaller than the outage needs.
Counted from the generator, StoreWriter.stats() and a query of influxd.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcim.metrics import Point  # noqa: E402

SECRETS = {"DCIM_SNMP_AUTH_KEY": "bench-auth-key-0001", "DCIM_SNMP_PRIV_KEY": "bench-priv-key-0002",
           "DCIM_SNMP_COMMUNITY": "bench-community-3"}


# --- the 10x facility ------------------------------------------------------------------------------


def scaled_config(scale: int, root: Path, interval_s: float) -> tuple[Path, dict]:
    demo = tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8"))
    data = {k: v for k, v in demo.items() if k not in ("rooms", "pdus", "cooling", "ups", "meters")}
    data["rooms"], data["pdus"], data["cooling"], data["ups"] = [], [], [], []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.90.0.1", 0))
        port = s.getsockname()[1]
    n = 0

    def addr():
        nonlocal n
        n += 1
        return {"address": f"127.90.{n // 250}.{n % 250 + 1}", "port": port}

    for k in range(scale):
        sfx = f"-{k:02d}"
        for room in demo["rooms"]:
            r = json.loads(json.dumps(room))
            r["name"] += sfx
            for row in r["rows"]:
                row["name"] += sfx
                for rack in row["racks"]:
                    rack["name"] += sfx
            data["rooms"].append(r)
        for pdu in demo["pdus"]:
            data["pdus"].append({**pdu, "name": pdu["name"] + sfx, "rack": pdu["rack"] + sfx,
                                 "snmp": {**pdu["snmp"], **addr()}})
        for unit in demo["cooling"]:
            data["cooling"].append({**unit, "name": unit["name"] + sfx, "room": unit["room"] + sfx,
                                    "racks": [x + sfx for x in unit.get("racks", [])],
                                    "snmp": {**unit["snmp"], **addr()}})
        for ups in demo["ups"]:
            data["ups"].append({**ups, "name": ups["name"] + sfx, "rooms": [x + sfx for x in ups["rooms"]],
                                "snmp": {**ups["snmp"], **addr()}})
    data["meters"] = [{**m, "snmp": {**m["snmp"], **addr()}} for m in demo["meters"]]
    data["store"] = {"backend": "sqlite", "path": str(root / "dcim.sqlite"), "raw_retention_days": 7,
                     "spool": {"path": str(root / "spool")}}
    data["collectors"] = {**demo["collectors"], "snmp_interval_s": interval_s}
    data["dashboard"] = {**demo.get("dashboard", {}), "port": 0}
    import tomli_w

    path = root / "dcim-10x.toml"
    path.write_text(tomli_w.dumps(data))
    return path, data


# --- helpers ---------------------------------------------------------------------------------------


def rss_mib(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped for a full socket receive buffer (all processes, /proc/net/snmp)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Udp:")]
        return int(dict(zip(lines[0], lines[1]))["RcvbufErrors"])
    except (OSError, KeyError, IndexError, ValueError):
        return -1


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **SECRETS)


def stop_proc(proc: subprocess.Popen | None):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class GpuGenerator:
    """The node agents' NVML points: one `gpu` point per GPU every *interval_s*, keeps its count."""

    def __init__(self, writer, slots, interval_s: float):
        self.writer, self.slots, self.interval_s = writer, slots, interval_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gpu-generator")

    def _run(self):
        rng = random.Random(1)
        nxt = time.monotonic()
        while not self._stop.is_set():
            now = time.time_ns()
            pts = [Point("gpu", {**s.tags, "uuid": f"GPU-bench-{i:05d}", "model": s.model},
                         {"power_w": 300.0 + rng.random() * 300, "util_pct": 80.0, "temp_c": 60.0,
                          "power_limit_w": 700.0, "energy_j": float(i)}, now + i)
                   for i, s in enumerate(self.slots)]
            self.writer.write(pts)
            self.sent += len(pts)
            nxt += self.interval_s
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)


# --- dashboard screens -----------------------------------------------------------------------------


class Screen(threading.Thread):
    """One open wall screen: every *refresh_s*, the refresh callback and the banner, as the browser does."""

    PAGES = ["/", "/racks", "/power", "/cooling", "/gpus", "/energy", "/optimizer", "/alarms"]

    def __init__(self, base: str, deps: list, k: int, refresh_s: float, stop: threading.Event):
        super().__init__(daemon=True, name=f"screen-{k}")
        self.base, self.deps, self.refresh_s, self.stop_ev = base, deps, refresh_s, stop
        self.page = self.PAGES[k % len(self.PAGES)]
        self.latencies: list[float] = []
        self.errors = 0
        self.requests = 0

    def _post(self, body) -> dict | None:
        req = urllib.request.Request(self.base + "/_dash-update-component", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        t0 = time.perf_counter()
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                text = r.read()
                self.latencies.append(time.perf_counter() - t0)
                return json.loads(text) if r.status == 200 and text else {}
        except Exception:
            self.errors += 1
            return None

    def _dep(self, pred):
        return next(d for d in self.deps if pred(d))

    def run(self):
        render = self._dep(lambda d: d["output"].startswith("..page.children"))
        refresh = self._dep(lambda d: '"type":"v"' in d["output"])
        banner = self._dep(lambda d: d["output"].startswith("..banner.children"))
        out = self._post({"output": render["output"], "outputs": [
            {"id": o.rpartition(".")[0], "property": o.rpartition(".")[2]} for o in render["output"][2:-2].split("...")],
            "inputs": [{"id": "url", "property": "pathname", "value": self.page},
                       {"id": "url", "property": "search", "value": ""}], "changedPropIds": ["url.pathname"]})
        ids = {"v": [], "fig": [], "tbl": []}

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
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            outs = []
            for part in refresh["output"][2:-2].split("..."):
                ident, _, prop = part.rpartition(".")
                kind = json.loads(ident)["type"]
                outs.append([{"id": i, "property": prop} for i, _ in ids[kind]])
            self._post({"output": refresh["output"], "outputs": outs,
                        "inputs": [{"id": "tick", "property": "n_intervals", "value": n}],
                        "state": [{"id": "url", "property": "pathname", "value": self.page},
                                  {"id": "url", "property": "search", "value": ""},
                                  [{"id": i, "property": "id", "value": i} for i, _ in ids["v"]],
                                  [{"id": i, "property": "className", "value": c} for i, c in ids["v"]],
                                  [{"id": i, "property": "id", "value": i} for i, _ in ids["fig"]],
                                  [{"id": i, "property": "id", "value": i} for i, _ in ids["tbl"]]],
                        "changedPropIds": ["tick.n_intervals"]})
            self._post({"output": banner["output"], "outputs": [
                {"id": o.rpartition(".")[0], "property": o.rpartition(".")[2]} for o in banner["output"][2:-2].split("...")],
                "inputs": [{"id": "tick", "property": "n_intervals", "value": n},
                           {"id": "url", "property": "search", "value": ""}], "changedPropIds": ["tick.n_intervals"]})
            self.stop_ev.wait(self.refresh_s)


# --- the load phase --------------------------------------------------------------------------------


def load_phase(args, root: Path) -> dict:
    from collectors.runner import Runner
    from collectors.snmp.collector import SnmpCollector
    from dcim.config import load_config
    from dcim.inventory import build_inventory
    from dcim.store.sqlite import SqliteStore
    from dcim.store.writer import StoreWriter

    cfg_path, _ = scaled_config(args.scale, root, args.interval)
    os.environ.update(SECRETS)
    cfg = load_config(cfg_path)
    inv = build_inventory(cfg)
    n_dev = len(inv.snmp_devices())
    print(f"10x facility: {len(inv.racks)} racks, {len(inv.gpus)} GPUs, {len(cfg.pdus)} PDUs, "
          f"{n_dev} SNMP devices", flush=True)
    res = {"scale": args.scale, "racks": len(inv.racks), "gpus": len(inv.gpus), "pdus": len(cfg.pdus), "devices": n_dev}
    # the twin's agents in their own process, with the light synthetic physics: the bench measures
    # the collector, the store and the dashboard, not the twin's GPU model
    sim = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-agents", str(cfg_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=root)
    dash = None
    try:
        deadline = time.monotonic() + 300
        for line in sim.stdout:
            if "serving" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("simulator did not start")
        threading.Thread(target=lambda: [None for _ in sim.stdout], daemon=True).start()
        store = SqliteStore(cfg.store.path)
        writer = StoreWriter(store, cfg.store.spool.path, cfg.store.spool.max_bytes)
        durations: list[float] = []
        answered: list[float] = []

        class TimedRunner(Runner):
            async def run_cycle(self, name):
                t0 = time.monotonic()
                try:
                    results = await super().run_cycle(name)
                    answered.append(sum(r.ok for r in results) / max(1, len(results)))
                    return results
                finally:
                    durations.append(time.monotonic() - t0)

        holder: dict = {}
        port = free_port()
        dash = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "dashboard", "--config", str(cfg_path),
                                 "--port", str(port), "--threads", "8"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env(), cwd=root)
        threading.Thread(target=lambda: [None for _ in dash.stdout], daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        gen = GpuGenerator(writer, inv.gpus, cfg.collectors.gpu_interval_s).start()
        loop_holder = {}

        def run_loop():
            loop = asyncio.new_event_loop()
            loop_holder["loop"] = loop
            asyncio.set_event_loop(loop)
            # the SNMP engine is made on the loop that runs it (pysnmp binds its transport to it)
            col = SnmpCollector.from_inventory(inv)
            holder["runner"] = TimedRunner([col], writer)
            ev = asyncio.Event()
            loop_holder["stop"] = ev
            loop.run_until_complete(holder["runner"].run(ev))

        th = threading.Thread(target=run_loop, daemon=True, name="runner")
        th.start()
        deadline = time.monotonic() + 120
        deps = None
        while time.monotonic() < deadline and deps is None:
            try:
                with urllib.request.urlopen(base + "/_dash-dependencies", timeout=10) as r:
                    deps = json.loads(r.read())
            except Exception:
                time.sleep(1)
        stop_screens = threading.Event()
        screens = [Screen(base, deps, k, cfg.dashboard.refresh_s, stop_screens) for k in range(args.screens)] \
            if deps else []
        for s in screens:
            s.start()
        t_start = time.monotonic()
        drops0 = udp_rcvbuf_errors()
        rss = []
        end = t_start + args.minutes * 60
        while time.monotonic() < end:
            rss.append((round(time.monotonic() - t_start), rss_mib(), rss_mib(dash.pid), rss_mib(sim.pid)))
            print(f"  t={rss[-1][0]:4d}s cycles={len(durations)} last={durations[-1] if durations else 0:.1f}s "
                  f"rss collector={rss[-1][1]:.0f} dashboard={rss[-1][2]:.0f} sim={rss[-1][3]:.0f} MiB "
                  f"written={writer.stats()['written']}", flush=True)
            time.sleep(min(30, max(0.0, end - time.monotonic())))
        rss.append((round(time.monotonic() - t_start), rss_mib(), rss_mib(dash.pid), rss_mib(sim.pid)))
        elapsed = time.monotonic() - t_start
        udp_drops = udp_rcvbuf_errors() - drops0 if drops0 >= 0 else -1
        stop_screens.set()
        loop_holder["loop"].call_soon_threadsafe(loop_holder["stop"].set)
        th.join(60)
        gen.stop()
        for s in screens:
            s.join(70)
        writer.flush()
        stats = writer.stats()
        writer.close()
        state = holder["runner"].states["snmp"]
        import sqlite3
        con = sqlite3.connect(cfg.store.path)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'raw_%'")]
        in_store = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        con.close()
        lat = [x for s in screens for x in s.latencies]
        res.update(
            minutes=round(elapsed / 60, 1), interval_s=args.interval, cycles=state.cycles, missed=state.missed,
            expected_cycles=int(elapsed // args.interval),
            p50=pct(durations, 50), p99=pct(durations, 99), max=max(durations or [float("nan")]),
            gpu_generated=gen.sent, accepted=stats["accepted"], written=stats["written"],
            dropped=stats["dropped"], rejected=stats["rejected"], spooled=stats["spooled"],
            in_store=sum(in_store.values()), gpu_in_store=in_store.get("raw_gpu", 0),
            snmp_points=state.points_total, rss=rss, screens=len(screens),
            screen_requests=sum(s.requests for s in screens), screen_errors=sum(s.errors for s in screens),
            screen_p50=pct(lat, 50), screen_p99=pct(lat, 99),
            answered_p50=pct(answered, 50), answered_min=min(answered or [float("nan")]),
            answered_first=answered[0] if answered else float("nan"),
            answered_after_first=min(answered[1:] or [float("nan")]), udp_drops=udp_drops)
        return res
    finally:
        stop_proc(dash)
        stop_proc(sim)


# --- the outage phase ------------------------------------------------------------------------------


def outage_phase(args, rate_pps: float) -> list[dict]:
    from dcim.store.influx import InfluxStore
    from dcim.store.writer import StoreWriter
    from tests.fixtures.influxd import InfluxdProcess

    out = []
    server = InfluxdProcess().start()
    try:
        down = int(args.outage_s)  # whole seconds in the row's name
        for name, bound, down_s in ((f"influxd down {down} s at full rate", 256 << 20, args.outage_s),
                                    (f"influxd down {down} s, spool bound 4 MiB (past the bound)",
                                     4 << 20, args.outage_s)):
            if server.proc is None:
                server.start()
            db = "bench_" + uuid.uuid4().hex[:8]
            store = InfluxStore(server.url, db, timeout_s=2.0, max_retries=1, backoff_s=0.05, max_backoff_s=0.5)
            store.write([Point("facility", {"site": "s"}, {"pue": 1.3}, 1)])
            spool = Path(tempfile.mkdtemp(prefix="dcim-bench-spool-"))
            writer = StoreWriter(store, spool, max_spool_bytes=bound, flush_interval_s=0.5, max_retry_interval_s=2)
            sent = 0
            t0_ns = time.time_ns()
            stop = threading.Event()
            tick = 0.5
            per_tick = max(1, int(rate_pps * tick))

            # bound now: the thread is stopped and joined before the next iteration rebinds them
            def gen(stop=stop, writer=writer, per_tick=per_tick, tick=tick):
                nonlocal sent
                nxt = time.monotonic()
                while not stop.is_set():
                    now = time.time_ns()
                    writer.write([Point("gpu", {"site": "s", "host": f"h{(sent + k) % 640}", "gpu": str((sent + k) % 8),
                                                "uuid": f"GPU-{(sent + k) % 5120:05d}", "model": "H100"},
                                        {"power_w": 400.0, "mem_used_bytes": sent + k}, now + k)
                                  for k in range(per_tick)])
                    sent += per_tick
                    nxt += tick
                    stop.wait(max(0.0, nxt - time.monotonic()))

            th = threading.Thread(target=gen, daemon=True)
            th.start()
            time.sleep(10)
            server.stop()
            time.sleep(down_s)
            mid = writer.stats()
            server.start()
            time.sleep(10)
            stop.set()
            th.join(10)
            t_drain = time.monotonic()
            while True:
                writer.flush()
                s = writer.stats()
                if (s["spool_points"] == 0 and s["buffered"] == 0) or time.monotonic() - t_drain > 600:
                    break
                time.sleep(0.5)
            drain_s = time.monotonic() - t_drain
            stats = writer.stats()
            writer.close()
            count = 0
            for series in store.query("gpu", ["mem_used_bytes"], t0_ns - 10**9, time.time_ns() + 10**9, agg="count"):
                count += int(sum(v for v in series.values["mem_used_bytes"] if v is not None))
            out.append(dict(name=name, generated=sent, accepted=stats["accepted"], written=stats["written"],
                            spooled=stats["spooled"], replayed=stats["replayed"], dropped=stats["dropped"],
                            rejected=stats["rejected"], in_store=count, spool_peak=mid["spool_bytes"],
                            drain_s=drain_s, rate=rate_pps, down_s=down_s, bound=bound))
            print(f"  {name}: {out[-1]}", flush=True)
            try:
                store.execute(f'DROP DATABASE "{db}"')
            except Exception:
                pass
            store.close()
    finally:
        server.close()
    return out


# --- the report ------------------------------------------------------------------------------------


def report(load: dict | None, outages: list[dict], tests: str, path: Path) -> str:
    lines = ["# Faults, bad input and security: results", "",
             f"Machine: {os.cpu_count()} CPU cores (shared), Python {sys.version.split()[0]}; "
             f"written by `bench/faults.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "| fault or attack tried | what held | figures |", "| --- | --- | --- |"]
    if load:
        warm = load["rss"][len(load["rss"]) // 4]
        grew = [(load["rss"][-1][i] - warm[i]) / warm[i] for i in (1, 2, 3)]
        flat = "RSS flat after warm-up (< 10 %)" if max(grew) < 0.10 else \
            "RSS grew after warm-up: " + ", ".join(f"{n} {g:+.0%}" for n, g in zip(("collector", "dashboard", "twin"), grew))
        growth = lambda i: (load["rss"][-1][i] - load["rss"][len(load["rss"]) // 4][i])  # noqa: E731
        answered = ("; every device answered every cycle after the first (discovery)"
                    if load.get("answered_after_first", 0) >= 0.99 else
                    "; NOT every device answered every cycle (see figures)")
        lines.append(
            f"| load: {load['scale']}x demo ({load['gpus']:,} GPUs, {load['pdus']} PDUs, {load['devices']} SNMP devices) "
            f"collected every {load['interval_s']:g} s for {load['minutes']} min, {load['screens']} dashboard screens polling | "
            f"{'no cycle missed' if load['missed'] == 0 else str(load['missed']) + ' cycles missed'}"
            f"{answered}"
            f"; every accepted "
            f"point written ({load['dropped']} dropped, {load['rejected']} rejected); {flat} | "
            f"{load['cycles']} cycles ({load['expected_cycles']} slots), {load['missed']} missed; cycle p50 "
            f"{load['p50']:.1f} s, p99 {load['p99']:.1f} s, max {load['max']:.1f} s; devices answered per cycle: "
            f"median {load['answered_p50']:.0%}, worst {load['answered_min']:.0%}; first cycle (discovering) "
            f"{load.get('answered_first', float('nan')):.0%}, worst after it "
            f"{load.get('answered_after_first', float('nan')):.0%}; UDP datagrams dropped for a full receive buffer "
            f"{load.get('udp_drops', -1)}; points: GPU generated {load['gpu_generated']:,}, GPU in store "
            f"{load['gpu_in_store']:,}, accepted {load['accepted']:,}, written {load['written']:,}, rows in store "
            f"{load['in_store']:,}; RSS MiB start→end (growth after warm-up): collector "
            f"{load['rss'][0][1]:.0f}→{load['rss'][-1][1]:.0f} ({growth(1):+.0f}), dashboard "
            f"{load['rss'][0][2]:.0f}→{load['rss'][-1][2]:.0f} ({growth(2):+.0f}), twin "
            f"{load['rss'][0][3]:.0f}→{load['rss'][-1][3]:.0f} ({growth(3):+.0f}); screens: "
            f"{load['screen_requests']:,} callback requests, {load['screen_errors']} errors, p50 "
            f"{load['screen_p50'] * 1000:.0f} ms, p99 {load['screen_p99'] * 1000:.0f} ms |")
    for o in outages:
        lost = o["generated"] - o["in_store"] - o["dropped"]
        held = ("zero lost: every point spooled and replayed" if o["dropped"] == 0 and lost == 0 else
                f"drops only past the bound, all counted and logged (oldest first); {lost} unaccounted")
        lines.append(
            f"| {o['name']} ({o['rate']:,.0f} points/s) | {held} | generated {o['generated']:,}; written "
            f"{o['written']:,}; in influxd {o['in_store']:,}; spooled {o['spooled']:,}; replayed {o['replayed']:,}; "
            f"dropped {o['dropped']:,}; rejected {o['rejected']}; spool peak {o['spool_peak'] / 2**20:.1f} MiB "
            f"(bound {o['bound'] / 2**20:.0f} MiB); drained in {o['drain_s']:.0f} s |")
    lines += [tests, ""]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


SUITE_ROWS = """| store: influxd stopped ~12 s during collection at ~1,000 points/s; past the spool bound; SQLite held by BEGIN EXCLUSIVE past the busy timeout; a long WAL reader (tests/faults/test_store_outages.py) | zero lost within the bound (generator count = stats written = influxd/SQLite count, every sequence number once); past the bound only the oldest dropped, each drop counted and logged | see the test; full-length figures in the rows above |
| devices: 4 of 43 SNMP agents dead, one slow at 0.3x and one at 1.6x the timeout, one flapping, wrong types, -1 sentinels, a model swap, a counter reset; an NVML GPU lost mid-run, NOT_SUPPORTED and UNKNOWN (tests/faults/test_device_faults.py) | every cycle within its interval; healthy devices' series complete and stored; each failure in the `collector` measurement and on the dashboard's alarm list (GPU loss critical) | 3 faulty cycles x 43 devices; 4 NVML cycles x 8 GPUs |
| optimizer: no telemetry, a model file that does not load, a model that raises, the store down longer than the lease (tests/faults/test_optimizer_faults.py; SIGKILL in tests/optimizer) | no cap outside 200-700 W or deeper than max_step_w; caps back to default after the lease; every cap change the GPUs saw has its audit record | audit checked against the twin's GPUs, not the daemon's report |
| bad input: a generated table of 420+ invalid configs from deploy/demo.toml, a sample through `dcim check`; malformed, truncated and 64 KiB SNMP replies; hostile dashboard URLs and callback values (tests/faults/test_bad_input.py) | each config error names its key, exit 2, no traceback; the poller reports a clean error and keeps working; no 500, no traceback text | |
| security: distinctive secrets through `dcim simulate`/`collect` (right keys, wrong keys, missing secret, store down), `dcim check`, dashboard, optimizer API; auth on every dashboard route; desired-state API tokens; hostile desired-state documents; hostile node names (tests/faults/test_security.py) | no secret in any log, stdout/stderr, /proc/<pid>/cmdline, error or page; every route but /health needs auth; no/wrong token refused; the agent clamps every limit to 200-700 W; scheduler commands are argv lists, hostile names refused | |"""  # noqa: E501 (Markdown table rows, one line each)


def serve_agents(cfg_path: str) -> int:
    from dcim.config import load_config
    from simulator.service import SyntheticTwin, TwinService

    os.environ.update(SECRETS)
    cfg = load_config(cfg_path)
    svc = TwinService(cfg, twin=SyntheticTwin(cfg, seed=42), speed=1)
    svc.start_background(timeout_s=300)
    print("serving", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    svc.stop_background()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the load phase (default 10)")
    ap.add_argument("--scale", type=int, default=10, help="facility size vs the demo (default 10)")
    ap.add_argument("--screens", type=int, default=20, help="dashboard screens polling (default 20)")
    ap.add_argument("--interval", type=float, default=10.0, help="SNMP collection interval, s (default 10)")
    ap.add_argument("--outage-s", type=float, default=60.0, help="influxd outage length, s (default 60)")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--serve-agents", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--skip-outages", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "faults.md"))
    args = ap.parse_args(argv)
    if args.serve_agents:
        return serve_agents(args.serve_agents)
    root = Path(tempfile.mkdtemp(prefix="dcim-bench-faults-"))
    load = None
    if not args.skip_load:
        print(f"load phase: {args.minutes} min", flush=True)
        load = load_phase(args, root)
    rate = 5120 / 5 + (load["snmp_points"] / (load["minutes"] * 60) if load else 1500)
    outages = [] if args.skip_outages else outage_phase(args, rate)
    text = report(load, outages, SUITE_ROWS, Path(args.out))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
