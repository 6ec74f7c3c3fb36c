"""Benchmark: one alarm-engine cycle for a 50,000-GPU, 4,000-PDU site.

Builds the latest readings of such a site in memory (50,000 GPUs on 6,250 hosts, 4,000 PDUs
with 3 phases each, 2,000 racks' inlet probes, 40 UPSes, 200 cooling units, collectors), a
few hundred of them in alarm, with some alarms already active, and measures the CPU time of
rule evaluation plus the cycle's decisions (alerts.evaluate + alerts.transitions), best of
--repeat. Then, separately, the same cycle including the reads from a SQLite store holding the
readings (informational: the store's latest() is the store's cost, not the rules').

    .venv/bin/python bench/alerts.py [--gpus 50000] [--pdus 4000] [--repeat 5] [--no-store]

Target: <= 1 s CPU per cycle for the rules. Prints the ratio to it (< 1 is within).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.evaluate import Context, evaluate  # noqa: E402
from alerts.rules import load_rules  # noqa: E402
from alerts.transitions import Limits, step  # noqa: E402
from dcim.metrics import Point  # noqa: E402

TARGET_S = 1.0
S = 10**9


def site(now_ns: int, gpus: int, pdus: int, seed: int = 1) -> dict[str, list[Point]]:
    rnd = random.Random(seed)
    racks = pdus // 2
    out: dict[str, list[Point]] = {m: [] for m in ("gpu", "pdu_phase", "pdu", "env", "ups", "cooling", "collector")}
    for i in range(gpus):
        host, idx = f"n{i // 8:05d}", i % 8
        rack = f"r{(i // 8) % racks:04d}"
        f = {"power_w": 500.0 + rnd.random() * 200, "temp_c": 60.0 + rnd.random() * 20, "mem_temp_c": 70.0,
             "throttle_reasons": 0x4 if rnd.random() < 0.3 else 0, "ecc_uncorrected": 0, "util_pct": 90.0}
        if i % 500 == 0:
            f["temp_c"] = 91.0
        if i % 997 == 0:
            f["throttle_reasons"] = 0x40
        age_s = 40 if i % 2000 == 0 else rnd.random() * 5  # a few silent GPUs
        out["gpu"].append(Point("gpu", {"site": "s", "room": "h", "rack": rack, "host": host, "gpu": str(idx),
                                        "uuid": f"GPU-{i}", "model": "H100"}, f, now_ns - int(age_s * S)))
    for p in range(pdus):
        rack, feed = f"r{p // 2:04d}", "AB"[p % 2]
        for ph in ("L1", "L2", "L3"):
            amps = 10.0 + rnd.random() * 10 + (10.0 if p % 300 == 0 else 0.0)
            out["pdu_phase"].append(Point("pdu_phase", {"site": "s", "room": "h", "rack": rack, "pdu": f"p{p:04d}",
                                                        "feed": feed, "phase": ph}, {"current_a": amps, "breaker_a": 32.0},
                                          now_ns - 2 * S))
        out["pdu"].append(Point("pdu", {"site": "s", "room": "h", "rack": rack, "pdu": f"p{p:04d}", "feed": feed},
                                {"current_a": 30.0, "breaker_a": 96.0, "power_w": 7000.0}, now_ns - 2 * S))
    for r in range(racks):
        out["env"].append(Point("env", {"site": "s", "room": "h", "rack": f"r{r:04d}", "sensor": "in1",
                                        "position": "inlet"}, {"temp_c": 24.0 + (5.0 if r % 97 == 0 else 0.0)},
                                now_ns - 3 * S))
    for u in range(40):
        out["ups"].append(Point("ups", {"site": "s", "ups": f"u{u}"}, {"on_battery": u == 3, "load_pct": 50.0,
                                                                        "runtime_s": 900.0}, now_ns - 2 * S))
    for c in range(200):
        out["cooling"].append(Point("cooling", {"site": "s", "room": "h", "unit": f"c{c}", "kind": "crah"},
                                    {"supply_temp_c": 20.0}, now_ns - 2 * S))
    for h in range(gpus // 8):
        out["collector"].append(Point("collector", {"collector": "gpu", "target": f"n{h:05d}"},
                                      {"ok": h % 1000 != 7, "error": "" if h % 1000 != 7 else "timeout"},
                                      now_ns - 2 * S))
    return out


def context(now_ns: int, active: dict) -> Context:
    silent = {"gpu": 15 * S, "snmp": 30 * S, "collector": 30 * S, "workload": 30 * S}
    return Context(now_ns=now_ns, derate=0.8, max_age_ns={m: silent["gpu" if m == "gpu" else "snmp"]
                                                          for m in ("gpu", "pdu_phase", "pdu", "env", "ups",
                                                                    "cooling", "collector", "pdu_breaker", "meter")},
                   silent_after_ns=silent, active=active)


def cycle_cpu_s(rules, readings, now_ns: int, states: dict) -> tuple[float, int, int]:
    pending: dict = {}
    t0 = time.process_time()
    findings = evaluate(rules, readings, context(now_ns, {k: s.severity for k, s in states.items()}))
    decided = step("s", findings, states, pending, {r.name: 0 for r in rules}, now_ns, Limits(10**6, 10**6))
    return time.process_time() - t0, sum(1 for f in findings.values() if f.severity), len(decided.writes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=50_000)
    ap.add_argument("--pdus", type=int, default=4_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-store", action="store_true", help="skip the informational cycle through SQLite")
    args = ap.parse_args()
    rules = load_rules()
    now = time.time_ns()
    readings = site(now, args.gpus, args.pdus)
    n_points = sum(len(v) for v in readings.values())
    # Cold: nothing active yet (every alarm is new); warm: the alarms of the cold cycle active.
    cold, firing, writes = min(cycle_cpu_s(rules, readings, now, {}) for _ in range(args.repeat))
    from alerts.state import AlarmState

    findings = evaluate(rules, readings, context(now, {}))
    states = {k: AlarmState("s", f.rule, f.entity, f.severity, "raised", now - S, now - S)
              for k, f in findings.items() if f.severity}
    warm, _, _ = min(cycle_cpu_s(rules, readings, now, states) for _ in range(args.repeat))
    print(f"site: {args.gpus:,} GPUs, {args.pdus:,} PDUs ({n_points:,} latest readings), {len(rules)} rules; "
          f"{firing} devices in alarm, {writes} raises in the first cycle")
    print(f"rules, first cycle (all new):     {cold:6.3f} s CPU  ratio {cold / TARGET_S:.2f} of the {TARGET_S:g} s target")
    print(f"rules, steady cycle ({len(states)} active): {warm:6.3f} s CPU  ratio {warm / TARGET_S:.2f} of the "
          f"{TARGET_S:g} s target")
    if not args.no_store:
        store_cycle(readings, now)
    return 0


def store_cycle(readings: dict, now_ns: int) -> None:
    from alerts.engine import AlarmEngine
    from dcim.config import load_config
    from dcim.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "b.sqlite")
        for points in readings.values():
            store.write(points)
        cfg = load_config()
        engine = AlarmEngine(cfg, store)
        engine.run_once(now_ns)
        t0, c0 = time.monotonic(), time.process_time()
        engine.run_once(now_ns + S)
        print(f"(info) a whole cycle through SQLite, store reads included: {time.process_time() - c0:.3f} s CPU, "
              f"{time.monotonic() - t0:.3f} s wall")
        store.close()


if __name__ == "__main__":
    sys.exit(main())
