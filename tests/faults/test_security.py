"""Nothing leaks and no one gets in.

* Secrets (SNMP v3 keys, v2c community, InfluxDB token, optimizer token, dashboard password),
  set to distinctive values, never appear in: the stdout/stderr/logs of real ``dcim simulate``,
  ``dcim collect`` (daemon and --once, with right and with wrong keys, with the store down),
  ``dcim check``; the process titles (/proc/<pid>/cmdline); error messages; any page, layout
  or callback answer the dashboard serves; the optimizer API's answers and logs.
* Dashboard basic auth covers every route but /health.
* The desired-state API refuses requests without or with a wrong token, and the node agent
  never puts a limit outside the GPU's constraints, whatever the document says.
* Scheduler adapters build argument lists (never a shell) and refuse hostile node names.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tomli_w

from tests.faults.conftest import PY, REPO, dcim_env, wait_for

SECRETS = {
    "DCIM_SNMP_AUTH_KEY": "authkey-QZ7rX91-lemon",
    "DCIM_SNMP_PRIV_KEY": "privkey-QZ7rX92-melon",
    "DCIM_SNMP_COMMUNITY": "community-QZ7rX93",
    "DCIM_T_INFLUX_TOKEN": "influxtok-QZ7rX94-grape",
    "DCIM_T_OPT_TOKEN": "opttok-QZ7rX95-kiwi",
    "DCIM_T_DASH_PW": "dashpw-QZ7rX96-plum",
}
WRONG = {  # a collector configured with the wrong keys (they must not leak either)
    "DCIM_SNMP_AUTH_KEY": "wrongauth-QZ7rX97-fig",
    "DCIM_SNMP_PRIV_KEY": "wrongpriv-QZ7rX98-date",
    "DCIM_SNMP_COMMUNITY": "wrongcomm-QZ7rX99",
}
ALL_SECRETS = list(SECRETS.values()) + list(WRONG.values())


def leaks(text: str) -> list[str]:
    """Secrets (or their base64, as an Authorization header would carry them) found in *text*."""
    found = []
    for s in ALL_SECRETS:
        if s in text or base64.b64encode(s.encode()).decode()[:16] in text:
            found.append(s)
    return found


def _free_udp(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def write_config(tmp: Path, *, backend: str = "sqlite") -> Path:
    data = tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8"))
    # a slice of the demo is enough here (and keeps the twin light): both SNMP versions, every kind
    data["pdus"], data["cooling"], data["ups"] = data["pdus"][:4], data["cooling"][:1], data["ups"][:1]
    port = _free_udp("127.81.0.1")
    n = 0
    for group in ("pdus", "cooling", "ups", "meters"):
        for dev in data[group]:
            n += 1
            dev["snmp"]["address"] = f"127.81.{n // 250}.{n % 250 + 1}"
            dev["snmp"]["port"] = port
    data["collectors"].update(timeout_s=1.5, retries=0, snmp_interval_s=10, metrics_port=0)
    data["store"] = {"backend": backend, "path": str(tmp / "dcim.sqlite"), "spool": {"path": str(tmp / "spool")},
                     "influxdb": {"url": "http://127.0.0.1:9", "database": "dcim", "auth": "token",
                                  "token": {"env": "DCIM_T_INFLUX_TOKEN"}, "timeout_s": 1.0, "max_retries": 0}}
    data["optimizer"].update(token={"env": "DCIM_T_OPT_TOKEN"}, port=0, progress_port=0,
                             model_path=str(tmp / "model.pkl"))
    data["dashboard"].update(auth_user="ops", auth_password={"env": "DCIM_T_DASH_PW"}, port=0)
    data["agent"] = {"token": {"env": "DCIM_T_OPT_TOKEN"}}
    path = tmp / f"dcim-{backend}.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _own_spool(config: Path, spool: Path) -> str:
    data = tomllib.loads(config.read_text())
    data["store"]["spool"]["path"] = str(spool)
    out = spool.parent / config.name
    out.write_text(tomli_w.dumps(data))
    return str(out)


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.stdout.read() if proc.stdout else ""


def test_secrets_never_in_logs_titles_or_errors(tmp_path):
    cfg = write_config(tmp_path)
    cfg_influx = write_config(tmp_path, backend="influxdb")
    right = dcim_env(**SECRETS)
    wrong = dcim_env(**{**SECRETS, **WRONG})
    captured: dict[str, str] = {}
    sim = subprocess.Popen([PY, "-m", "dcim.cli.main", "--log-level", "DEBUG", "simulate", "--config", str(cfg),
                            "--speed", "10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=right, cwd=tmp_path)
    collector = None
    try:
        time.sleep(1.0)
        captured["simulate cmdline"] = cmdline(sim.pid)
        # wait until the agents answer: a --once pass that succeeds
        def once_ok():
            p = subprocess.run([PY, "-m", "dcim.cli.main", "collect", "--once", "--no-gpu", "--config", str(cfg)],
                               capture_output=True, text=True, env=right, cwd=tmp_path, timeout=120)
            captured.setdefault("collect --once (right keys)", "")
            captured["collect --once (right keys)"] += p.stdout + p.stderr
            return sum(" ok " in line for line in p.stdout.splitlines()) >= 6  # the agents answer
        wait_for(once_ok, 90, "the twin's agents to answer", every_s=1)
        # the daemon, running: its title, then its log
        collector = subprocess.Popen([PY, "-m", "dcim.cli.main", "--log-level", "DEBUG", "collect", "--no-gpu",
                                      "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=right, cwd=tmp_path)
        time.sleep(4)
        captured["collect cmdline"] = cmdline(collector.pid)
        # a second collector on the same spool: a clean refusal, not a traceback
        p = subprocess.run([PY, "-m", "dcim.cli.main", "collect", "--once", "--no-gpu", "--config", str(cfg)],
                           capture_output=True, text=True, env=right, cwd=tmp_path, timeout=120)
        captured["second collector"] = p.stdout + p.stderr
        assert p.returncode == 2 and "in use by another writer" in p.stderr, p.stderr[-2000:]
        assert "Traceback" not in p.stderr
        captured["collect daemon log"] = stop(collector)
        collector = None
        # in parallel: wrong keys (every device fails, with messages); the store down (InfluxDB
        # with a token on a closed port: errors and spooling); a missing secret (the error names
        # the variable, not a value); `dcim check`
        env_missing = {k: v for k, v in right.items() if k != "DCIM_SNMP_PRIV_KEY"}
        runs = {
            "collect --once (wrong keys)": (["--log-level", "DEBUG", "collect", "--once", "--no-gpu", "--config",
                                             str(cfg)], wrong),
            "collect --once (influx down)": (["--log-level", "DEBUG", "collect", "--once", "--no-gpu", "--config",
                                              str(cfg_influx)], right),
            "collect --once (missing secret)": (["collect", "--once", "--no-gpu", "--config", str(cfg)], env_missing),
            "check": (["check", "--config", str(cfg_influx)], right),
        }
        procs = {}
        for what, (args, env) in runs.items():
            (tmp_path / what).mkdir()
            cfg_copy = tmp_path / what / "spool"  # each its own spool: they run side by side
            args = [a if a not in (str(cfg), str(cfg_influx)) else _own_spool(Path(a), cfg_copy) for a in args]
            procs[what] = subprocess.Popen([PY, "-m", "dcim.cli.main", *args], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        codes = {}
        for what, proc in procs.items():
            out, err = proc.communicate(timeout=150)
            captured[what] = out + err
            codes[what] = proc.returncode
        assert codes["collect --once (wrong keys)"] == 1 and "ERROR" in captured["collect --once (wrong keys)"]
        assert "DCIM_SNMP_PRIV_KEY" in captured["collect --once (missing secret)"]
        assert codes["check"] == 0
    finally:
        if collector is not None:
            captured["collect daemon log"] = stop(collector)
        captured["simulate log"] = stop(sim)
    assert "ERROR" in captured["collect --once (wrong keys)"]
    assert "collect" in captured["collect cmdline"] and "simulate" in captured["simulate cmdline"]
    assert "unavailable" in captured["collect --once (influx down)"] or \
        "spool" in captured["collect --once (influx down)"]
    for what, text in captured.items():
        assert not leaks(text), f"{what} leaks {leaks(text)}:\n{text[-2000:]}"
    # the spool on disk holds points, never the token
    for f in (tmp_path / "spool").rglob("*"):
        if f.is_file():
            assert not leaks(f.read_bytes().decode("latin-1")), f


# --- dashboard -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    from dashboards.app import create_app
    from tests.dashboards import sitedata as S

    mp = pytest.MonkeyPatch()
    mp.setenv("DCIM_T_DASH_PW", SECRETS["DCIM_T_DASH_PW"])
    store = S.open_test_store(tmp_path_factory.mktemp("dash") / "s.sqlite")
    S.populate(store)
    app = create_app(S.make_config(auth_user="ops", auth_password={"env": "DCIM_T_DASH_PW"}), store)
    yield app
    store.close()
    mp.undo()


def _auth(user="ops", pw=SECRETS["DCIM_T_DASH_PW"]):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def _urls(app):
    for rule in app.server.url_map.iter_rules():
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<{arg}>", "x").replace(f"<path:{arg}>", "x/y.js").replace(f"<string:{arg}>", "x")
        methods = sorted(m for m in rule.methods if m in ("GET", "POST"))
        yield url, methods


def test_dashboard_auth_covers_every_route_but_health(dash):
    client = dash.server.test_client()
    urls = list(_urls(dash))
    assert len(urls) >= 5 and any(u == "/_dash-update-component" for u, _ in urls)
    for url, methods in urls + [("/", ["GET"]), ("/racks", ["GET"]), ("/download/report.csv?period=2026Q1", ["GET"]),
                                ("/health/", ["GET"]), ("//health", ["GET"]), ("/health/../racks", ["GET"])]:
        for method in methods:
            for headers in ({}, _auth(pw="wrong"), _auth(user="admin"), {"Authorization": "Basic !!notbase64"},
                            {"Authorization": "Bearer " + SECRETS["DCIM_T_DASH_PW"]}):
                r = client.open(url, method=method, headers=headers)
                if url == "/health":
                    assert r.status_code in (200, 503)
                    continue
                assert r.status_code == 401, (method, url, headers, r.status_code)
                assert not leaks(r.get_data(as_text=True))
    assert client.get("/", headers=_auth()).status_code == 200


def test_dashboard_never_serves_a_secret(dash):
    from dashboards.pages import registry

    client = dash.server.test_client()
    bodies = []
    for module in registry():
        for lang in ("en", "ko"):
            bodies.append(client.get(module.PATH + f"?lang={lang}", headers=_auth()).get_data(as_text=True))
    for url in ("/_dash-layout", "/_dash-dependencies", "/health", "/download/report.csv?period=2026Q1"):
        bodies.append(client.get(url, headers=_auth()).get_data(as_text=True))
    from dashboards.pages import make_ctx
    for module in registry():
        bodies.append(json.dumps(module.update(make_ctx(dash.data, "")), default=str))
    for body in bodies:
        assert not leaks(body)


# --- the optimizer's desired-state API and the node agent -----------------------------------------


@pytest.fixture
def api(caplog):
    from optimizer.api import OptimizerApi
    from optimizer.desired_state import DesiredState, Lease

    caplog.set_level(logging.DEBUG)
    book = DesiredState(lease_s=300)
    now = time.time_ns()
    book.put(Lease("node-1", 0, "GPU-a", 450.0, 700.0, 700.0, now + 300 * 10**9, now, "test"))
    server = OptimizerApi(book, token=SECRETS["DCIM_T_OPT_TOKEN"]).start()
    yield server
    server.stop()


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_desired_state_api_refuses_without_the_right_token(api, caplog):
    tok = SECRETS["DCIM_T_OPT_TOKEN"]
    url = api.url + "/v1/desired-state?host=node-1"
    refused = [
        {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "}, {"Authorization": tok},
        {"Authorization": "Basic " + base64.b64encode(f"x:{tok}".encode()).decode()},
        {"Authorization": "Bearer " + tok + "x"}, {"Authorization": "Bearer " + tok[:-1]},
        {"X-Token": tok},
    ]
    for headers in refused:
        code, body = _get(url, headers)
        assert code == 401 and "node-1" not in body and "450" not in body, (headers, code)
    assert _get(url + "&token=" + tok)[0] == 401  # a token in the URL is not a credential
    code, body = _get(url, {"Authorization": "Bearer " + tok})
    assert code == 200 and json.loads(body)["gpus"][0]["power_limit_w"] == 450.0
    # hostile host names are refused, not echoed
    for host in ("node-1%0A", "%3Bid", "..%2F..%2Fetc", "-rf", "a" * 300):
        code, _ = _get(api.url + "/v1/desired-state?host=" + host, {"Authorization": "Bearer " + tok})
        assert code == 400, host
    # placement needs the token too
    req = urllib.request.Request(api.url + "/v1/placement", data=b'{"gpus": 1}', method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("placement without a token was served")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    assert not leaks(caplog.text)


HOSTILE_DOCS = [
    {"gpus": [{"index": 0, "power_limit_w": 5.0, "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": 50_000.0, "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": -700.0, "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": math.nan, "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": math.inf, "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": -math.inf, "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": "300; rm -rf /", "expires_ns": 2**62}]},
    {"gpus": [{"index": 0, "power_limit_w": 300.0, "expires_ns": math.inf}]},
    {"gpus": [{"index": 99, "power_limit_w": 300.0, "expires_ns": 2**62}]},
    {"gpus": [{"index": "0; reboot", "power_limit_w": 300.0, "expires_ns": 2**62}]},
    {"gpus": [None, 5, "x", []]},
    {"gpus": 5}, {"gpus": None}, {"gpus": {"0": 300}}, [1, 2, 3], "reboot", 42,
]


@pytest.mark.parametrize("doc", HOSTILE_DOCS, ids=[repr(d)[:50] for d in HOSTILE_DOCS])
def test_node_agent_never_sets_a_limit_outside_constraints(doc):
    from optimizer.agent import NodeAgent
    from tests.optimizer.fakes import FakeGpus

    gpus = FakeGpus(n=2)
    agent = NodeAgent(gpus, lambda: doc, clock=lambda: 10**18)
    for _ in range(2):
        limits = agent.tick()
        assert set(limits) == {0, 1}
        for w in limits.values():
            assert math.isfinite(w) and 200.0 <= w <= 700.0, (doc, limits)
    for _, w in gpus.sets:
        assert math.isfinite(w) and 200.0 <= w <= 700.0, (doc, gpus.sets)
    # nothing usable in the document: every GPU stays at (or goes back to) its default
    usable = isinstance(doc, dict) and isinstance(doc.get("gpus"), list) and any(
        isinstance(g, dict) and g.get("index") == 0 and isinstance(g.get("power_limit_w"), float)
        and math.isfinite(g["power_limit_w"]) and isinstance(g.get("expires_ns"), int) for g in doc["gpus"])
    if not usable:
        assert limits == {0: 700.0, 1: 700.0}, (doc, limits)


def test_node_agent_reverts_after_a_garbled_document():
    """A good lease, then garbage from the server: the agent keeps the last good document and
    still reverts when that lease lapses."""
    from optimizer.agent import NodeAgent
    from tests.optimizer.fakes import FakeGpus

    now = [0]
    docs = [{"gpus": [{"index": 0, "power_limit_w": 400.0, "expires_ns": 100}]}, [1, 2], "garbage"]
    gpus = FakeGpus(n=1)
    agent = NodeAgent(gpus, lambda: docs.pop(0) if docs else None, clock=lambda: now[0])
    assert agent.tick() == {0: 400.0}
    now[0] = 50
    assert agent.tick() == {0: 400.0} and agent.fetch_errors == 1
    now[0] = 101
    assert agent.tick() == {0: 700.0}


# --- scheduler adapters --------------------------------------------------------------------------


HOSTILE_NAMES = [";rm -rf /", "$(id)", "`id`", "node1\n", "node1\nnode2", "-rf", "--help", "node1;reboot",
                 "node1 && id", "node1|id", "../etc", "a" * 300, "", " ", "nöde", "node1\0", "node1'", '"x"',
                 "${IFS}", ">out", "-o=ProxyCommand=id"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:30] for n in HOSTILE_NAMES])
def test_scheduler_adapters_refuse_hostile_node_names(name):
    from optimizer.schedulers import kubernetes_commands, kubernetes_patches, slurm_commands

    ranking = [("gpu-node-01", 10.0), (name, 20.0)]
    for build in (slurm_commands, kubernetes_commands, kubernetes_patches):
        out, rejected = build(ranking)
        assert rejected == [name], (build.__name__, rejected)
        # only the good node gets a command, and it is an argv list of plain strings
        if build is slurm_commands:
            assert out == [["scontrol", "update", "NodeName=gpu-node-01", "Weight=1"]]
        elif build is kubernetes_commands:
            assert len(out) == 2 and all(a[a.index("--") + 1] == "gpu-node-01" for a in out)
            assert all(isinstance(a, list) and all(isinstance(x, str) for x in a) for a in out)
        else:
            assert [p["metadata"]["name"] for p in out] == ["gpu-node-01"]


def test_commands_run_without_a_shell(tmp_path):
    """A fake scontrol records its argv: metacharacters arrive as plain bytes, nothing is run."""
    from optimizer.schedulers import run_commands

    marker = tmp_path / "pwned"
    fake = tmp_path / "scontrol"
    log = tmp_path / "argv.log"
    fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\" >> {log}; done\n")
    fake.chmod(0o755)
    evil = [str(fake), "update", f"NodeName=x;touch {marker}", f"Weight=$(touch {marker})", f"`touch {marker}`"]
    results = run_commands([evil])
    assert results[0][1] == 0
    assert not marker.exists()
    assert log.read_bytes().split(b"\0")[:-1] == [a.encode() for a in evil[1:]]
