#!/usr/bin/env python3
"""SNMP poll throughput: our client vs Net-SNMP in process (ezsnmp), same agents, same OIDs.

Client CPU per OID is the figure: our process's CPU time (``time.process_time``) while it polls,
agents run in other processes. Three parts, one run:

1. Twin, v2c: the facility twin's agents (simulator/snmp_agents.py) serve N rack PDUs (half APC
   rPDU2, half Raritan PDU2) on loopback. SnmpCollector discovers every PDU once, then polls them
   all concurrently for ``--rounds`` cycles (GETs of <= 50 OIDs, the daemon's steady state).
   Anchors on the same OIDs and PDU sizes: ezsnmp (Net-SNMP's C library in this process, one
   session per PDU, GETs one after another), and forked ``snmpget`` (the older anchor).
2. Twin, v3 authPriv (SHA-256 / AES-128): the same PDUs served with a USM user; the collector vs
   ezsnmp v3. Gives "one collector process at a 10 s interval: v3 PDUs per core".
3. Debian's snmpd (Net-SNMP's own agent) on N ports, the first 100 OIDs of its walk per port:
   SnmpPoller.get vs ezsnmp, v2c and v3 authPriv SHA/AES, SHA-256/AES, SHA-512/AES-256.

Printed: OIDs per client CPU-second, the ratio ours/ezsnmp (target >= 1.0 per core) and PDUs per
process at a 10 s interval. Usage:
    .venv/bin/python bench/snmp_poll.py [--pdus 24] [--rounds 5] [--agent twin|snmpsim] [--json]
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
V3_USER, V3_AUTH_KEY, V3_PRIV_KEY = "benchv3", "bench-auth-key-01", "bench-priv-key-02"
V3_AUTH, V3_PRIV = "SHA256", "AES"
# snmpd users: (user, our auth / priv protocol names, snmpd's and ezsnmp's names for them)
SNMPD_USERS = [("bsha", "SHA", "AES", "SHA", "AES"), ("bsha256", "SHA256", "AES", "SHA-256", "AES"),
               ("bsha512", "SHA512", "AES256", "SHA-512", "AES-256")]
EZ_NAMES = {"SHA": "SHA", "SHA256": "SHA-256", "SHA512": "SHA-512", "AES": "AES", "AES256": "AES-256"}


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


def twin_config(ports: list[int], v3: bool = False):
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
        "snmp": {"credentials": {"bench": {
            "version": "3", "user": V3_USER, "auth_protocol": V3_AUTH, "auth_key": {"env": "BENCH_V3_AUTH"},
            "priv_protocol": V3_PRIV, "priv_key": {"env": "BENCH_V3_PRIV"}} if v3 else {
            "version": "2c", "community": {"env": "BENCH_SNMP_COMMUNITY"}}}},
        "collectors": {"timeout_s": 2.0, "retries": 1},
    })


def serve_twin(ports: list[int], v3: bool) -> None:
    """Child process: serve the twin's agents until killed."""
    from simulator.service import TwinService

    svc = TwinService(twin_config(ports, v3), speed=0, seed=1)
    svc.start_background(timeout_s=60)
    svc.call(lambda: svc.advance(60))
    print("READY", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    svc.stop_background()


def start_agents(kind: str, n: int, tmp: Path, v3: bool = False):
    ports = free_ports(n)
    env = dict(os.environ, BENCH_SNMP_COMMUNITY=COMMUNITY, BENCH_V3_AUTH=V3_AUTH_KEY, BENCH_V3_PRIV=V3_PRIV_KEY)
    if kind == "twin":
        proc = subprocess.Popen([sys.executable, __file__, "--serve-twin", json.dumps([ports, v3])], env=env,
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


def build_devices(ports, auth, max_oids):
    from collectors.snmp.device import SnmpDevice
    from collectors.snmp.engine import Endpoint

    return [SnmpDevice(f"pdu-{i}", "pdu", Endpoint("127.0.0.1", p, auth, timeout_s=2.0, retries=1,
                                                  max_oids=max_oids), {"site": "bench"})
            for i, p in enumerate(ports)]


def device_oids(device) -> list[str]:
    """What one steady-state poll of *device* asks (the collector adds sysObjectID)."""
    return ["1.3.6.1.2.1.1.2.0"] + list(dict.fromkeys(i.oid for i in device.plan.instances))


async def ours(devices, rounds: int):
    from collectors.snmp.collector import SnmpCollector
    from collectors.snmp.engine import SnmpPoller

    col = SnmpCollector(devices, SnmpPoller())
    try:
        first = await col.poll(60)   # discovery (walks) + first GET: not timed
        bad = [r for r in first if not r.ok]
        if bad:
            raise SystemExit(f"discovery failed: {bad[0].target}: {bad[0].error}")
        oids = sum(len(device_oids(d)) for d in devices)
        requests0, varbinds0 = col.poller.requests, col.poller.varbinds
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            results = await col.poll(60)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"oids_per_round": oids, "wall_s": wall, "cpu_s": cpu, "varbinds": col.poller.varbinds - varbinds0,
                "requests": col.poller.requests - requests0}
    finally:
        await col.close()


def ez_session(host: str, port: int, auth):
    """An ezsnmp (Net-SNMP) session speaking *auth* (our V2c / V3)."""
    from ezsnmp import Session

    from collectors.snmp.engine import V2c

    common = dict(hostname=host, port_number=port, timeout=2, retries=1, print_oids_numerically=True)
    if isinstance(auth, V2c):
        return Session(version=2, community=auth.community, **common)
    return Session(version=3, security_level="authPriv", security_username=auth.user,
                   auth_protocol=EZ_NAMES[auth.auth_protocol], auth_passphrase=auth.auth_key,
                   privacy_protocol=EZ_NAMES[auth.priv_protocol], privacy_passphrase=auth.priv_key, **common)


def ezsnmp_run(targets: list[tuple[int, list[str]]], auth, rounds: int, max_oids: int) -> dict:
    """Net-SNMP in this process: one session per agent (made and warmed before timing: engine
    discovery and key localisation), the same GETs of <= *max_oids* OIDs, one after another."""
    sessions = [(ez_session("127.0.0.1", port, auth), oids) for port, oids in targets]
    for session, oids in sessions:
        session.get(oids[:max_oids])
    values = requests = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        for session, oids in sessions:
            for k in range(0, len(oids), max_oids):
                values += len(session.get(oids[k:k + max_oids]))
                requests += 1
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "varbinds": values,
            "requests": requests}


def stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def netsnmp(devices, community: str, rounds: int, max_oids: int):
    """Same OIDs, same PDU sizes, all PDUs concurrently: one snmpget process per PDU request."""
    jobs = []
    for d in devices:
        oids = device_oids(d)
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


# --- Debian's snmpd --------------------------------------------------------------------------------


def start_snmpd(tmp: Path, n: int) -> tuple[subprocess.Popen, list[int]]:
    """One snmpd process listening on *n* loopback ports, v2c and the SNMPD_USERS (authPriv)."""
    ports = free_ports(n)
    users = "".join(f'createUser {u} {a} "{V3_AUTH_KEY}" {x} "{V3_PRIV_KEY}"\nrouser {u} priv\n'
                    for u, _, _, a, x in SNMPD_USERS)
    (tmp / "snmpd.conf").write_text(f"rocommunity {COMMUNITY} 127.0.0.0/8\n{users}")
    (tmp / "persist").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/snmpd", "-f", "-Lf", str(tmp / "snmpd.log"), "-C", "-c", str(tmp / "snmpd.conf"),
                             "-p", str(tmp / "snmpd.pid"), ",".join(f"udp:127.0.0.1:{p}" for p in ports)],
                            env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "persist"), "MIBS": ""},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        r = subprocess.run(["snmpget", "-v2c", "-c", COMMUNITY, "-t", "0.5", "-r", "0", f"127.0.0.1:{ports[-1]}",
                            "1.3.6.1.2.1.1.2.0"], capture_output=True)
        if r.returncode == 0:
            return proc, ports
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"snmpd did not start: {(tmp / 'snmpd.log').read_text()[-500:]}")


def snmpd_oids(port: int, count: int) -> list[str]:
    out = subprocess.run(["snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-On", "-Oq", f"127.0.0.1:{port}", "1.3.6.1.2.1"],
                         capture_output=True, text=True, env={**os.environ, "MIBS": ""}).stdout
    return [line.split(" ", 1)[0].lstrip(".") for line in out.splitlines() if line.startswith(".")][:count]


async def ours_get(targets: list[tuple[int, list[str]]], auth, rounds: int, max_oids: int) -> dict:
    """SnmpPoller.get of every agent's OIDs, all agents concurrently, as the collector does."""
    from collectors.snmp.engine import Endpoint, SnmpPoller

    poller = SnmpPoller()
    eps = [(Endpoint("127.0.0.1", port, auth, timeout_s=2.0, retries=1, max_oids=max_oids), oids)
           for port, oids in targets]
    try:
        await asyncio.gather(*(poller.get(ep, oids) for ep, oids in eps))  # discovery, keys: not timed
        values, requests0 = 0, poller.requests
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            for got in await asyncio.gather(*(poller.get(ep, oids) for ep, oids in eps)):
                values += len(got)
        return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "varbinds": values,
                "requests": poller.requests - requests0}
    finally:
        poller.close()


def snmpd_part(n: int, rounds: int, max_oids: int, tmp: Path) -> dict:
    from collectors.snmp.engine import V3, V2c

    proc, ports = start_snmpd(tmp, n)
    try:
        oids = snmpd_oids(ports[0], 100)
        targets = [(p, oids) for p in ports]
        out = {"snmpd_oids_per_agent": len(oids)}
        auths = [("v2c", V2c(COMMUNITY))] + [(f"v3 {a}/{x}", V3(u, V3_AUTH_KEY, V3_PRIV_KEY, a, x))
                                            for u, a, x, _, _ in SNMPD_USERS]
        for label, auth in auths:
            mine = asyncio.run(ours_get(targets, auth, rounds, max_oids))
            theirs = ezsnmp_run(targets, auth, rounds, max_oids)
            out[label] = {"ours_oids_per_cpu_s": round(mine["varbinds"] / mine["cpu_s"]),
                          "ezsnmp_oids_per_cpu_s": round(theirs["varbinds"] / theirs["cpu_s"]),
                          "ratio_per_core": round((mine["varbinds"] / mine["cpu_s"]) / (theirs["varbinds"] / theirs["cpu_s"]), 2)}
        return out
    finally:
        stop(proc)


def twin_part(kind: str, args, tmp: Path, v3: bool) -> dict:
    """Our collector on the PDUs vs ezsnmp (and, for v2c, forked snmpget) on the same OIDs."""
    from collectors.snmp.engine import V3, V2c

    proc, ports, community = start_agents(kind, args.pdus, tmp, v3=v3)
    auth = V3(V3_USER, V3_AUTH_KEY, V3_PRIV_KEY, V3_AUTH, V3_PRIV) if v3 else V2c(community)
    try:
        devices = build_devices(ports, auth, args.max_oids)
        mine = asyncio.run(ours(devices, args.rounds))
        targets = [(d.endpoint.port, device_oids(d)) for d in devices]
        ez = ezsnmp_run(targets, auth, args.rounds, args.max_oids)
        forked = None if v3 else netsnmp(devices, community, args.rounds, args.max_oids)
    finally:
        stop(proc)
    n_oids = mine["oids_per_round"] * args.rounds
    ours_cpu, ez_cpu = n_oids / mine["cpu_s"], ez["varbinds"] / ez["cpu_s"]
    per_pdu_cpu = mine["cpu_s"] / (args.pdus * args.rounds)
    out = {"oids_per_round": mine["oids_per_round"], "ours_oids_per_s_wall": round(n_oids / mine["wall_s"]),
           "ours_oids_per_cpu_s": round(ours_cpu), "ezsnmp_oids_per_cpu_s": round(ez_cpu),
           "ratio_per_core": round(ours_cpu / ez_cpu, 2), "ours_requests": mine["requests"],
           "ezsnmp_requests": ez["requests"], "ms_cpu_per_pdu_poll": round(per_pdu_cpu * 1e3, 3),
           "pdus_per_process_at_10s_cpu_bound": int(10.0 / per_pdu_cpu),
           "pdus_per_process_at_10s_vs_these_agents": int(10.0 * args.pdus * args.rounds / mine["wall_s"])}
    if forked is not None:
        out["snmpget_oids_per_cpu_s"] = round(forked["varbinds"] / forked["cpu_s"])
        out["ratio_per_core_vs_snmpget"] = round(ours_cpu / out["snmpget_oids_per_cpu_s"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--pdus", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-oids", type=int, default=50)
    ap.add_argument("--agent", choices=["twin", "snmpsim"], default=None)
    ap.add_argument("--skip-snmpd", action="store_true", help="leave out part 3 (Debian snmpd)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--serve-twin", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_twin:
        ports, v3 = json.loads(args.serve_twin)
        serve_twin(ports, v3)
        return 0
    kind = args.agent
    if kind is None:
        try:
            import simulator.snmp_agents  # noqa: F401
            kind = "twin"
        except ImportError:
            kind = "snmpsim"
    import tempfile

    figures = {"agent": kind, "pdus": args.pdus, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        figures["v2c"] = twin_part(kind, args, Path(tmp) / "v2c", v3=False)
        if kind == "twin":  # snmpsim's recording is served to v3 under its own user only
            figures["v3"] = twin_part(kind, args, Path(tmp) / "v3", v3=True)
        if not args.skip_snmpd:
            figures["snmpd"] = snmpd_part(min(args.pdus, 8), args.rounds * 4, args.max_oids, Path(tmp))
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"client CPU per OID, <= {args.max_oids} OIDs per GET, {args.rounds} rounds; ratio = ours / "
          f"Net-SNMP in process (ezsnmp), target >= 1.0 per core")
    for label in ("v2c", "v3"):
        f = figures.get(label)
        if f is None:
            continue
        what = "v2c" if label == "v2c" else f"v3 authPriv {V3_AUTH}/{V3_PRIV}"
        print(f"  {kind} {args.pdus} PDUs, {what}, {f['oids_per_round']} OIDs/round: ours {f['ours_oids_per_cpu_s']} "
              f"OIDs/CPU-s ({f['ours_requests']} PDUs), ezsnmp {f['ezsnmp_oids_per_cpu_s']}: ratio {f['ratio_per_core']}"
              + (f"; forked snmpget {f['snmpget_oids_per_cpu_s']}: ratio {f['ratio_per_core_vs_snmpget']}"
                 if "snmpget_oids_per_cpu_s" in f else ""))
        print(f"    one collector process at a 10 s interval: ~{f['pdus_per_process_at_10s_cpu_bound']} {label} PDUs "
              f"per core ({f['ms_cpu_per_pdu_poll']} ms CPU per PDU poll); "
              f"~{f['pdus_per_process_at_10s_vs_these_agents']} against these agents (they share the cores)")
    for label, f in figures.get("snmpd", {}).items():
        if isinstance(f, dict):
            print(f"  snmpd {label:18} ours {f['ours_oids_per_cpu_s']:8} OIDs/CPU-s, ezsnmp "
                  f"{f['ezsnmp_oids_per_cpu_s']:7}: ratio {f['ratio_per_core']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
