"""A small facility and known points for the dashboard tests; expected figures are computed here,
from the same numbers that are written, never read back from the dashboard code."""

from __future__ import annotations

import time

from dcim.config import parse_config
from dcim.metrics import Point

NS = 1_000_000_000
SITE = "test-site"
RACKS = {  # rack: (room, row, ashrae class, budget kW)
    "R01": ("hall-1", "A", "A1", 30.0), "R02": ("hall-1", "A", "A1", 30.0),
    "R03": ("hall-1", "B", "A2", 30.0), "R04": ("hall-1", "B", "A3", 30.0),
    "R05": ("hall-2", "C", "A1", 40.0), "R06": ("hall-2", "C", "H1", 40.0),
}
# The current facility reading the overview must show.
NOW_TOTAL_W = 612_345.0
NOW_IT_W = 501_234.0
NOW_COOLING_W = 88_765.0


def make_config(refresh_s: float = 2.0, kiosk_rotate_s: float = 5.0, lang: str = "en", **dashboard):
    return parse_config(config_data(refresh_s, kiosk_rotate_s, lang, **dashboard), "test")


def config_data(refresh_s: float = 2.0, kiosk_rotate_s: float = 5.0, lang: str = "en", **dashboard) -> dict:
    """The test site's config as the TOML file would hold it."""
    rooms: dict[str, dict[str, list]] = {}
    for rack, (room, row, cls, budget) in RACKS.items():
        rooms.setdefault(room, {}).setdefault(row, []).append(
            {"name": rack, "ashrae_class": cls, "power_budget_kw": budget,
             "server_group": {"count": 2, "gpus": 4}})
    data = {
        "site": {"name": SITE, "timezone": "Asia/Seoul"},
        "rooms": [{"name": room, "rows": [{"name": row, "racks": racks} for row, racks in rows.items()]}
                  for room, rows in rooms.items()],
        "pdus": [{"name": f"pdu-{r}-{f.lower()}", "rack": r, "feed": f, "phases": 3, "breaker_a": 32.0,
                  "voltage_v": 230.0} for r in RACKS for f in ("A", "B")],
        "cooling": [{"name": "crah-1", "room": "hall-1", "kind": "crah", "capacity_kw": 200.0},
                    {"name": "crah-2", "room": "hall-2", "kind": "crah", "capacity_kw": 200.0}],
        "ups": [{"name": "ups-1", "capacity_kw": 500.0, "rooms": ["hall-1"]},
                {"name": "ups-2", "capacity_kw": 500.0, "rooms": ["hall-2"]}],
        "collectors": {"snmp_interval_s": 60.0, "gpu_interval_s": 30.0},
        "dashboard": {"refresh_s": refresh_s, "kiosk_rotate_s": kiosk_rotate_s, "lang": lang, **dashboard},
    }
    return data


def hour_powers(hour_index: int) -> tuple[float, float]:
    """(total W, IT W) held constant through one UTC hour, varying from hour to hour."""
    it = 400_000.0 + 5_000.0 * (hour_index % 13)
    total = it * (1.20 + 0.01 * (hour_index % 7))
    return total, it


def expected_pue(now_ns: int, seconds: float) -> float:
    """Σ facility energy / Σ IT energy over [now - seconds, now) for the written history: powers
    are piecewise constant per hour, the current hour at the NOW_* values."""
    start = now_ns - int(seconds * NS)
    fac = it = 0.0
    h = start // (3600 * NS)
    while h * 3600 * NS < now_ns:
        a, b = max(start, h * 3600 * NS), min(now_ns, (h + 1) * 3600 * NS)
        tot, itw = powers_at_hour(h, now_ns)
        fac += tot * (b - a)
        it += itw * (b - a)
        h += 1
    return fac / it


def powers_at_hour(h: int, now_ns: int) -> tuple[float, float]:
    if h == now_ns // (3600 * NS):
        return NOW_TOTAL_W, NOW_IT_W
    return hour_powers(h)


def facility_history(now_ns: int, days: float = 31) -> list[Point]:
    """One facility point every 10 minutes, aligned to the hour, back *days* days."""
    pts = []
    step = 600 * NS
    t = (now_ns - int(days * 86400 * NS)) // step * step
    while t < now_ns - 5 * NS:
        tot, itw = powers_at_hour(t // (3600 * NS), now_ns)
        pts.append(Point("facility", {"site": SITE}, {"total_power_w": tot, "it_power_w": itw,
                                                      "cooling_power_w": NOW_COOLING_W, "pue": tot / itw}, t))
        t += step
    pts.append(Point("facility", {"site": SITE}, {
        "total_power_w": NOW_TOTAL_W, "it_power_w": NOW_IT_W, "cooling_power_w": NOW_COOLING_W,
        "pue": NOW_TOTAL_W / NOW_IT_W, "outdoor_temp_c": 12.5}, now_ns - 2 * NS))
    return pts


def current_points(now_ns: int, inlet: dict[str, float] | None = None, silent: tuple[str, ...] = ()) -> list[Point]:
    """Fresh readings of every device: normal, except what *inlet* overrides; the rack sensors of
    the racks in *silent* last answered ten minutes ago."""
    inlet = inlet or {}
    pts = []
    for i, (rack, (room, _row, _cls, _budget)) in enumerate(RACKS.items()):
        tags = {"site": SITE, "room": room, "rack": rack}
        env_ns = now_ns - 600 * NS if rack in silent else now_ns
        pts.append(Point("env", {**tags, "sensor": f"{rack}-in", "position": "inlet"},
                         {"temp_c": inlet.get(rack, 22.0 + 0.5 * i)}, env_ns))
        pts.append(Point("env", {**tags, "sensor": f"{rack}-out", "position": "outlet"},
                         {"temp_c": 35.0 + 0.5 * i}, env_ns))
        for feed in ("A", "B"):
            pdu = f"pdu-{rack}-{feed.lower()}"
            ptags = {**tags, "pdu": pdu, "feed": feed}
            amps = 8.0 + i
            pts.append(Point("pdu", ptags, {"power_w": 3 * amps * 230.0 * 0.95, "current_a": amps,
                                            "breaker_a": 32.0}, now_ns))
            for ph in ("L1", "L2", "L3"):
                pts.append(Point("pdu_phase", {**ptags, "phase": ph},
                                 {"current_a": amps, "power_w": amps * 230.0 * 0.95}, now_ns))
        for n in (1, 2):
            host = f"{rack}-n{n:02d}"
            for g in range(4):
                uuid = f"GPU-{rack}-{n}-{g}"
                capped = (g == 0)
                pts.append(Point("gpu", {**tags, "host": host, "gpu": str(g), "uuid": uuid,
                                         "model": "NVIDIA H100 80GB HBM3"},
                                 {"power_w": 450.0 + g, "power_limit_w": 500.0 if capped else 700.0,
                                  "power_limit_default_w": 700.0, "temp_c": 55.0 + g, "util_pct": 80.0,
                                  "throttle_reasons": 4 if capped else 0}, now_ns))
                if capped:
                    pts.append(Point("optimizer", {"site": SITE, "host": host, "uuid": uuid, "action": "cap"},
                                     {"power_limit_w": 500.0, "previous_w": 700.0, "mode": "enforce",
                                      "reason": "energy", "predicted_pue": 1.21, "est_saving_w": 150.0,
                                      "lease_s": 300.0}, now_ns - 30 * NS))
    for u in ("ups-1", "ups-2"):
        pts.append(Point("ups", {"site": SITE, "ups": u}, {"output_power_w": 250_000.0, "load_pct": 50.0,
                                                           "on_battery": False}, now_ns))
    for unit, room in (("crah-1", "hall-1"), ("crah-2", "hall-2")):
        pts.append(Point("cooling", {"site": SITE, "room": room, "unit": unit, "kind": "crah"},
                         {"supply_temp_c": 19.0, "return_temp_c": 31.0, "cooling_kw": 150.0, "power_w": 40_000.0,
                          "fan_pct": 60.0}, now_ns))
    pts.append(Point("collector", {"collector": "snmp", "target": "pdu-R01-a"}, {"ok": True, "duration_s": 0.1},
                     now_ns))
    return pts


def open_test_store(path):
    """SqliteStore when it is there, else the in-memory store of these tests."""
    try:
        from dcim.store.sqlite import SqliteStore

        return SqliteStore(path)
    except ImportError:
        from tests.dashboards.memstore import MemoryStore

        return MemoryStore()


def populate(store, now_ns: int | None = None, silent: tuple[str, ...] = ()) -> int:
    now_ns = now_ns or time.time_ns()
    store.write(facility_history(now_ns))
    store.write(current_points(now_ns, silent=silent))
    store.flush()
    return now_ns


def engine_alarms(config, store):
    """The dashboard's alarm backend on the real alarm engine's functions (as `dcim dashboard`
    wires it), writing acknowledgements to the same store."""
    from dcim.cli.cmd_dashboard import EngineAlarms

    return EngineAlarms(config, store, open_writer=lambda: store)


def run_engine(config, store, now_ns: int | None = None, settle_s: float = 120.0) -> None:
    """Run the real alarm engine over the store: one cycle now, one after every rule's delay (for_s)
    has passed, so every condition in the store is raised (or cleared)."""
    from alerts.engine import AlarmEngine

    now_ns = time.time_ns() if now_ns is None else now_ns
    engine = AlarmEngine(config, store)
    for t_ns in (now_ns, now_ns + int(settle_s * NS)):
        report = engine.run_once(t_ns)
        assert not report.error, report.error
    if hasattr(store, "flush"):
        store.flush()
