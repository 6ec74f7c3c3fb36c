"""Callback logic as plain functions, routes, basic auth, the CLI command, the i18n catalogue."""

import base64

import pytest
from dash import Patch, no_update

from dashboards import i18n
from dashboards.app import BasicAuth, create_app, next_kiosk_path, refresh_outputs
from dashboards.pages import gpus, make_ctx, overview, page_for, registry
from tests.dashboards import sitedata as S


@pytest.fixture
def app(tmp_path):
    store = S.open_test_store(tmp_path / "s.sqlite")
    S.populate(store)
    yield create_app(S.make_config(), store)
    store.close()


def test_every_page_renders_in_both_languages(app):
    for module in registry():
        for lang in ("en", "ko"):
            ctx = make_ctx(app.data, f"?lang={lang}")
            assert module.layout(ctx) is not None
            u = module.update(ctx)
            assert set(u) >= {"v", "fig", "tbl"}
    assert page_for("/nope").PATH == "/"


def test_overview_values_match_the_store(app):
    u = overview.update(make_ctx(app.data, ""))
    assert u["v"]["pue_now"][0] == f"{S.NOW_TOTAL_W / S.NOW_IT_W:.2f}"
    assert u["v"]["it_kw"][0] == f"{S.NOW_IT_W / 1000:,.1f} kW"
    assert u["v"]["facility_kw"][0] == f"{S.NOW_TOTAL_W / 1000:,.1f} kW"
    assert u["v"]["cooling_kw"][0] == f"{S.NOW_COOLING_W / 1000:,.1f} kW"
    assert u["v"]["opt_mode"][0] == "enforce"
    # the floor map is the figure that refreshes in place
    z = u["fig"]["floor"]["data"][0]["z"]
    assert sum(1 for row in z for v in row if v is not None) == len(S.RACKS)


def test_refresh_outputs_patch_figures_and_skip_unknown_ids():
    update = {"v": {"a": ("1.23", "stale")}, "fig": {"f": {"data": [{"type": "scatter"}], "layout": {}}},
              "tbl": {"t": [{"x": 1}]}}
    texts, classes, figs, tbls = refresh_outputs(
        update, [{"type": "v", "k": "a"}, {"type": "v", "k": "gone"}], [{"type": "fig", "k": "f"}],
        [{"type": "tbl", "k": "t"}, {"type": "tbl", "k": "u"}])
    assert texts == ["1.23", no_update] and classes == ["stale", no_update]
    assert isinstance(figs[0], Patch)
    assert tbls == [[{"x": 1}], no_update]


def test_kiosk_rotation_order():
    assert next_kiosk_path("/") == "/alarms"
    assert next_kiosk_path("/optimizer") == "/"
    assert next_kiosk_path("/gpus") == "/"


def test_gpu_table_sorts_and_pages_on_the_server():
    rows = [{"host": f"h{i}", "gpu": "0", "power_w": float(i % 5) if i != 3 else None} for i in range(12)]
    page, pages = gpus.sort_page(rows, [{"column_id": "power_w", "direction": "desc"}], 0, 5)
    assert pages == 3 and [r["power_w"] for r in page] == [4.0, 4.0, 3.0, 2.0, 2.0]
    last, _ = gpus.sort_page(rows, [{"column_id": "power_w", "direction": "asc"}], 2, 5)
    assert last[-1]["power_w"] is None  # absent values last
    assert gpus.sort_page(rows, None, 99, 5)[0] == gpus.sort_page(rows, None, 2, 5)[0]


def test_health_route_and_report_download(app):
    client = app.server.test_client()
    r = client.get("/health")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"
    assert client.get("/download/report.csv?period=bad&by=rack").status_code == 400
    r = client.get("/download/report.csv?period=2026Q3&by=rack")
    try:
        import dcim.report  # noqa: F401
    except ImportError:
        assert r.status_code == 503
    else:
        assert r.status_code == 200 and r.mimetype == "text/csv"
        text = r.get_data().decode("utf-8-sig")
        header = text.splitlines()[0].split(",")
        assert "period" in header and S.SITE in text and "2026Q3" in text


def test_basic_auth_everything_but_health(tmp_path, monkeypatch):
    monkeypatch.setenv("DCIM_TEST_DASH_PW", "s3cret")
    store = S.open_test_store(tmp_path / "s.sqlite")
    S.populate(store)
    cfg = S.make_config(auth_user="ops", auth_password={"env": "DCIM_TEST_DASH_PW"})
    app = create_app(cfg, store)
    assert isinstance(app.server.wsgi_app, BasicAuth)
    client = app.server.test_client()
    assert client.get("/health").status_code == 200
    r = client.get("/")
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    bad = base64.b64encode(b"ops:wrong").decode()
    assert client.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    good = base64.b64encode(b"ops:s3cret").decode()
    assert client.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert client.get("/_dash-layout", headers={"Authorization": f"Basic {good}"}).status_code == 200
    store.close()


def test_cli_registers_dashboard_command():
    from dcim.cli.main import build_parser

    args = build_parser().parse_args(["dashboard", "--host", "127.0.0.1", "--port", "0"])
    assert args.command == "dashboard" and args.port == 0 and callable(args._run)


def test_catalogue_has_korean_for_every_key():
    missing = [k for k, v in i18n.MESSAGES.items() if not v.get("ko") or not v.get("en")]
    assert missing == []
    assert i18n.t("kpi.pue_now", "ko") == "현재 PUE (순시값)"
    assert i18n.t("banner.count", "ko", crit=1, warn=2) == "심각 1 · 주의 2"
    assert i18n.fmt_num(1234567.891, 1, "kW") == "1,234,567.9 kW" and i18n.fmt_num(None) == "—"
    # times are shown in the site's zone
    assert i18n.fmt_time(0, "Asia/Seoul", with_date=True) == "1970-01-01 09:00:00 KST"


def test_dcim_dashboard_serves_with_waitress(tmp_path):
    """The real command: waitress on a free loopback port, /health answers, the page is served."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    store = S.open_test_store(tmp_path / "dcim.sqlite")
    S.populate(store)
    store.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = tmp_path / "dcim.toml"
    cfg.write_text(f"""
[site]
name = "cli-site"
timezone = "Asia/Seoul"
[[rooms]]
name = "hall-1"
[[rooms.rows]]
name = "A"
[[rooms.rows.racks]]
name = "R01"
[store]
path = "{tmp_path / 'dcim.sqlite'}"
[dashboard]
refresh_s = 2
""", encoding="utf-8")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "dcim.cli.main", "dashboard", "--config", str(cfg),
                             "--host", "127.0.0.1", "--port", str(port)], cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.loads(r.read())
                    server = r.headers.get("Server", "")
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.2)
        assert health["status"] == "ok" and "dcim-dashboard" in server  # waitress, with our ident
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            body = r.read()
        assert r.status == 200 and b"react-entry-point" in body and b"dcim" in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
