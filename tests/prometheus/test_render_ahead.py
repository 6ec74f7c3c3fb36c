"""/metrics rendered ahead (dcim/exposition_ahead.py): a scrape gets the last rendering while it is
fresh, renders in place when there is none or it is stale, the thread renders only while scraped,
a failed rendering keeps the last one served; and through the WSGI app the body is the store's
series plus the rendering's age and CPU."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from dcim.exposition import StoreCollector, metrics_app
from dcim.exposition_ahead import RenderAhead
from dcim.metrics import Point
from dcim.web import WsgiServer
from tests.prometheus.conftest import wait_for


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Counter:
    def __init__(self):
        self.calls = 0
        self.fail = False

    def __call__(self) -> bytes:
        self.calls += 1
        if self.fail:
            raise RuntimeError("store exploded")
        return f"body {self.calls}\n".encode()


def test_fresh_rendering_is_served_and_a_stale_one_rendered_in_place():
    clock, render = Clock(), Counter()
    ahead = RenderAhead(render, every_s=10, clock=clock)   # thread not started: scrapes only
    assert ahead.get().body == b"body 1\n"                  # none yet: rendered in place
    clock.t += 19.9
    assert ahead.get().body == b"body 1\n" and render.calls == 1   # within 2 x every_s
    assert ahead.age_s(ahead.get()) == pytest.approx(19.9)
    clock.t += 0.2
    assert ahead.get().body == b"body 2\n"                  # stale: rendered again
    assert ahead.age_s(ahead.get()) == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="every_s"):
        RenderAhead(Counter(), every_s=0)
    with pytest.raises(ValueError, match="idle_after_s"):
        RenderAhead(Counter(), every_s=10, idle_after_s=5)


def test_thread_renders_while_scraped_and_rests_when_not():
    render = Counter()
    ahead = RenderAhead(render, every_s=0.05, idle_after_s=1.0).start()
    try:
        ahead.get()
        assert wait_for(lambda: render.calls >= 3, timeout_s=10)     # scraped once: renders ahead
        time.sleep(1.5)                                              # past idle_after_s
        resting = render.calls
        time.sleep(0.5)
        assert render.calls == resting                               # nobody scrapes: no work
        ahead.get()
        assert wait_for(lambda: render.calls >= resting + 2, timeout_s=10)
    finally:
        ahead.stop()


def test_a_failed_rendering_keeps_the_last_one(caplog):
    """...while it is fresh: a stale one is rendered in place at the scrape, whose error then
    reaches the scrape (an HTTP 500: Prometheus' up 0), never old values served for ever."""
    render = Counter()
    ahead = RenderAhead(render, every_s=2.0, idle_after_s=60).start()
    try:
        first = ahead.get()
        render.fail = True
        assert wait_for(lambda: "rendering /metrics failed" in caplog.text, timeout_s=10)
        assert ahead.get().body == first.body      # still within 2 x every_s of it
    finally:
        ahead.stop()


def test_one_rendering_for_concurrent_first_scrapes():
    gate = threading.Event()
    calls = []

    def slow() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"x\n"

    ahead = RenderAhead(slow, every_s=60)
    got = []
    threads = [threading.Thread(target=lambda: got.append(ahead.get().body)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert got == [b"x\n"] * 4 and len(calls) == 1


def test_app_serves_the_rendering_with_its_age_and_cpu(store):
    store.write([Point("facility", {"site": "s1"}, {"pue": 1.31})])
    collector = StoreCollector(store)
    ahead = RenderAhead(collector.render, every_s=0.2).start()
    server = WsgiServer(metrics_app(collector, None, ahead), "127.0.0.1", 0, name="test-ahead").start()
    try:
        def scrape() -> str:
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
                return resp.read().decode()

        body = scrape()
        assert 'dcim_facility_pue{site="s1"} 1.31\n' in body
        assert "# TYPE dcim_exporter_render_age_seconds gauge" in body
        assert "dcim_exporter_render_cpu_seconds " in body
        store.write([Point("facility", {"site": "s1"}, {"pue": 1.42})])
        # a new reading reaches a later scrape through the thread's next rendering
        assert wait_for(lambda: 'dcim_facility_pue{site="s1"} 1.42\n' in scrape(), timeout_s=10)
    finally:
        server.stop()
        ahead.stop()
