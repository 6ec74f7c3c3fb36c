"""Scheduled faults in the twin (simulator/twin_faults.py): specs parsed or refused with a clear
message, daily windows in the site's time zone (across midnight too), one-off windows after the
start, and end to end: a cooling unit failing from 14:00 to 14:20 warms the racks it cools past
ASHRAE's recommended 27 °C, and the real alarm engine on a real store raises the inlet alarm for
those racks only, then clears it after the unit is back."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dcim.config import ConfigError, load_config
from simulator.twin_faults import (
    FAILED_CAPACITY_FRAC,
    FaultError,
    FaultSchedule,
    parse_fault,
)

SEOUL = ZoneInfo("Asia/Seoul")


def seoul_ns(hour: int, minute: int, day: int = 15) -> int:
    return int(datetime(2026, 7, day, hour, minute, tzinfo=SEOUL).timestamp() * 1e9)


def test_specs_parse():
    daily = parse_fault("cooling:irc-A1:14:00-14:20", ["irc-A1"])
    assert (daily.unit, daily.start_s, daily.end_s, daily.daily) == ("irc-A1", 14 * 3600, 14 * 3600 + 1200, True)
    once = parse_fault("cooling:crah-C:+2m-+1.5h")
    assert (once.start_s, once.end_s, once.daily) == (120, 5400, False)


@pytest.mark.parametrize(("spec", "why"), [
    ("cooling:irc-A1", "expected cooling:UNIT"),
    ("power:irc-A1:14:00-14:20", "expected cooling:UNIT"),
    ("cooling:irc-A1:25:00-26:00", "expected cooling:UNIT"),
    ("cooling:irc-A1:14:00-+5m", "must both be clock times or both offsets"),
    ("cooling:irc-A1:+5m-+1m", "empty"),
    ("cooling:irc-A1:14:00-14:00", "empty"),
    ("cooling:chiller-1:14:00-14:20", "no air cooling unit 'chiller-1'"),
    ("cooling:nope:14:00-14:20", "no air cooling unit 'nope'"),
])
def test_bad_specs_are_refused_naming_the_spec(spec, why):
    with pytest.raises(FaultError, match=why) as err:
        parse_fault(spec, ["irc-A1", "crah-C"])
    assert spec in str(err.value)


class FakeTwin:
    """Only what the schedule touches: the air units, the clock, the site's zone."""

    def __init__(self, now_ns: int):
        self.config = load_config()
        self.air_units = [u for u in self.config.cooling if u.kind != "chiller"]
        self.now_ns = now_ns


def test_daily_window_in_site_time_across_midnight():
    twin = FakeTwin(seoul_ns(23, 40))
    schedule = FaultSchedule.from_specs(["cooling:crah-C:23:50-00:10"], twin)
    seen = []
    for hour, minute, day in [(23, 40, 15), (23, 55, 15), (0, 5, 16), (0, 10, 16), (23, 50, 16)]:
        twin.now_ns = seoul_ns(hour, minute, day)
        schedule.apply(twin)
        crah = next(u for u in twin.air_units if u.name == "crah-C")
        seen.append(crah.capacity_kw)
    assert seen == [150.0, 150.0 * FAILED_CAPACITY_FRAC, 150.0 * FAILED_CAPACITY_FRAC, 150.0,
                    150.0 * FAILED_CAPACITY_FRAC]
    # 23:50 KST is 14:50 UTC: the window is the site's, not UTC's
    twin.now_ns = int(datetime(2026, 7, 17, 23, 55, tzinfo=ZoneInfo("UTC")).timestamp() * 1e9)
    schedule.apply(twin)
    assert next(u for u in twin.air_units if u.name == "crah-C").capacity_kw == 150.0


def test_once_window_counts_from_the_start():
    twin = FakeTwin(seoul_ns(9, 0))
    schedule = FaultSchedule.from_specs(["cooling:irc-A2:+2m-+12m"], twin)
    states = []
    for minutes in (1, 2, 11, 12, 24 * 60 + 5):
        twin.now_ns = seoul_ns(9, 0) + minutes * 60 * 10**9
        states.append(bool(schedule.apply(twin)) and "irc-A2" in schedule.failing)
    assert states == [False, True, False, False, False]   # True where it started failing


def test_the_service_refuses_a_malformed_fault_and_skips_a_unit_it_lacks(caplog):
    """A malformed spec is a config error; one naming a unit this twin lacks is logged and left
    out, so a config cut from the demo (fewer cooling units) still runs with the demo's faults."""
    from simulator.facility import FacilityTwin
    from simulator.service import TwinService

    cfg = load_config()
    with pytest.raises(ConfigError, match="simulator.faults.*expected cooling:UNIT"):
        TwinService(cfg, twin=FacilityTwin(cfg, seed=1), speed=0, serve_snmp=False, faults=["cooling:irc-A1"])
    svc = TwinService(cfg, twin=FacilityTwin(cfg, seed=1), speed=0, serve_snmp=False,
                      faults=["cooling:irc-Z9:14:00-14:20", "cooling:irc-A1:14:00-14:20"])
    assert [f.unit for f in svc.faults.faults] == ["irc-A1"]
    assert "no air cooling unit 'irc-Z9'" in caplog.text


def test_dcim_simulate_refuses_an_impossible_fault_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "dcim.cli.main", "simulate", "--fault", "cooling:chiller-1:+1m-+2m",
                             "--duration", "1"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(root)}, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --fault: fault 'cooling:chiller-1:+1m-+2m': no air cooling unit "
                                     "'chiller-1' (CRAH or in-row units: irc-A1, irc-A2, irc-B1, irc-B2, crah-C, "
                                     "crah-D)"), result.stderr


def test_a_failing_unit_raises_and_clears_the_inlet_alarm(tmp_path):
    from alerts.actions import history
    from alerts.engine import AlarmEngine
    from dcim.store.sqlite import SqliteStore
    from simulator.facility import FacilityTwin
    from simulator.service import TwinService

    cfg = load_config()
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": tmp_path / "dcim.sqlite"})})
    twin = FacilityTwin(cfg, seed=42, start_ns=seoul_ns(13, 50))
    svc = TwinService(cfg, twin=twin, speed=0, serve_snmp=False, faults=["cooling:irc-A1:14:00-14:20"])
    store = SqliteStore(tmp_path / "dcim.sqlite")
    engine = AlarmEngine(cfg, store)
    inlet = {}
    try:
        while twin.now_ns < seoul_ns(14, 35):
            svc.advance(30.0)
            store.write(twin.points(include_gpus=False))
            engine.run_once(twin.now_ns)
            t = datetime.fromtimestamp(twin.now_ns / 1e9, SEOUL).strftime("%H:%M:%S")
            inlet[t] = twin.snapshot.rack_inlet_temp_c["A01"]
        events = [(a.entity, a.state, a.time_ns) for a in history(store, cfg.site.name, seoul_ns(13, 0),
                                                                      seoul_ns(15, 0))
                  if a.rule == "inlet_temp"]
    finally:
        store.close()
    assert max(v for t, v in inlet.items() if t < "14:00") < 27.0 < min(v for t, v in inlet.items()
                                                                        if "14:01" <= t < "14:20")
    raised = {e for e, state, _ in events if state == "raised"}
    cleared = {e for e, state, _ in events if state == "cleared"}
    assert raised == {"A01", "A02"}, events     # irc-A1 cools A01 and A02; A03 (irc-A2) stays fine
    assert cleared == {"A01", "A02"}, events
    for _, state, when in events:
        if state == "raised":
            assert seoul_ns(14, 0) < when <= seoul_ns(14, 3)    # after its 60 s delay, within 2 cycles
        else:
            assert seoul_ns(14, 20) <= when <= seoul_ns(14, 22)


def test_the_demo_schedules_its_faults_and_tests_get_none_unless_they_ask():
    from simulator.facility import FacilityTwin
    from simulator.service import TwinService

    cfg = load_config()
    assert cfg.simulator.faults, "the demo shows a cooling failure every day"
    twin = FacilityTwin(cfg, seed=1)
    svc = TwinService(cfg, twin=twin, speed=0, serve_snmp=False, faults=list(cfg.simulator.faults))
    assert {f.unit for f in svc.faults.faults} <= {u.name for u in twin.air_units}
    assert TwinService(cfg, twin=twin, speed=0, serve_snmp=False).faults is None
