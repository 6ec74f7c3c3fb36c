"""Webhook (HMAC-signed JSON) and e-mail (a real SMTP server: aiosmtpd) notifiers, retries, and a
dead or slow receiver that never stalls the engine's cycle."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import pytest

from alerts.engine import AlarmEngine
from alerts.notify import build_notifiers
from dcim.config.alerts import AlertsSettings
from dcim.metrics import Point
from tests.alerts.conftest import free_port, wait_for

SECRET = "s3cret-value-never-logged"


def on_battery(store, value=True, name="UPS-1"):
    store.write([Point("ups", {"site": "s", "ups": name}, {"on_battery": value})])


def test_webhook_is_signed_and_secret_never_logged(make_config, store, receiver, caplog, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    cfg = make_config(webhooks=[{"url": receiver.url + "/in?token=abc", "secret": {"env": "TEST_HOOK_SECRET"}}])
    caplog.set_level(logging.DEBUG)
    am, notifiers = build_notifiers(cfg.alerts, None)
    engine = AlarmEngine(cfg, store, notifiers=notifiers)
    receiver.status = 503  # first answers fail: retried with backoff
    on_battery(store)
    engine.run_once()
    time.sleep(0.3)
    receiver.status = 200
    got = wait_for(lambda: [r for r in receiver.requests if r["headers"].get("X-Dcim-Event") == "raised"
                            and r is receiver.requests[-1]], timeout_s=15)
    engine.stop()
    assert got and len(receiver.requests) >= 2  # at least one failed try, then the delivery
    req = receiver.requests[-1]
    ts, body = req["headers"]["X-Dcim-Timestamp"], req["body"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert req["headers"]["X-Dcim-Signature"] == expected
    payload = json.loads(body)
    assert (payload["event"], payload["alarm"]["id"], payload["alarm"]["severity"]) == (
        "raised", "ups_on_battery:UPS-1", "critical")
    assert SECRET not in caplog.text and "token=abc" not in caplog.text


def test_email_over_a_real_smtp_server(make_config, store):
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cfg = make_config(email={"host": "127.0.0.1", "port": port, "security": "none", "from_addr": "dcim@site",
                                 "to": ["oncall@site", "boss@site"]})
        _, notifiers = build_notifiers(cfg.alerts, None)
        engine = AlarmEngine(cfg, store, notifiers=notifiers)
        on_battery(store)
        engine.run_once()
        assert wait_for(lambda: received, timeout_s=10)
        on_battery(store, False)
        engine.run_once()
        assert wait_for(lambda: len(received) == 2, timeout_s=10)
        engine.stop()
    finally:
        controller.stop()
    first = received[0].content.decode()
    assert received[0].rcpt_tos == ["oncall@site", "boss@site"]
    assert f"Subject: [CRITICAL] {cfg.site.name}: UPS UPS-1 is on battery" in first
    assert "[RESOLVED]" in received[1].content.decode()


def test_a_dead_or_slow_receiver_never_stalls_the_cycle(make_config, store, receiver):
    receiver.delay_s = 3.0  # every delivery takes 3 s
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    cfg = make_config(queue_size=2, retry_for_s=30, overrides={"ups_on_battery": {"for_s": 0}},
                      webhooks=[{"url": receiver.url + "/slow"}, {"url": dead}])
    _, notifiers = build_notifiers(cfg.alerts, None)
    engine = AlarmEngine(cfg, store, notifiers=notifiers)
    store.write([Point("ups", {"site": "s", "ups": f"U{i}"}, {"on_battery": True}) for i in range(6)])
    started = time.monotonic()
    report = engine.run_once()
    took_s = time.monotonic() - started
    assert len(report.events) == 6
    # Queues of 2: of 6 events each notifier holds at most 2 waiting plus 1 in flight; the rest
    # are dropped and counted, never waited for.
    assert took_s < 2.0, took_s
    slow, gone = notifiers
    assert slow.dropped >= 3 and gone.dropped >= 3
    assert engine.dropped() == slow.dropped + gone.dropped
    engine.stop(timeout_s=0.5)


def test_config_errors_name_the_key(monkeypatch):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="user:password"):
        AlertsSettings.model_validate({"webhooks": [{"url": "http://u:p@host/x"}]})
    with pytest.raises(ValidationError, match="interval_s"):
        AlertsSettings.model_validate({"interval_s": True})
    monkeypatch.delenv("NOPE_SECRET", raising=False)
    from dcim.config import ConfigError

    s = AlertsSettings.model_validate({"webhooks": [{"url": "http://h/x", "secret": {"env": "NOPE_SECRET"}}]})
    with pytest.raises(ConfigError, match=r"alerts.webhooks\[0\].secret: environment variable NOPE_SECRET"):
        build_notifiers(s, None)
