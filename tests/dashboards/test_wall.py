"""The wall in a real browser (headless Chromium): every kiosk page fits 1366x768, 1920x1080 and
3840x2160 without scrolling, with the data-age stamp on screen; text scales with the screen
(the floor map's included); the floor map has its legend, units in its cells and a stale colour
apart from normal; the kiosk pages through a table before moving on."""

from __future__ import annotations

import re
import time

import pytest

from dashboards import components as c
from dashboards.app import KIOSK_PAGES
from tests.dashboards import sitedata as S
from tests.dashboards.test_browser import load, shoot
from tests.fixtures.browser import console_errors, set_viewport

pytestmark = pytest.mark.timeout(180)
SCREENS = {"1366x768": (1366, 768), "1080p": (1920, 1080), "4k": (3840, 2160)}
NS = 1_000_000_000


@pytest.fixture(scope="module")
def wall(tmp_path_factory, dashboard_server_module):
    store = S.open_test_store(tmp_path_factory.mktemp("wall") / "s.sqlite")
    # R06's rack sensors went silent ten minutes ago: stale on the map and the racks page
    S.populate(store, silent=("R06",))
    cfg = S.make_config(refresh_s=2.0, kiosk_rotate_s=6.0)
    server = dashboard_server_module(cfg, store, alarms=S.engine_alarms(cfg, store))
    yield server, store
    server.close()
    store.close()


def page_fits(driver) -> dict:
    return driver.execute_script("""
        const s = document.getElementById('stamp').getBoundingClientRect();
        const root = document.scrollingElement;
        return {scroll: root.scrollHeight, height: window.innerHeight, width: window.innerWidth,
                scrollW: root.scrollWidth, stampTop: s.top, stampBottom: s.bottom,
                stampText: document.getElementById('stamp').innerText};""")


@pytest.mark.parametrize("screen", list(SCREENS))
def test_every_kiosk_page_fits_the_screen_with_the_stamp_on_it(wall, browser_module, screen):
    server, _ = wall
    driver = browser_module
    width, height = SCREENS[screen]
    set_viewport(driver, width, height)
    for path in KIOSK_PAGES:
        load(driver, server.url + path + "?kiosk=1")
        fit = page_fits(driver)
        shoot(driver, f"kiosk_{screen}_{path.strip('/') or 'overview'}")
        assert fit["scroll"] <= fit["height"] + 1, (path, fit)
        assert fit["scrollW"] <= fit["width"] + 1, (path, fit)
        assert 0 < fit["stampTop"] and fit["stampBottom"] <= fit["height"] + 0.5, (path, fit)
        assert fit["stampText"].startswith("Data as of"), fit
    assert console_errors(driver) == []
    set_viewport(driver, 1920, 1080)


def test_text_scales_with_the_screen_map_included(wall, browser_module):
    server, _ = wall
    driver = browser_module
    sizes = {}
    for screen, (w, h) in SCREENS.items():
        set_viewport(driver, w, h)
        load(driver, server.url + "/?kiosk=1")
        sizes[screen] = driver.execute_script("""
            const px = e => parseFloat(getComputedStyle(e).fontSize);
            const cell = document.querySelector('.floor .heatmap-label text');
            return {kpi: px(document.querySelector('[data-testid="pue_now"]')), cell: cell ? px(cell) : null,
                    stamp: px(document.getElementById('stamp'))};""")
    set_viewport(driver, 1920, 1080)
    base = sizes["1080p"]
    assert base["cell"] is not None and base["cell"] >= 20, sizes
    for screen, (w, _h) in SCREENS.items():
        for key in ("kpi", "cell", "stamp"):
            assert abs(sizes[screen][key] / base[key] - w / 1920) < 0.03, (screen, key, sizes)
    # at 4K the map's text is no longer the smallest on the wall
    assert sizes["4k"]["cell"] > sizes["4k"]["stamp"]


def test_floor_map_legend_units_and_a_distinct_stale_colour(wall, browser_module):
    server, _ = wall
    driver = browser_module
    set_viewport(driver, 1920, 1080)
    load(driver, server.url + "/")
    legend = driver.find_element("css selector", "[data-testid='floor-legend']").text
    for word in ("normal", "warning", "critical", "stale (last value)", "no data"):
        assert word in legend
    cells = driver.execute_script("return document.querySelector('.floor .js-plotly-plot').data[0].text;")
    flat = [x for row in cells for x in row if x]
    assert all("°C" in x or "—" in x for x in flat), flat
    stale = [x for x in flat if x.startswith("R06")]
    assert stale == ["R06<br>(24.5 °C)"], flat  # the old value in brackets, not coloured as an alarm
    # the stale swatch is the map's stale colour, far from the normal grey
    swatch = driver.execute_script(
        "return getComputedStyle(document.querySelector('.swatch-stale')).backgroundColor;")
    assert swatch == "rgb(94, 74, 153)"
    normal = tuple(int(c.NORMAL[i:i + 2], 16) for i in (1, 3, 5))
    stale_rgb = tuple(int(c.STALE[i:i + 2], 16) for i in (1, 3, 5))
    assert sum(abs(a - b) for a, b in zip(normal, stale_rgb)) >= 60
    # the racks page greys both of R06's readings
    load(driver, server.url + "/racks?rack=R06")
    for key in ("rk_inlet", "rk_outlet"):
        assert "stale" in driver.execute_script(
            f"return document.querySelector('[data-testid=\"{key}\"]').className;").split(), key
    # and the stamp says which source is stale, instead of the age of the freshest
    stamp = driver.find_element("id", "stamp").text
    # R06's sensors are ten minutes old (plus the minutes this module has run): the stamp tells
    assert "stale: rack sensors (1/6)" in stamp and re.search(r"age 1[0-5] min", stamp), stamp
    assert console_errors(driver) == []


def test_kiosk_pages_through_the_pdu_table_before_moving_on(wall, browser_module):
    server, _ = wall
    driver = browser_module
    set_viewport(driver, 1366, 768)
    load(driver, server.url + "/power?kiosk=1")
    seen: set[str] = set()
    pages = 0
    deadline = time.monotonic() + 40
    while driver.execute_script("return location.pathname") == "/power" and time.monotonic() < deadline:
        names = driver.execute_script(
            "return Array.from(document.querySelectorAll('td[data-dash-column=\"pdu\"]')).map(e => e.innerText);")
        if names and not set(names) <= seen:
            pages += 1
            seen |= set(names)
        time.sleep(0.3)
    set_viewport(driver, 1920, 1080)
    assert driver.execute_script("return location.pathname") != "/power", "the kiosk never left the page"
    assert seen == {f"pdu-{r}-{f}" for r in S.RACKS for f in "ab"}, seen  # every PDU was on the wall
    assert pages >= 2
    assert console_errors(driver) == []
