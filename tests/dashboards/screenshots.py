"""The README's screenshots, from the current code: the test site (tests/dashboards/sitedata.py)
with a hot rack, an overloaded PDU phase pair, a silent rack sensor and a measured saving, alarms
raised by the real alarm engine, shot in headless Chromium at 1920x1080.

    .venv/bin/python -m tests.dashboards.screenshots docs/
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from dcim.metrics import Point
from tests.dashboards import sitedata as S
from tests.fixtures.browser import make_browser, set_viewport
from tests.fixtures.dashboard_server import start_dashboard_server

NS = 1_000_000_000
SHOTS = {"wall-screen.png": "/?kiosk=1", "wall-screen-ko.png": "/?kiosk=1&lang=ko", "wall-alarms.png": "/alarms",
         "wall-power.png": "/power?kiosk=1", "wall-optimizer.png": "/optimizer", "wall-energy.png": "/energy"}


def site(store) -> None:
    now = S.populate(store, silent=("R06",))
    store.write(S.current_points(now, inlet={"R02": 33.5, "R04": 28.2}, silent=("R06",)))
    store.write([Point("pdu_phase", {"site": S.SITE, "room": "hall-1", "rack": "R03", "pdu": "pdu-R03-a", "feed": "A",
                                     "phase": ph}, {"current_a": amps}, now) for ph, amps in (("L1", 24.0), ("L3", 26.5))])
    store.write([Point("optimizer", {"site": S.SITE, "host": "", "uuid": "", "action": "measured"},
                       {"measured_saving_pct": 7.4, "measured_ci_low_pct": 4.9, "measured_ci_high_pct": 9.8,
                        "treated_jobs": 41, "control_jobs": 11}, now - 60 * NS),
                 Point("optimizer", {"site": S.SITE, "host": "", "uuid": "", "action": "cycle"},
                       {"reason": "24 decisions, 20 renewed", "mode": "enforce", "est_saving_w": 1200.0,
                        "predicted_pue": 1.21}, now - 20 * NS)])
    store.flush()
    S.run_engine(S.make_config(), store, now_ns=now - 100 * NS, settle_s=99.0)


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dcim-shots-"))
    store = S.open_test_store(tmp / "s.sqlite")
    site(store)
    cfg = S.make_config(refresh_s=2.0, kiosk_rotate_s=3600.0)
    server = start_dashboard_server(cfg, store, alarms=S.engine_alarms(cfg, store))
    driver = make_browser(str(tmp / "chromium"))
    try:
        set_viewport(driver, 1920, 1080)
        for name, path in SHOTS.items():
            driver.get(server.url + path)
            time.sleep(5)  # first paint, a refresh and every figure drawn
            if not driver.save_screenshot(str(out / name)):
                raise SystemExit(f"could not write {out / name}")
            print(out / name)
    finally:
        driver.quit()
        server.close()
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "docs"))
