#!/usr/bin/env python3
"""POST /v1/progress throughput: a real `dcim optimize` process, hit by loopback load generators.

The server is the real thing: `dcim optimize --mode advise` on a demo config with a SQLite store
whose `workload` points name the jobs ([workload] source = "slurm", so every report is checked
against them), accepted reports written through its store writer into SQLite. It serves the
intake twice: on its own listener ([optimizer] progress_port: uvicorn + httptools + uvloop, the
main shape) and on the optimizer API's waitress route (for comparison). Load generators are
separate processes, each posting over one kept-alive connection (what dcim.progress.Reporter
does), for these shapes:

1. progress listener, one report per request (a training job's Reporter): the target's shape;
2. progress listener, one report per request, a new TCP connection each time;
3. progress listener, batches of 100 reports per request ({"reports": [...]}, e.g. a gateway);
4. the waitress route on the API port, one report per request (what the listener replaced);
5. a bare dcim.web.WsgiServer (the same waitress, limits and threads) whose app only reads the
   body and answers 200: the ceiling waitress itself sets here.

Printed per shape: reports/s by wall clock, reports per server CPU-second (the server process's
user+sys time from /proc, all its threads: the listener, waitress, the checks, the writer,
SQLite, and the optimizer's own cycles), and the ratio to the target of 5,000 posts/s on one
core; then the server's own counters (every report accepted, none refused) and the points in the
store.
Usage: .venv/bin/python bench/progress_api.py [--seconds 5] [--clients 4] [--jobs 512]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_PER_CPU_S = 5000.0
TOKEN = "bench-progress-token"
TICKS = os.sysconf("SC_CLK_TCK")
BARE = f"""
import json, sys, time
sys.path.insert(0, {str(REPO)!r})
from dcim.web import WsgiServer
from optimizer.api import LIMITS

def app(environ, start_response):
    json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{{}}"]

server = WsgiServer(app, "127.0.0.1", 0, name="bare", limits=LIMITS).start()
print(server.port, flush=True)
sys.stdin.read()
"""


def write_config(tmp: Path) -> Path:
    import tomli_w

    data = tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8"))
    data["store"] = {"backend": "sqlite", "path": str(tmp / "dcim.sqlite"), "spool": {"path": str(tmp / "spool")}}
    data["optimizer"].update(token={"env": "DCIM_BENCH_TOKEN"}, port=0, progress_port=0,
                             model_path=str(tmp / "model.pkl"))
    data.setdefault("workload", {})["source"] = "slurm"
    path = tmp / "dcim.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def seed_workload(config: Path, jobs: int) -> str:
    """One running job per GPU slot, in the store the server reads; returns the site name."""
    from dcim.config import load_config
    from dcim.metrics import Point
    from dcim.store import open_store

    cfg = load_config(config)
    with open_store(cfg) as store:
        store.write([Point("workload", {"site": cfg.site.name, "host": f"n{j // 8:04d}", "uuid": f"GPU-{j:06d}"},
                           {"job": str(100000 + j), "tenant": f"tenant-{j % 7}", "job_class": "training",
                            "account": "acct", "source": "slurm"}) for j in range(jobs)])
    return cfg.site.name


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def load(port: int, jobs: list[str], seconds: float, batch: int, keep_alive: bool, base: float, out) -> None:
    """Post for *seconds*; each job's counter grows 100 per report from *base* (above the last
    phase's, so no report is a reset), stamped with the client's clock."""
    def body_of(reps: list) -> bytes:
        return json.dumps(reps[0] if batch == 1 else {"reports": reps}).encode()

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    work = dict.fromkeys(jobs, base)
    sent = refused = errors = 0
    i = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        reps = []
        for _ in range(batch):
            job = jobs[i % len(jobs)]
            i += 1
            work[job] += 100.0
            reps.append({"job": job, "work_done": work[job], "unit": "samples", "time_ns": time.time_ns()})
        try:
            conn.request("POST", "/v1/progress", body_of(reps), headers)
            answer = json.loads(conn.getresponse().read())
            sent += batch
            refused += answer.get("refused", batch)
        except (OSError, http.client.HTTPException, ValueError):
            errors += 1
            conn.close()
        if not keep_alive:
            conn.close()
    out.put((sent, refused, errors))


def phase(pid: int, port: int, jobs: list[str], clients: int, seconds: float, batch: int, keep_alive: bool,
          base: float):
    queue = multiprocessing.Queue()
    share = [jobs[c::clients] for c in range(clients)]  # each job posted by one client only: in order
    procs = [multiprocessing.Process(target=load, args=(port, share[c], seconds, batch, keep_alive, base, queue))
             for c in range(clients)]
    cpu0, t0 = cpu_s(pid), time.monotonic()
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    wall, cpu = time.monotonic() - t0, cpu_s(pid) - cpu0
    sent, refused, errors = (sum(r[k] for r in results) for k in range(3))
    return sent, refused, errors, wall, cpu


def listening_ports(server) -> dict[str, int] | None:
    """The API's and the progress listener's ports, from what `dcim optimize` prints at start."""
    ports: dict[str, int] = {}
    while len(ports) < 2:
        line = server.stdout.readline()
        if not line:
            return None
        for name, pattern in (("api", r"optimizer API on http://[\d.]+:(\d+)"),
                              ("progress", r"progress intake on http://[\d.]+:(\d+)/v1/progress")):
            found = re.search(pattern, line)
            if found:
                ports[name] = int(found.group(1))
    return ports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=512)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dcim-bench-progress-"))
    config = write_config(tmp)
    site = seed_workload(config, args.jobs)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", DCIM_BENCH_TOKEN=TOKEN)
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "--log-level", "WARNING", "optimize",
                               "--config", str(config), "--mode", "advise"], cwd=tmp, env=env,
                              stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        ports = listening_ports(server)
        if ports is None:
            print(f"server did not start; see {tmp / 'server.log'}")
            return 1
        time.sleep(1.0)  # the first optimizer cycle
        jobs = [str(100000 + j) for j in range(args.jobs)]
        print(f"dcim optimize pid {server.pid}: progress listener 127.0.0.1:{ports['progress']}, API (waitress) "
              f"127.0.0.1:{ports['api']}; {args.jobs} jobs in the workload, {args.clients} client processes, "
              f"{args.seconds:g} s per shape, {os.cpu_count()} CPUs here")
        shapes = (("listener: 1 report/request, keep-alive", "progress", 1, True),
                  ("listener: 1 report/request, new conn.", "progress", 1, False),
                  ("listener: 100 reports/request", "progress", 100, True),
                  ("waitress: 1 report/request, keep-alive", "api", 1, True))
        for n, (name, where, batch, keep) in enumerate(shapes):
            sent, refused, errors, wall, cpu = phase(server.pid, ports[where], jobs, args.clients, args.seconds,
                                                     batch, keep, base=n * 1e6)
            per_cpu = sent / cpu if cpu else float("inf")
            print(f"{name:40s} {sent:8d} reports  {sent / wall:8.0f}/s wall  {per_cpu:8.0f}/server CPU-s  "
                  f"ratio {per_cpu / TARGET_PER_CPU_S:5.2f}  (server CPU {cpu:.2f} s of {wall:.1f} s; "
                  f"refused {refused}, errors {errors})")
        port = ports["progress"]
        bare = subprocess.Popen([sys.executable, "-c", BARE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            bare_port = int(bare.stdout.readline())
            sent, _, errors, wall, cpu = phase(bare.pid, bare_port, jobs, args.clients, args.seconds, 1, True, 0.0)
            print(f"{'bare waitress, 1/request, keep-alive':40s} {sent:8d} requests {sent / wall:8.0f}/s wall  "
                  f"{sent / cpu:8.0f}/server CPU-s  ratio {sent / cpu / TARGET_PER_CPU_S:5.2f}  (waitress's ceiling)")
        finally:
            bare.stdin.close()
            bare.wait(10)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/progress/stats", headers={"Authorization": f"Bearer {TOKEN}"})
        stats = json.loads(conn.getresponse().read())
        print("server counters:", {k: v for k, v in stats.items() if v})
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    from dcim.config import load_config
    from dcim.store import open_store

    with open_store(load_config(config), readonly=True) as store:
        stored = store.latest("progress", where={"site": site})
    print(f"progress series in the store after shutdown: {len(stored)} of {args.jobs} jobs; "
          f"server log warnings: {sum(1 for _ in (tmp / 'server.log').open())} lines ({tmp / 'server.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
