#!/usr/bin/env python3
"""SNMP poll throughput: our pysnmp poller vs Net-SNMP, same agents, same OIDs, one run.

Agents: the facility twin's SNMP agents (simulator/snmp_agents.py) in a child process, serving
N rack PDUs (half APC rPDU2, half Raritan PDU2) on loopback, v2c; or ``--agent snmpsim`` (the
real AP8641 recording on N endpoints) when the twin is not there.

1. Our side: SnmpCollector discovers every PDU once, then polls all of them concurrently for
   ``--rounds`` cycles (batched GETs of <= 50 OIDs, the steady state of the daemon); once with
   the v2c fast path (the default for v2c devices) and once through pysnmp only (the path
   SNMPv3 devices take).
2. Net-SNMP: for the same rounds, one ``snmpget`` process per (PDU, batch of the same <= 50
   OIDs), all PDUs at once (``-Ln -On -Oq``), i.e. what shelling out to Net-SNMP costs.

Printed: OIDs/s by wall clock and per client CPU-second (our process's CPU time vs the snmpget
children's user+sys), the ratio (target >= 1.0 per core), and how many PDUs one collector
process could poll at a 10 s interval (client CPU bound, and as measured against these agents).
Usage: .venv/bin/python bench/snmp_poll.py [--pdus 24] [--rounds 5] [--agent twin|snmpsim]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COMMUNITY = "bench-community-1"


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def twin_config(ports: list[int]):
    from dcim.config import parse_config

    half = (len(ports) + 1) // 2
    rooms = []
    for r, chunk in enumerate((ports[:half], ports[half:])):
        if chunk:
            rooms.append({"name": f"room{r}", "rows": [{"name": f"row{r}", "racks": [
                {"name": f"R{r}{i:03d}", "server_group": {"count": 4, "gpus": 8}} for i in range(len(chunk))]}]})
    pdus = []
    for r, chunk in enumerate((ports[:half], ports[half:])):
        for i, port in enumerate(chunk):
            pdus.append({"name": f"pdu-{r}-{i:03d}", "rack": f"R{r}{i:03d}", "feed": "A", "outlets": 24,
                         "snmp": {"address": "127.0.0.1", "port": port, "credentials": "bench"}})
    return parse_config({
        "site": {"name": "bench"}, "rooms": rooms, "pdus": pdus,
        "snmp": {"credentials": {"bench": {"version": "2c", "community": {"env": "BENCH_SNMP_COMMUNITY"}}}},
        "collectors": {"timeout_s": 2.0, "retries": 1},
    })


def serve_twin(ports: list[int]) -> None:
    """Child process: serve the twin's agents until killed."""
    from simulator.service import TwinService

    svc = TwinService(twin_config(ports), speed=0, seed=1)
    svc.start_background(timeout_s=60)
    svc.call(lambda: svc.advance(60))
    print("READY", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    svc.stop_background()


def start_agents(kind: str, n: int, tmp: Path):
    ports = free_ports(n)
    env = dict(os.environ, BENCH_SNMP_COMMUNITY=COMMUNITY)
    if kind == "twin":
        proc = subprocess.Popen([sys.executable, __file__, "--serve-twin", json.dumps(ports)], env=env,
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = proc.stdout.readline()
        if "READY" not in line:
            raise SystemExit("twin agents did not start")
        return proc, ports, COMMUNITY
    import shutil
    import snmpsim_data

    data = tmp / "data" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(snmpsim_data.__file__).parent / "data" / "UPS" / "apc-8641.snmprec", data / "apc-8641.snmprec")
    boot = "from snmpsim.commands.responder import main; import sys; sys.exit(main())"
    cmd = [sys.executable, "-c", boot, f"--data-dir={tmp / 'data'}", f"--cache-dir={tmp / 'cache'}",
           "--logging-method=null"] + [f"--agent-udpv4-endpoint=127.0.0.1:{p}" for p in ports]
    if os.geteuid() == 0:
        cmd += ["--process-user=root", "--process-group=root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        r = subprocess.run(["snmpget", "-v2c", "-c", "bench/apc-8641", "-t", "0.5", "-r", "0",
                            f"127.0.0.1:{ports[0]}", "1.3.6.1.2.1.1.2.0"], capture_output=True)
        if r.returncode == 0:
            break
        time.sleep(0.2)
    return proc, ports, "bench/apc-8641"


def build_devices(ports, community, max_oids):
    from collectors.snmp.device import SnmpDevice
    from collectors.snmp.engine import Endpoint, V2c

    return [SnmpDevice(f"pdu-{i}", "pdu", Endpoint("127.0.0.1", p, V2c(community), timeout_s=2.0, retries=1,
                                                  max_oids=max_oids), {"site": "bench"})
            for i, p in enumerate(ports)]


async def ours(devices, rounds: int, fast_v2c: bool):
    from collectors.snmp.collector import SnmpCollector
    from collectors.snmp.engine import SnmpPoller

    for d in devices:
        d.plan = None   # each run discovers on its own engine
    col = SnmpCollector(devices, SnmpPoller(fast_v2c=fast_v2c))
    try:
        first = await col.poll(60)   # discovery (walks) + first GET: not timed
        bad = [r for r in first if not r.ok]
        if bad:
            raise SystemExit(f"discovery failed: {bad[0].target}: {bad[0].error}")
        oids = sum(len({i.oid for i in d.plan.instances}) + 1 for d in devices)
        requests0, varbinds0 = col.poller.requests, col.poller.varbinds
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            results = await col.poll(60)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        varbinds = col.poller.varbinds - varbinds0
        return {"oids_per_round": oids, "wall_s": wall, "cpu_s": cpu, "varbinds": varbinds,
                "requests": col.poller.requests - requests0}
    finally:
        await col.close()


def netsnmp(devices, community: str, rounds: int, max_oids: int):
    """Same OIDs, same PDU sizes, all PDUs concurrently: one snmpget process per PDU request."""
    jobs = []
    for d in devices:
        oids = ["1.3.6.1.2.1.1.2.0"] + list(dict.fromkeys(i.oid for i in d.plan.instances))
        for k in range(0, len(oids), max_oids):
            jobs.append(["snmpget", "-v2c", "-c", community, "-t", "2", "-r", "1", "-On", "-Oq", "-Ln",
                         f"{d.endpoint.host}:{d.endpoint.port}"] + oids[k:k + max_oids])
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    values = 0
    for _ in range(rounds):
        procs = [subprocess.Popen(j, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for j in jobs]
        for p in procs:
            out, _ = p.communicate()
            values += out.count(b"\n")
            if p.returncode != 0:
                raise SystemExit("snmpget failed")
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "varbinds": values, "requests": len(jobs) * rounds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pdus", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-oids", type=int, default=50)
    ap.add_argument("--agent", choices=["twin", "snmpsim"], default=None)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--serve-twin", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_twin:
        serve_twin(json.loads(args.serve_twin))
        return 0
    kind = args.agent
    if kind is None:
        try:
            import simulator.snmp_agents  # noqa: F401
            kind = "twin"
        except ImportError:
            kind = "snmpsim"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc, ports, community = start_agents(kind, args.pdus, Path(tmp))
        try:
            devices = build_devices(ports, community, args.max_oids)
            plain = asyncio.run(ours(devices, args.rounds, fast_v2c=False))
            mine = asyncio.run(ours(devices, args.rounds, fast_v2c=True))
            theirs = netsnmp(devices, community, args.rounds, args.max_oids)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    n_oids = mine["oids_per_round"] * args.rounds
    plain_wall, plain_cpu = n_oids / plain["wall_s"], n_oids / plain["cpu_s"]
    ours_wall, ours_cpu = n_oids / mine["wall_s"], n_oids / mine["cpu_s"]
    ns_wall, ns_cpu = theirs["varbinds"] / theirs["wall_s"], theirs["varbinds"] / theirs["cpu_s"]
    per_pdu_cpu = mine["cpu_s"] / (args.pdus * args.rounds)
    per_pdu_wall = mine["wall_s"] / (args.pdus * args.rounds)
    figures = {
        "agent": kind, "pdus": args.pdus, "rounds": args.rounds, "oids_per_round": mine["oids_per_round"],
        "ours_oids_per_s_wall": round(ours_wall), "ours_oids_per_cpu_s": round(ours_cpu),
        "pysnmp_only_oids_per_s_wall": round(plain_wall), "pysnmp_only_oids_per_cpu_s": round(plain_cpu),
        "ratio_pysnmp_only_per_core": round(plain_cpu / ns_cpu, 2),
        "netsnmp_oids_per_s_wall": round(ns_wall), "netsnmp_oids_per_cpu_s": round(ns_cpu),
        "ratio_per_core": round(ours_cpu / ns_cpu, 2), "ratio_wall": round(ours_wall / ns_wall, 2),
        "ours_requests": mine["requests"], "netsnmp_requests": theirs["requests"],
        "pdus_per_process_at_10s_cpu_bound": int(10.0 / per_pdu_cpu),
        "pdus_per_process_at_10s_vs_these_agents": int(10.0 / per_pdu_wall),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"agents: {kind}, {args.pdus} PDUs, {mine['oids_per_round']} OIDs per round, {args.rounds} rounds, "
          f"<= {args.max_oids} OIDs per GET")
    print(f"  ours (v2c fast path)       {ours_wall:8.0f} OIDs/s wall  {ours_cpu:8.0f} OIDs per CPU-s  "
          f"({mine['requests']} PDUs)")
    print(f"  ours, pysnmp only          {plain_wall:8.0f} OIDs/s wall  {plain_cpu:8.0f} OIDs per CPU-s  "
          f"({plain['requests']} PDUs; what SNMPv3 devices cost)")
    print(f"  Net-SNMP snmpget           {ns_wall:8.0f} OIDs/s wall  {ns_cpu:8.0f} OIDs per CPU-s  "
          f"({theirs['requests']} processes)")
    print(f"  ratio ours/Net-SNMP        per core {figures['ratio_per_core']:.2f}   wall {figures['ratio_wall']:.2f}"
          f"   (target >= 1.0 per core); pysnmp only: per core {figures['ratio_pysnmp_only_per_core']:.2f}")
    print(f"  one collector process at a 10 s interval: ~{figures['pdus_per_process_at_10s_cpu_bound']} PDUs "
          f"(client CPU bound, {per_pdu_cpu * 1000:.1f} ms CPU per PDU poll); "
          f"~{figures['pdus_per_process_at_10s_vs_these_agents']} PDUs against these agents "
          f"(agents share this machine's cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
