"""The engine, on its schedule, against Debian's real prometheus-alertmanager on loopback routing
to a webhook receiver: an alarm reaches Alertmanager within two evaluation intervals of the
reading and resolves within two of the recovery; an engine restarted on the same store causes
no second notification. The latencies are printed (-s) for the README, not asserted as timings
beyond the two-interval contract."""

from __future__ import annotations

import time

from alerts.actions import history
from alerts.engine import AlarmEngine
from alerts.notify.alertmanager import AlertmanagerNotifier
from dcim.metrics import Point
from tests.alerts.conftest import wait_for

INTERVAL_S = 1.0


def on_battery(store, value: bool):
    store.write([Point("ups", {"site": "s", "ups": "UPS-1"}, {"on_battery": value, "load_pct": 40.0})])


def start(cfg, store, am):
    notifier = AlertmanagerNotifier([am.url], resend_s=5.0, dashboard_url="http://dash.example:8050")
    return AlarmEngine(cfg, store, alertmanager=notifier).start()


def firing_hooks(receiver):
    return [a for b in receiver.json_bodies() for a in b.get("alerts", []) if a["status"] == "firing"
            and a["labels"].get("alertname") == "ups_on_battery"]


def test_alarm_reaches_alertmanager_and_resolves_within_two_intervals(make_config, store, alertmanager, receiver):
    cfg = make_config(interval_s=INTERVAL_S)
    on_battery(store, False)
    engine = start(cfg, store, alertmanager)
    try:
        time.sleep(1.5 * INTERVAL_S)
        t_reading = time.monotonic()
        on_battery(store, True)
        got = wait_for(lambda: [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "ups_on_battery"],
                       timeout_s=10)
        raise_s = time.monotonic() - t_reading
        assert got, "the alarm never reached Alertmanager"
        alert = got[0]
        assert alert["labels"] == {"alertname": "ups_on_battery", "site": cfg.site.name, "entity": "UPS-1",
                                   "severity": "critical"}
        assert alert["annotations"]["summary"] == "UPS UPS-1 is on battery"
        assert alert["generatorURL"] == "http://dash.example:8050/alarms?alarm=ups_on_battery%3AUPS-1"
        assert wait_for(lambda: firing_hooks(receiver), timeout_s=10), "Alertmanager did not notify its receiver"
        hook_s = time.monotonic() - t_reading

        t_recovery = time.monotonic()
        on_battery(store, False)
        assert wait_for(lambda: not [a for a in alertmanager.alerts()
                                     if a["labels"]["alertname"] == "ups_on_battery"], timeout_s=10)
        resolve_s = time.monotonic() - t_recovery
        resolved = wait_for(lambda: [a for b in receiver.json_bodies() for a in b["alerts"]
                                     if a["status"] == "resolved"], timeout_s=10)
        assert resolved and resolved[0]["labels"]["entity"] == "UPS-1"
    finally:
        engine.stop()
    print(f"\nalertmanager: raised after {raise_s:.2f} s ({raise_s / INTERVAL_S:.2f} intervals), receiver after "
          f"{hook_s:.2f} s, resolved after {resolve_s:.2f} s ({resolve_s / INTERVAL_S:.2f} intervals)")
    assert raise_s <= 2 * INTERVAL_S + 0.5  # two intervals, plus the post's own round trip
    assert resolve_s <= 2 * INTERVAL_S + 0.5


def test_no_duplicate_notification_across_restarts(make_config, store, alertmanager, receiver):
    cfg = make_config(interval_s=INTERVAL_S)
    on_battery(store, True)
    engine = start(cfg, store, alertmanager)
    try:
        assert wait_for(lambda: firing_hooks(receiver), timeout_s=15)
    finally:
        engine.stop()
    for _ in range(2):  # two restarts, each running several cycles (each re-posts the firing alert)
        engine = start(cfg, store, alertmanager)
        try:
            time.sleep(4 * INTERVAL_S)
            on_battery(store, True)
            time.sleep(2 * INTERVAL_S)
        finally:
            engine.stop()
    assert len(firing_hooks(receiver)) == 1, receiver.json_bodies()
    raised = [s for s in history(store, None, 0, time.time_ns() + 10**9) if s.state == "raised"]
    assert len(raised) == 1
