"""Benchmark: OIDs/s served by the twin's SNMP agents vs Debian's snmpd, and how many devices one
agent process can serve at a 10 s poll interval.

    .venv/bin/python bench/snmp_agents.py [--seconds 5] [--window 8]

Both agents run as separate processes on loopback; their CPU time is read from /proc, so the
headline ratio (agent CPU per OID served) does not depend on how fast the client is.

* Twin: ``dcim simulate`` on the demo config (43 devices, stepping at speed 1, so tables are
  rebuilt as the snapshot changes), moved to 127.81.x.x and a free port.
* snmpd: Debian's Net-SNMP 5.9 agent with a minimal generated config (v2c community + v3 user,
  its default MIB modules: system, interfaces, IP, TCP/UDP, host resources... several hundred
  OIDs on this machine), on 127.81.250.1.
* Request mix, identical in shape for both (the OIDs are each agent's own): the client first
  walks each agent (its first 200 OIDs; for the twin, of every device), then sends in rotation
  (a) GETBULK non-repeaters 0, max-repetitions 25, starting at a rotating discovered OID, and
  (b) GET of 20 consecutive discovered OIDs. v2c, from prebuilt packets over one UDP socket
  with a fixed window of outstanding requests (client CPU stays small). Then a short v3
  authPriv (SHA/AES) run with Net-SNMP's snmpbulkget (25 repetitions) for the v3 cost.
* Instrumentation alone (no network): GETNEXT through the agents' sorted per-device table vs a
  pysnmp MibScalarInstance tree holding the same OIDs (the Raritan PDU, the largest device).
* Capacity at 10 s polling: a collector poll of a device reads its measurement objects, about
  the size of its served table (mean over the demo devices, counted); devices per process =
  v2c OIDs per agent-CPU-second × 10 s / OIDs per poll (at 100 % of one core: halve for headroom).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COMMUNITY = "bench-community"
AUTH_KEY, PRIV_KEY = "bench-auth-key-01", "bench-priv-key-02"
SNMPD_ADDR = "127.81.250.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


# --- agents under test -------------------------------------------------------------------------


def start_twin(tmp: Path) -> tuple[subprocess.Popen, list[tuple[str, str]], int]:
    port = free_port("127.81.0.1")
    # PDUs and meters on v2c (the main mix), cooling units and UPSes keep v3 authPriv (the v3 run)
    text = (REPO / "deploy" / "demo.toml").read_text()
    v2c_creds = re.search(r'^\[snmp\.credentials\.([\w-]+)\]\s*\nversion\s*=\s*"2c"', text, re.M)
    name = v2c_creds.group(1) if v2c_creds else "meters"
    text = re.sub(r'^(snmp = \{ )(address = "127\.42\.[14]\.[^}]*?)( \})$',
                  lambda m: m.group(0) if "credentials" in m.group(2)
                  else f'{m.group(1)}credentials = "{name}", {m.group(2)}{m.group(3)}', text, flags=re.M)
    text = text.replace("127.42.", "127.81.").replace("port = 1161", f"port = {port}")
    cfg = tmp / "bench.toml"
    cfg.write_text(text)
    env = {**os.environ, "DCIM_SNMP_AUTH_KEY": AUTH_KEY, "DCIM_SNMP_PRIV_KEY": PRIV_KEY,
           "DCIM_SNMP_COMMUNITY": COMMUNITY}
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "--log-level", "WARNING", "simulate",
                             "--config", str(cfg), "--speed", "1", "--duration", "900"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    addresses = []
    for line in proc.stdout:
        if "serving, Ctrl-C" in line:
            break
        parts = line.split()
        if len(parts) >= 5 and parts[3].startswith("127.81."):
            addresses.append((parts[3].rsplit(":", 1)[0], parts[4]))  # (address, "v2c" / "v3")
    else:
        raise RuntimeError("dcim simulate did not start")
    return proc, addresses, port


def start_snmpd(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port(SNMPD_ADDR)
    conf = tmp / "snmpd.conf"
    conf.write_text(f"""rocommunity {COMMUNITY} 127.0.0.0/8
createUser benchuser SHA "{AUTH_KEY}" AES "{PRIV_KEY}"
rouser benchuser priv
""")
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "persist"), "MIBS": ""}
    proc = subprocess.Popen(["/usr/sbin/snmpd", "-f", "-Lf", str(tmp / "snmpd.log"), "-C", "-c", str(conf),
                             "-p", str(tmp / "snmpd.pid"), f"udp:{SNMPD_ADDR}:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if walk_oids(SNMPD_ADDR, port, 1):
            return proc, port
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"snmpd did not start: {(tmp / 'snmpd.log').read_text()[-500:]}")


def walk_oids(address: str, port: int, limit: int, v3: bool = False) -> list[str]:
    auth = (["-v3", "-l", "authPriv", "-u", "dcim", "-a", "SHA", "-A", AUTH_KEY, "-x", "AES", "-X", PRIV_KEY]
            if v3 else ["-v2c", "-c", COMMUNITY])
    proc = subprocess.run(["snmpbulkwalk", "-On", "-Oq", *auth, "-t", "1", "-r", "0",
                           "-Cr50", f"{address}:{port}", "1.3.6.1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MIBS": ""})
    oids = [line.split(" ", 1)[0] for line in proc.stdout.splitlines() if line.startswith(".")]
    oids = [o for o, line in zip(oids, proc.stdout.splitlines()) if "No more variables" not in line]
    return oids[:limit]


# --- the load ------------------------------------------------------------------------------------


def message(pdu) -> bytes:
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, COMMUNITY)
    v2c.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def bulk_packet(oid: str, repetitions: int = 25) -> bytes:
    pdu = v2c.GetBulkRequestPDU()
    v2c.apiBulkPDU.set_defaults(pdu)
    v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
    v2c.apiBulkPDU.set_max_repetitions(pdu, repetitions)
    v2c.apiBulkPDU.set_varbinds(pdu, [(oid.strip("."), v2c.Null())])
    return message(pdu)


def get_packet(oids: list[str]) -> bytes:
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(pdu, [(o.strip("."), v2c.Null()) for o in oids])
    return message(pdu)


def varbind_count(data: bytes) -> int:
    msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(msg)
    if v2c.apiPDU.get_error_status(pdu):
        return 0
    return sum(1 for _, val in v2c.apiPDU.get_varbinds(pdu) if val.tagSet != v2c.EndOfMibView.tagSet)


def build_requests(targets: list[tuple[str, int]], oids_of: dict) -> list[tuple[tuple[str, int], bytes, int]]:
    """(target, packet, varbinds expected per answer), verified once against the agent."""
    reqs = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for tgt in targets:
            oids = oids_of[tgt]
            for k in range(0, max(1, len(oids) - 20), 20):
                for packet in (bulk_packet(oids[k]), get_packet(oids[k:k + 20])):
                    s.sendto(packet, tgt)
                    n = varbind_count(s.recvfrom(65535)[0])
                    if n:
                        reqs.append((tgt, packet, n))
    return reqs


def drive(reqs, seconds: float, window: int, pid: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    pending: list[int] = []  # indices of requests in flight, oldest first
    answered = oids = sent = 0
    nxt = 0
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        while len(pending) < window:
            tgt, packet, _ = reqs[nxt % len(reqs)]
            sock.sendto(packet, tgt)
            pending.append(nxt % len(reqs))
            nxt += 1
            sent += 1
        ready, _, _ = select.select([sock], [], [], 0.5)
        if not ready:
            pending.clear()  # lost: re-prime the window
            continue
        while True:
            try:
                sock.recvfrom(65535)
            except BlockingIOError:
                break
            if pending:
                # UDP on loopback answers in order per agent; the count per request is fixed
                oids += reqs[pending.pop(0)][2]
                answered += 1
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    sock.close()
    return {"requests": answered, "oids": oids, "wall_s": wall, "agent_cpu_s": cpu,
            "oids_per_s": oids / wall, "oids_per_cpu_s": oids / cpu if cpu else float("inf"),
            "us_cpu_per_oid": 1e6 * cpu / oids if oids else float("nan")}


def v3_run(targets: list[tuple[str, int]], oids_of, count: int, pid: int) -> dict:
    cpu0, t0, oids = cpu_seconds(pid), time.perf_counter(), 0
    for i in range(count):
        tgt = targets[i % len(targets)]
        start = oids_of[tgt][(i * 7) % max(1, len(oids_of[tgt]) - 1)]
        proc = subprocess.run(["snmpbulkget", "-On", "-Oq", "-v3", "-l", "authPriv", "-u",
                               "dcim" if tgt[0] != SNMPD_ADDR else "benchuser", "-a", "SHA", "-A", AUTH_KEY,
                               "-x", "AES", "-X", PRIV_KEY, "-Cr25", "-t", "2", "-r", "0",
                               f"{tgt[0]}:{tgt[1]}", start], capture_output=True, text=True,
                              env={**os.environ, "MIBS": ""})
        oids += sum(1 for line in proc.stdout.splitlines() if line.startswith(".") and "No more" not in line)
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
    return {"requests": count, "oids": oids, "wall_s": wall, "agent_cpu_s": cpu,
            "us_cpu_per_oid": 1e6 * cpu / oids if oids else float("nan")}


def instrumentation_micro(reps: int = 5) -> dict:
    """µs per GETNEXT: the agents' sorted table vs one MibScalarInstance per OID (static values)."""
    from pysnmp.proto import rfc1902
    from pysnmp.smi import builder, instrum

    import simulator.snmp_agents as agents_module
    from dcim.config import load_config
    from simulator.service import make_twin
    from simulator.snmp_agents import AgentSet, _Router

    cfg = load_config(REPO / "deploy" / "demo.toml")
    twin = make_twin(cfg, seed=1)
    twin.step(60)
    agents = AgentSet(cfg, lambda: twin.snapshot)
    agent = next(a for a in agents.agents.values() if a.profile.name == "raritan_pdu2")
    t0 = time.perf_counter()
    oids, values = agent.table(twin.snapshot)
    table_build = time.perf_counter() - t0
    as_pyasn1 = getattr(agents_module, "_pyasn1", None)  # table values are BER bytes since the v2c fast path
    values = {o: rfc1902.TimeTicks(0) if type(v).__name__ == "_Uptime" else as_pyasn1(v) if as_pyasn1 else v
              for o, v in values.items()}

    t0 = time.perf_counter()
    mib = builder.MibBuilder()
    scalar_cls, instance_cls = mib.import_symbols("SNMPv2-SMI", "MibScalar", "MibScalarInstance")
    objects = {}
    for oid in oids:
        if oid[:-1] not in objects:
            objects[oid[:-1]] = scalar_cls(oid[:-1], values[oid].clone())
        objects[oid] = instance_cls(oid[:-1], oid[-1:], values[oid])
    mib.export_symbols("__BENCH-MIB", **{f"o{i}": obj for i, obj in enumerate(objects.values())})
    tree = instrum.MibInstrumController(mib)
    tree_build = time.perf_counter() - t0

    def walk(read_next) -> int:
        name, n = rfc1902.ObjectName((1, 3, 6, 1)), 0
        while True:
            ((found, value),) = read_next((name, v2c.Null()))
            if found is None or value is None or isinstance(value, v2c.EndOfMibView):
                return n
            name, n = found, n + 1

    agents._current = agent
    out = {"oids": len(oids), "table_build_ms": table_build * 1e3, "tree_build_ms": tree_build * 1e3}
    for label, fn in (("table", _Router(agents).read_next_variables), ("tree", tree.read_next_variables)):
        walk(fn)
        t0 = time.perf_counter()
        n = sum(walk(fn) for _ in range(reps))
        out[f"{label}_us"] = (time.perf_counter() - t0) / n * 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="v2c load per agent (default 5)")
    ap.add_argument("--window", type=int, default=8, help="requests in flight (default 8)")
    ap.add_argument("--v3-requests", type=int, default=60, help="snmpbulkget v3 calls per agent (default 60)")
    args = ap.parse_args()
    for tool in ("snmpd", "snmpbulkwalk", "snmpbulkget"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            print(f"bench: {tool} not installed", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="dcim-bench-snmp-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "persist").mkdir()
        procs: list[subprocess.Popen] = []
        try:
            twin, twin_addrs, twin_port = start_twin(tmp)
            procs.append(twin)
            snmpd, snmpd_port = start_snmpd(tmp)
            procs.append(snmpd)
            twin_targets = [(a, twin_port) for a, version in twin_addrs if version == "v2c"]
            twin_v3 = [(a, twin_port) for a, version in twin_addrs if version == "v3"]
            twin_oids = {t: walk_oids(*t, 200) for t in twin_targets}
            twin_oids.update({t: walk_oids(*t, 200, v3=True) for t in twin_v3})
            served = [len(walk_oids(*t, 10 ** 6)) for t in twin_targets]
            snmpd_target = (SNMPD_ADDR, snmpd_port)
            snmpd_oids = {snmpd_target: walk_oids(*snmpd_target, 200)}
            snmpd_served = len(walk_oids(*snmpd_target, 10 ** 6))
            results = {}
            for label, pid, targets, v3_targets, oids_of in (
                    ("twin", twin.pid, twin_targets, twin_v3, twin_oids),
                    ("snmpd", snmpd.pid, [snmpd_target], [snmpd_target], snmpd_oids)):
                reqs = build_requests(targets, oids_of)
                results[label] = drive(reqs, args.seconds, args.window, pid)
                results[label]["v3"] = v3_run(v3_targets, oids_of, args.v3_requests, pid)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    t, s = results["twin"], results["snmpd"]
    per_poll = statistics.mean(served)
    print(f"agents: twin {len(twin_targets)} v2c + {len(twin_v3)} v3 devices "
          f"({min(served)}-{max(served)} OIDs each, mean {per_poll:.0f}); "
          f"snmpd {snmpd_served} OIDs")
    print(f"mix: v2c GETBULK x25 + GET x20 alternating, window {args.window}, {args.seconds:g} s per agent; "
          f"v3 authPriv snmpbulkget x25, {args.v3_requests} calls")
    print(f"{'agent':8} {'v2c OIDs/s':>11} {'cpu µs/OID':>11} {'OIDs/cpu-s':>11} {'v3 cpu µs/OID':>14}")
    for label, r in results.items():
        print(f"{label:8} {r['oids_per_s']:11.0f} {r['us_cpu_per_oid']:11.1f} {r['oids_per_cpu_s']:11.0f} "
              f"{r['v3']['us_cpu_per_oid']:14.1f}")
    print(f"ratio twin/snmpd: wall OIDs/s {t['oids_per_s'] / s['oids_per_s']:.3f}, "
          f"agent CPU per OID {t['us_cpu_per_oid'] / s['us_cpu_per_oid']:.1f}x, "
          f"v3 CPU per OID {t['v3']['us_cpu_per_oid'] / s['v3']['us_cpu_per_oid']:.1f}x")
    m = instrumentation_micro()
    print(f"instrumentation, {m['oids']} OIDs (Raritan PDU): sorted table {m['table_us']:.1f} µs/GETNEXT "
          f"(rebuild {m['table_build_ms']:.0f} ms) vs MibScalarInstance tree {m['tree_us']:.0f} µs/GETNEXT "
          f"(build {m['tree_build_ms']:.0f} ms)")
    devices = t["oids_per_cpu_s"] * 10 / per_poll
    print(f"capacity at a 10 s poll: ~{devices:.0f} devices per twin process at 100 % of one core "
          f"({per_poll:.0f} OIDs per poll, v2c), ~{devices / 2:.0f} with 50 % headroom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
