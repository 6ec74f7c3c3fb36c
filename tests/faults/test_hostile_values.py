"""Hostile values in the store, the config and the file system do not get through.

Each test reproduces the attack through the real entry point (``python -m dcim.cli.main report``,
``check``, ``pue``, the dashboard's ``/download/report.csv`` route) and shows what holds:

* Formula injection: host/UUID tags such as ``=HYPERLINK(...)`` or ``@SUM(...)`` reach the energy
  CSV (and ``dcim latest --format csv``) only as quoted text with a leading ``'``; negative numbers
  stay bare numbers. ``dcim agent --host`` with such a name is refused before it writes a tag.
* Config rails: ``stale_after_s = inf`` or ``1e8``, ``interval_s = 1e-9``, a freshness window wider
  than 30 polls of the slowest collector, a lease shorter than a cycle, an InfluxDB URL with
  ``user:password@``, a hostile ``[agent] host``: ``dcim check`` exits 2 naming the key, no secret
  and no traceback in its output.
* ``dcim report -o``: a directory or a symbolic link is refused by name before the report is built;
  the file is written atomically (no temporary file left, the link target untouched).
* The PUE model pickle: written 0600; a model file that is group/other-writable, in a
  group/other-writable directory or owned by someone else is never unpickled (a pickle that would
  run code, placed there, does not run), and the optimizer runs without a model.
* The dashboard's report route: a period with a trailing newline is a 400, not a 500.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pickle
import tomllib
from pathlib import Path

import pytest
import tomli_w

from dcim.metrics import Point
from dcim.report import write_csv
from tests.faults.conftest import REPO, run_dcim

MINI = REPO / "tests" / "report" / "mini_site.toml"
JULY_NS = 1_783_296_000 * 10**9  # 2026-07-06T00:00Z, inside 2026Q3
HOUR_NS = 3600 * 10**9
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# What an attacker who controls a node's host name (or its agent's config) puts in the store's tags.
HOSTILE_HOSTS = ['=HYPERLINK("http://127.0.0.1:9/x?"&A1,"open")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+2",
                 "-2+3", "\t=1+1", "\r=1+1"]
HOSTILE_UUIDS = ["=1+1", "@A1", "+A1", "-A1", "\t-1", "\r@1"]


def _config(tmp: Path, store_path: Path, **sections) -> Path:
    data = tomllib.loads(MINI.read_text(encoding="utf-8"))
    data["store"] = {"path": str(store_path)}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = tmp / "site.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    """A SQLite store with a day of GPU telemetry whose host and UUID tags are formulas."""
    from dcim.store.sqlite import SqliteStore

    tmp = tmp_path_factory.mktemp("hostile")
    path = tmp / "dcim.sqlite"
    store = SqliteStore(path)
    points = []
    for g, (host, uuid) in enumerate(zip(HOSTILE_HOSTS, HOSTILE_UUIDS)):
        tags = {"site": "mini", "room": "hall", "rack": "R01", "host": host, "gpu": str(g), "uuid": uuid}
        for h in range(24):
            points.append(Point("gpu", tags, {"power_w": 400.0, "energy_j": 400.0 * 3600 * h, "util_pct": 50.0},
                                JULY_NS + h * HOUR_NS))
    store.write(points)
    store.flush()
    store.close()
    return tmp, path


def _raw_cells(text: str) -> list[list[str]]:
    """Cells as written (quotes kept), split by a reader that knows the quoting: a quoted cell
    is text to a spreadsheet, a bare one may be a number or a formula."""
    rows, cells, cell, quoted = [], [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cell += ch
        elif ch == "," and not quoted:
            cells.append(cell)
            cell = ""
        elif ch in "\r\n" and not quoted:
            if cell or cells:
                rows.append(cells + [cell])
            cells, cell = [], ""
        else:
            cell += ch
    if cell or cells:
        rows.append(cells + [cell])
    return rows


def _assert_no_formula(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for key, value in row.items():
            assert not value.startswith(FORMULA_STARTS), (key, value)
    # every text cell is quoted; a bare cell is a number (or empty)
    for cells in _raw_cells(text)[1:]:
        for cell in cells:
            if cell and not cell.startswith('"'):
                assert math.isfinite(float(cell)), cell
    return rows


def test_formula_tags_reach_the_report_csv_as_text(hostile_store, tmp_path, no_traceback):
    tmp, store_path = hostile_store
    cfg = _config(tmp_path, store_path)
    out = tmp_path / "q3-gpu.csv"
    proc = run_dcim("report", "--config", str(cfg), "--quarter", "2026Q3", "--by", "gpu", "-o", str(out),
                    "--quiet")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc.stderr)
    text = out.read_bytes().decode("utf-8-sig")
    rows = _assert_no_formula(text)
    gpus = [r for r in rows if r["level"] == "gpu"]
    assert sorted(r["host"] for r in gpus) == sorted("'" + h for h in HOSTILE_HOSTS)
    assert sorted(r["entity"] for r in gpus) == sorted("'" + u for u in HOSTILE_UUIDS)
    assert all(float(r["it_kwh"]) > 0 for r in gpus)  # the numbers are still numbers
    # standard output too (the same writer)
    proc = run_dcim("report", "--config", str(cfg), "--quarter", "2026Q3", "--by", "gpu", "--quiet")
    assert proc.returncode == 0, proc.stderr
    _assert_no_formula(proc.stdout)


def test_dcim_latest_csv_neutralises_tags_too(hostile_store, tmp_path, no_traceback):
    tmp, store_path = hostile_store
    cfg = _config(tmp_path, store_path)
    proc = run_dcim("latest", "gpu", "--format", "csv", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc.stderr)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    # (text-mode standard output reads a CR as a newline)
    assert sorted(r["host"] for r in rows) == sorted(("'" + h).replace("\r", "\n") for h in HOSTILE_HOSTS)
    for row in rows:
        assert not any(v.startswith(FORMULA_STARTS) for v in row.values()), row
    assert {r["power_w"] for r in rows} == {"400"}


def test_agent_host_from_the_command_line_is_a_name(tmp_path, no_traceback):
    """`dcim agent --host` bypasses the config's check: the agent refuses it before it writes a tag."""
    cfg = _config(tmp_path, tmp_path / "dcim.sqlite", agent={"token": {"env": "DCIM_T_AGENT_TOKEN"}})
    from tests.faults.conftest import dcim_env

    proc = run_dcim("agent", "--config", str(cfg), "--host", HOSTILE_HOSTS[0], "--simulated-gpus", "1",
                    env=dcim_env(DCIM_T_AGENT_TOKEN="t"), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--host / [agent] host" in proc.stderr
    no_traceback(proc.stdout + proc.stderr)
    assert not (tmp_path / "dcim.sqlite").exists()


def test_negative_numbers_stay_numbers():
    """Only text is neutralised: a negative float (losses when meters disagree) is a bare number."""
    from dcim.report import COLUMN_NAMES

    row = {c: "" for c in COLUMN_NAMES}
    row.update(level="site", entity="-site", loss_other_kwh=-3.2, counter_resets=-1, it_kwh=12.5)
    out = io.StringIO()
    write_csv([row], out)
    cells = dict(zip(COLUMN_NAMES, _raw_cells(out.getvalue())[1]))
    assert cells["loss_other_kwh"] == "-3.2" and cells["counter_resets"] == "-1" and cells["it_kwh"] == "12.5"
    assert cells["entity"] == "\"'-site\"" and cells["level"] == '"site"'


def test_dashboard_download_neutralises_and_refuses_a_newline_period(hostile_store, tmp_path):
    from dashboards.app import create_app
    from dcim.config import load_config
    from dcim.store.sqlite import SqliteStore

    tmp, store_path = hostile_store
    cfg = load_config(_config(tmp_path, store_path))
    store = SqliteStore(store_path, readonly=True)
    try:
        client = create_app(cfg, store).server.test_client()
        r = client.get("/download/report.csv?period=2026Q3&by=gpu")
        assert r.status_code == 200
        rows = _assert_no_formula(r.get_data().decode("utf-8-sig"))
        assert "'" + HOSTILE_HOSTS[0] in {row["host"] for row in rows}
        # "$" let a trailing newline through: the whole report was built, then a 500
        r = client.get("/download/report.csv?period=2026Q3%0A&by=gpu")
        assert r.status_code == 400, r.status_code
    finally:
        store.close()


# --- dcim report -o ------------------------------------------------------------------------------


def test_report_output_to_a_directory_is_a_clear_error(hostile_store, tmp_path, no_traceback):
    tmp, store_path = hostile_store
    cfg = _config(tmp_path, store_path)
    folder = tmp_path / "reports"
    folder.mkdir()
    proc = run_dcim("report", "--config", str(cfg), "--quarter", "2026Q3", "-o", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert f"{folder} is a directory" in proc.stderr
    no_traceback(proc.stderr + proc.stdout)
    assert proc.stderr.startswith("error: -o:")  # refused before the report was built (no progress lines)
    assert list(folder.iterdir()) == []


def test_report_output_through_a_symlink_is_refused(hostile_store, tmp_path, no_traceback):
    tmp, store_path = hostile_store
    cfg = _config(tmp_path, store_path)
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA precious\n")
    link = tmp_path / "report.csv"
    link.symlink_to(victim)
    proc = run_dcim("report", "--config", str(cfg), "--quarter", "2026Q3", "-o", str(link))
    assert proc.returncode == 2, proc.stderr
    assert "symbolic link" in proc.stderr and str(link) in proc.stderr
    no_traceback(proc.stderr + proc.stdout)
    assert victim.read_text() == "ssh-ed25519 AAAA precious\n" and link.is_symlink()


def test_report_output_is_written_atomically(hostile_store, tmp_path):
    tmp, store_path = hostile_store
    cfg = _config(tmp_path, store_path)
    out = tmp_path / "out" / "q3.csv"
    out.parent.mkdir()
    out.write_text("old report\n")
    proc = run_dcim("report", "--config", str(cfg), "--quarter", "2026Q3", "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"\xef\xbb\xbfperiod,")
    assert [p.name for p in out.parent.iterdir()] == ["q3.csv"]  # no temporary file left behind
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- config rails through `dcim check` -----------------------------------------------------------


def _check(tmp_path: Path, mutate) -> tuple[int, str]:
    data = tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "dcim.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    proc = run_dcim("check", "--config", str(path), cwd=tmp_path)
    return proc.returncode, proc.stdout + proc.stderr


def _opt(**values):
    return lambda d: d["optimizer"].update(values)


RAIL_CASES = [
    # (id, mutation, key that must be named, fragment of the reason)
    ("stale_after_s = inf", _opt(stale_after_s=math.inf), "optimizer.stale_after_s", "finite"),
    ("stale_after_s = nan", _opt(stale_after_s=math.nan), "optimizer.stale_after_s", "finite"),
    ("stale_after_s = 1e8", _opt(stale_after_s=1e8), "optimizer.stale_after_s", "3600"),
    ("stale_after_s over 30 polls", _opt(stale_after_s=301.0), "optimizer.stale_after_s", "30 polls"),
    ("interval_s = 1e-9", _opt(interval_s=1e-9), "optimizer.interval_s", "greater than or equal to 1"),
    ("lease_s shorter than a cycle", _opt(lease_s=30.0, interval_s=60.0), "optimizer.lease_s", "flaps"),
    ("lease_s a week", _opt(lease_s=7 * 86400.0), "optimizer.lease_s", "3600"),
    ("cap_fraction_floor 1e-9", _opt(cap_fraction_floor=1e-9), "optimizer.cap_fraction_floor", ""),
    ("breaker_derate 0.01", _opt(breaker_derate=0.01), "optimizer.breaker_derate", ""),
    ("site budget inf", _opt(site_power_budget_kw=math.inf), "optimizer.site_power_budget_kw", "finite"),
    ("loss bound nan", _opt(throughput_loss_bound={"training": math.nan}), "optimizer.throughput_loss_bound", ""),
    ("gpu_interval_s 1e-9", lambda d: d["collectors"].update(gpu_interval_s=1e-9), "collectors.gpu_interval_s", ""),
    ("snmp timeout 1e-9", lambda d: d["collectors"].update(timeout_s=1e-9), "collectors.timeout_s", ""),
    ("agent poll 1e-9", lambda d: d.setdefault("agent", {}).update(poll_interval_s=1e-9), "agent.poll_interval_s", ""),
    ("influx flush 1e-9", lambda d: d["store"].setdefault("influxdb", {}).update(flush_interval_s=1e-9),
     "store.influxdb.flush_interval_s", ""),
    ("spool 1 PiB", lambda d: d["store"].setdefault("spool", {}).update(max_bytes=2**50), "store.spool.max_bytes", ""),
    ("server idle over max", lambda d: d["rooms"][0]["rows"][0]["racks"][0]["server_group"].update(
        host_idle_w=3000.0, host_max_w=2000.0), "rooms[0].rows[0].racks[0].server_group", "host_idle_w"),
    ("agent host formula", lambda d: d.setdefault("agent", {}).update(host='=HYPERLINK("http://x","y")'),
     "agent.host", "pattern"),
    ("dashboard host with a space", lambda d: d["dashboard"].update(host="0.0.0.0 evil"), "dashboard.host",
     "host name"),
    ("influx url with userinfo", lambda d: d["store"].update(backend="influxdb", influxdb={
        "url": "http://admin:pw-QZ7rX-hunter2@127.0.0.1:8086"}), "store.influxdb.url", 'auth = "basic"'),
    ("agent url with userinfo", lambda d: d.setdefault("agent", {}).update(
        optimizer_url="http://ops:pw-QZ7rX-hunter2@127.0.0.1:8087"), "agent.optimizer_url", "[agent] token"),
]


@pytest.mark.parametrize("desc,mutation,key,reason", RAIL_CASES, ids=[c[0] for c in RAIL_CASES])
def test_config_cannot_switch_a_rail_off(desc, mutation, key, reason):
    """The table through the parser (fast); a sample through the real command below."""
    import copy

    from dcim.config import ConfigError, parse_config

    data = copy.deepcopy(tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8")))
    mutation(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    named = [why for path, why in info.value.errors if path == key or path.startswith((key + ".", key + "["))]
    assert named, (desc, info.value.errors)
    assert any(reason in why for why in named), (desc, named)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("desc", ["stale_after_s = inf", "stale_after_s = 1e8", "interval_s = 1e-9",
                                  "stale_after_s over 30 polls", "influx url with userinfo", "agent host formula"])
def test_dcim_check_refuses_the_rail_breakers(desc, tmp_path, no_traceback):
    _, mutation, key, reason = next(c for c in RAIL_CASES if c[0] == desc)
    code, text = _check(tmp_path, mutation)
    assert code == 2, text
    assert key in text and reason in text, text
    assert "hunter2" not in text and "config OK" not in text
    no_traceback(text)


def test_the_shipped_configs_and_the_rail_limit_itself_pass(tmp_path):
    code, text = _check(tmp_path, _opt(stale_after_s=300.0))  # exactly 30 polls of the 10 s SNMP poll
    assert code == 0 and "config OK" in text, text
    for name in ("demo.toml", "site-example.toml"):
        proc = run_dcim("check", "--config", str(REPO / "deploy" / name), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr


# --- the PUE model pickle -------------------------------------------------------------------------


class _Payload:
    """A pickle that runs code when loaded: it creates *marker*."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant_payload(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"format": 1, "model": _Payload(marker)}))


@pytest.mark.parametrize("how", ["file group/other-writable", "directory group/other-writable",
                                 "file owned by someone else"])
def test_a_model_file_others_could_write_is_never_unpickled(hostile_store, tmp_path, how, no_traceback):
    models = tmp_path / "models"
    models.mkdir(mode=0o700)
    path, marker = models / "pue.pkl", tmp_path / "code-ran"
    _plant_payload(path, marker)
    path.chmod(0o600)
    if how.startswith("file group"):
        path.chmod(0o666)
    elif how.startswith("directory"):
        models.chmod(0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file to another user")
        os.chown(path, os.geteuid() + 4242, -1)
    cfg = _config(tmp_path, hostile_store[1])
    proc = run_dcim("pue", "evaluate", "--config", str(cfg), "--model", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refusing the PUE model" in proc.stderr and str(path.name) in proc.stderr, proc.stderr
    assert "no PUE model" in proc.stdout
    no_traceback(proc.stdout + proc.stderr)
    assert not marker.exists(), "the planted pickle ran"


def test_the_planted_pickle_would_run_if_it_were_loaded(tmp_path):
    """The control for the test above: the same file, safely owned, does run (so the refusal is what
    stopped it, not a broken payload). The owner's own 0600 file is trusted as before."""
    from optimizer.pue_model import load_model

    path, marker = tmp_path / "pue.pkl", tmp_path / "code-ran"
    _plant_payload(path, marker)
    path.chmod(0o600)
    load_model(path)
    assert marker.exists()


def test_a_saved_model_is_0600_and_loads_again(tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from optimizer.pue_model import PueModel, load_model

    model = PueModel(HistGradientBoostingRegressor(), ["it_power_kw"], (0, 1), (1, 2), {"mae": 0.01},
                     {"it_power_kw": (1.0, 2.0)})
    (tmp_path / "m").mkdir(mode=0o700)
    old = os.umask(0)  # even with no umask at all
    try:
        path = model.save(tmp_path / "m" / "pue.pkl")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["pue.pkl"]
    again = load_model(path)
    assert again is not None and again.features == ["it_power_kw"]


def test_report_with_no_store_yet_is_a_clear_error(tmp_path):
    from tests.faults.conftest import run_dcim

    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[site]
name = "s"
[[rooms]]
name = "r"
[[rooms.rows]]
name = "a"
[[rooms.rows.racks]]
name = "k"
[store]
path = "{tmp_path / 'none.sqlite'}"
""")
    out = run_dcim("report", "--config", str(cfg), "--quarter", "2026Q3", "--by", "job")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "cannot read the store" in out.stderr and "none.sqlite" in out.stderr
