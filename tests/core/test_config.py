"""Config validation: every bad config names the key and says what is wrong, without a traceback."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dcim.config import ConfigError, SecretRef, load_config, parse_config, read_secret

REPO = Path(__file__).resolve().parents[2]
DEMO = tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8"))


def mutate(fn):
    data = copy.deepcopy(DEMO)
    fn(data)
    return data


def rack0(d):
    return d["rooms"][0]["rows"][0]["racks"][0]


def _set(path_fn, key, value):
    def apply(d):
        path_fn(d)[key] = value
    return apply


def _del(path_fn, key):
    def apply(d):
        del path_fn(d)[key]
    return apply


BAD = [
    # (description, mutation, expected key path, expected fragment of the reason)
    ("unknown top-level key", _set(lambda d: d, "colectors", {}), "colectors", "unknown key"),
    ("unknown nested key", _set(lambda d: d["store"], "pth", "x"), "store.pth", "unknown key"),
    ("unknown rack key", _set(rack0, "ashrae", "A1"), "rooms[0].rows[0].racks[0].ashrae", "unknown key"),
    ("bad ASHRAE class", _set(rack0, "ashrae_class", "A9"), "rooms[0].rows[0].racks[0].ashrae_class", "'A1'"),
    ("negative budget", _set(rack0, "power_budget_kw", -5), "rooms[0].rows[0].racks[0].power_budget_kw",
     "greater than 0"),
    ("string for number", _set(lambda d: d["collectors"], "snmp_interval_s", "ten"), "collectors.snmp_interval_s",
     "valid number"),
    ("unknown time zone", _set(lambda d: d["site"], "timezone", "Mars/Olympus"), "site.timezone",
     "unknown time zone"),
    ("missing site name", _del(lambda d: d["site"], "name"), "site.name", "Field required"),
    ("bad feed", _set(lambda d: d["pdus"][0], "feed", "C"), "pdus[0].feed", "'A' or 'B'"),
    ("pdu on missing rack", _set(lambda d: d["pdus"][3], "rack", "Z99"), "pdus[3].rack", "no rack named 'Z99'"),
    ("missing tenant", _set(rack0, "tenant", "nobody"), "rooms[0].rows[0].racks[0].tenant",
     "no tenant named 'nobody'"),
    ("cooling zone rack missing", _set(lambda d: d["cooling"][0], "racks", ["A01", "Q7"]), "cooling[0].racks[1]",
     "no rack named 'Q7'"),
    ("cooling in missing room", _set(lambda d: d["cooling"][1], "room", "attic"), "cooling[1].room",
     "no room named 'attic'"),
    ("duplicate address", lambda d: d["pdus"][1]["snmp"].update(address=d["pdus"][0]["snmp"]["address"]),
     "pdus[1].snmp.address", "already used by pdus[0]"),
    ("bad address", lambda d: d["pdus"][0]["snmp"].update(address="not an address"), "pdus[0].snmp.address",
     "not an IP address"),
    ("port out of range", lambda d: d["pdus"][0]["snmp"].update(port=70000), "pdus[0].snmp.port",
     "less than or equal to 65535"),
    ("unknown credentials", lambda d: d["ups"][0]["snmp"].update(credentials="nope"), "ups[0].snmp.credentials",
     "no [snmp.credentials.nope] section"),
    ("secret in TOML", lambda d: d["snmp"]["credentials"]["default"].update(auth_key="hunter22"),
     "snmp.credentials.default.auth_key", "valid dictionary"),
    ("secret with two sources", lambda d: d["snmp"]["credentials"]["default"].update(
        auth_key={"env": "A", "file": "/x"}), "snmp.credentials.default.auth_key", "exactly one of"),
    ("bad SNMP version", lambda d: d["snmp"]["credentials"]["v2c"].update(version="1"),
     "snmp.credentials.v2c", "version"),
    ("duplicate rack", lambda d: d["rooms"][1]["rows"][0]["racks"][0].update(name="A01"),
     "rooms[1].rows[0].racks[0].name", "duplicate rack 'A01'"),
    ("duplicate device", lambda d: d["pdus"][5].update(name="pdu-A01-a"), "pdus[5].name",
     "duplicate device name 'pdu-A01-a'"),
    ("servers and group", _set(rack0, "servers", [{"host": "x1"}]), "rooms[0].rows[0].racks[0]",
     "either 'servers' or 'server_group'"),
    ("influx token missing", lambda d: d["store"].update(backend="influxdb", influxdb={"auth": "token"}),
     "store.influxdb", "needs 'token'"),
    ("influx url scheme", lambda d: d["store"].update(influxdb={"url": "ftp://x"}), "store.influxdb.url",
     "http://"),
    ("bad optimizer mode", _set(lambda d: d["optimizer"], "mode", "yolo"), "optimizer.mode", "'enforce'"),
    ("throughput bound > 1", _set(lambda d: d["optimizer"], "throughput_loss_bound", {"training": 1.5}),
     "optimizer.throughput_loss_bound", "between 0 and 1"),
    ("no rooms", _set(lambda d: d, "rooms", []), "rooms", "at least 1 item"),
    ("dashboard auth half", _set(lambda d: d["dashboard"], "auth_user", "ops"), "dashboard",
     "needs both"),
]


@pytest.mark.parametrize("desc,mutation,key,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_key_and_reason(desc, mutation, key, reason):
    with pytest.raises(ConfigError) as info:
        parse_config(mutate(mutation))
    paths = {path: why for path, why in info.value.errors}
    assert key in paths, f"expected an error at {key}, got {info.value.errors}"
    assert reason in paths[key], f"{key}: expected {reason!r} in {paths[key]!r}"


def test_demo_config_is_valid_and_realistic(demo_config):
    from dcim.inventory import build_inventory

    inv = build_inventory(demo_config)
    assert (len(demo_config.rooms), len(inv.racks), len(inv.servers), len(inv.gpus)) == (2, 16, 64, 512)
    assert len(demo_config.pdus) == 32 and {p.feed for p in demo_config.pdus} == {"A", "B"}
    assert demo_config.site.timezone == "Asia/Seoul"
    assert demo_config.site.grid_kgco2e_per_kwh == pytest.approx(0.4173)
    assert {t.kind for t in demo_config.tenants} == {"university", "institute", "startup"}
    assert {c.kind for c in demo_config.cooling} == {"inrow", "crah", "chiller"}
    # Every rack has an A and a B PDU.
    for rack in inv.racks:
        assert sorted(p.feed for p in inv.pdus_by_rack[rack.rack]) == ["A", "B"]


def test_secret_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DCIM_TEST_SECRET", "s3cret-env")
    assert read_secret(SecretRef(env="DCIM_TEST_SECRET"), "x") == "s3cret-env"
    f = tmp_path / "key"
    f.write_text("s3cret-file\n")
    assert read_secret(SecretRef(file=f), "x") == "s3cret-file"
    monkeypatch.delenv("DCIM_TEST_SECRET")
    with pytest.raises(ConfigError) as info:
        read_secret(SecretRef(env="DCIM_TEST_SECRET"), "snmp.credentials.default.auth_key")
    assert info.value.errors == [("snmp.credentials.default.auth_key", "environment variable DCIM_TEST_SECRET is not set")]


def test_empty_env_name_is_a_config_error_not_a_crash():
    # `env = ""` passes SecretRef's one-source check; it used to fall through to reading a file named None
    with pytest.raises(ConfigError) as info:
        read_secret(SecretRef(env=""), "dashboard.auth_password")
    assert info.value.errors == [("dashboard.auth_password", "environment variable  is not set")]


def test_config_search_order(tmp_path, monkeypatch):
    other = copy.deepcopy(DEMO)
    other["site"]["name"] = "env-site"
    import tomli_w

    path = tmp_path / "env.toml"
    path.write_bytes(tomli_w.dumps(other).encode())
    monkeypatch.setenv("DCIM_CONFIG", str(path))
    assert load_config().site.name == "env-site"
    assert load_config(REPO / "deploy" / "demo.toml").site.name == "daejeon-hub"
    monkeypatch.delenv("DCIM_CONFIG")
    assert load_config().site.name == "daejeon-hub"


def run_dcim(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dcim.cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=60)


def test_check_cli_bad_config_exits_2_without_traceback(tmp_path):
    bad = mutate(_set(lambda d: d["pdus"][2], "breaker_a", "lots"))
    import tomli_w

    path = tmp_path / "bad.toml"
    path.write_bytes(tomli_w.dumps(bad).encode())
    proc = run_dcim("check", "--config", str(path))
    assert proc.returncode == 2
    assert "pdus[2].breaker_a" in proc.stderr and "valid number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_cli_syntax_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[site\nname = 'x'\n")
    proc = run_dcim("check", "--config", str(path))
    assert proc.returncode == 2 and "(syntax)" in proc.stderr and "Traceback" not in proc.stderr


def test_check_cli_summary_counts(demo_config):
    proc = run_dcim("check")
    assert proc.returncode == 0, proc.stderr
    counts = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[1:]}
    assert counts["racks"] == "16" and counts["GPUs"] == "512" and counts["PDUs"] == "32"


def test_every_command_has_help():
    from dcim.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"check", "latest"} <= set(sub.choices)
    for name in sub.choices:
        proc = run_dcim(name, "--help")
        assert proc.returncode == 0 and "usage: dcim " + name in proc.stdout, name


def test_version():
    import dcim

    proc = run_dcim("--version")
    assert proc.stdout.strip() == f"dcim {dcim.__version__}"
