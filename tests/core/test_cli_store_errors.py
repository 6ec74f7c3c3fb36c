"""No traceback for expected conditions: every command that reads or writes the store, run as the
operator runs it (a subprocess of ``dcim``), with no store yet and with an InfluxDB URL nothing
listens on. Each says what is wrong in one line on stderr and exits non-zero (where the command's
job is to read the store), never a Python traceback."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "deploy" / "demo.toml").read_text()
STORE = 'backend = "sqlite"\npath = "var/dcim.sqlite"\nraw_retention_days = 7'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def not_influxdb():
    """An HTTP server that is not InfluxDB: every request gets a 404 HTML page, as a web server
    or a proxy on the wrong port answers."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/nowhere"
    server.shutdown()


def config(tmp_path: Path, kind: str, not_influxdb: str = "") -> Path:
    assert STORE in DEMO, "deploy/demo.toml's [store] changed: update this test's replacement"
    if kind == "no-store":
        store = f'backend = "sqlite"\npath = "{tmp_path / "never" / "dcim.sqlite"}"'
    else:  # a port that was free a moment ago (connection refused), or a server that is not InfluxDB
        url = not_influxdb if kind == "not-influxdb" else f"http://127.0.0.1:{free_port()}"
        store = (f'backend = "influxdb"\n[store.influxdb]\nurl = "{url}"\n'
                 f'database = "dcim"\ntimeout_s = 1\nmax_retries = 0\n[store.spool]\npath = "{tmp_path / "spool"}"')
    path = tmp_path / f"{kind}.toml"
    path.write_text(DEMO.replace(STORE, store))
    return path


def dcim(cfg: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIM_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "dcim.cli.main", *args, "--config", str(cfg)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


# (arguments, what the error line must name). Commands whose job is to read the store fail; the
# alarm engine, the optimizer and the collectors hold and say why (they run as services).
READERS = [
    (("latest", "gpu"), "store"),
    (("latest", "facility", "--format", "json"), "store"),
    (("report", "--quarter", "2026Q3", "--quiet"), "store"),
    (("report", "--month", "2026-07", "--by", "tenant", "--quiet"), "store"),
    (("pue", "train"), ""),
    (("alerts", "--list"), ""),
]
SERVICES = [
    ("optimize", "--once"),
    ("alerts", "--once"),
    ("collect", "--once"),
]


@pytest.mark.parametrize("kind", ["no-store", "dead-influxdb", "not-influxdb"])
@pytest.mark.parametrize(("args", "names"), READERS, ids=[" ".join(a) for a, _ in READERS])
def test_readers_fail_in_one_line(tmp_path, kind, args, names, not_influxdb):
    result = dcim(config(tmp_path, kind, not_influxdb), *args, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0, (result.stdout, result.stderr)
    # (dcim pue prints its error on stdout)
    errors = [line for line in (result.stderr + result.stdout).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, (result.stdout, result.stderr)
    assert names in errors[0]
    if args[0] in ("latest", "report"):   # nothing else on stderr: no HTML page, no log
        assert result.stderr.strip().splitlines() == errors, result.stderr
    if (kind == "dead-influxdb" and args[0] != "pue") or (kind == "no-store" and args[0] in ("latest", "report")):
        assert re.search(r"InfluxDB http://127\.0\.0\.1:\d+ unavailable|no SQLite store", errors[0]), errors[0]


@pytest.mark.parametrize("kind", ["no-store", "dead-influxdb", "not-influxdb"])
@pytest.mark.parametrize("args", SERVICES, ids=[" ".join(a) for a in SERVICES])
def test_services_never_print_a_traceback(tmp_path, kind, args, not_influxdb):
    result = dcim(config(tmp_path, kind, not_influxdb), *args, cwd=tmp_path)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode in (0, 1), (result.returncode, result.stderr)
