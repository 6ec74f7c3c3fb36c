"""The upkeep thread that keeps InfluxDB's daily rollups, against the real influxd."""

import logging
import socket
import time

from dcim.metrics import Point
from dcim.store.influx import InfluxStore
from dcim.store.influx.layout import read_state, source
from dcim.store.maintainer import Maintainer

S = 1_000_000_000
DAY = 86_400 * S


def test_rolls_the_closed_days_at_start(influx_store):
    day = (time.time_ns() // DAY - 3) * DAY  # three days ago: closed
    tags = {"site": "s1", "room": "h1", "rack": "r1", "pdu": "p1", "feed": "A"}
    influx_store.write([Point("pdu", tags, {"power_w": 1000.0 + h, "energy_kwh": 5.0 + h}, day + h * 3600 * S)
                        for h in range(24)])
    m = Maintainer(influx_store, every_s=3600).start()
    try:
        deadline = time.monotonic() + 30
        while "pdu" not in read_state(influx_store) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        m.stop()
    first, to = read_state(influx_store)["pdu"][:2]
    assert first == day and to >= day + DAY
    rows = influx_store.execute(
        f'SELECT "power_w_hmax", "power_w_hn" FROM {source(influx_store, "pdu_1d")}')[0]["series"][0]["values"]
    assert rows == [[day, 1023.0, 24]]


def test_a_store_that_is_down_is_logged_and_tried_again(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = InfluxStore(f"http://127.0.0.1:{port}", "x", max_retries=0, timeout_s=1)
    caplog.set_level(logging.ERROR, logger="dcim.store.maintainer")
    m = Maintainer(store, every_s=0.1).start()
    try:
        deadline = time.monotonic() + 20
        while sum("store upkeep" in r.message for r in caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert m._thread.is_alive()
    finally:
        m.stop()
        store.close()
    assert sum("store upkeep" in r.message for r in caplog.records) >= 2
