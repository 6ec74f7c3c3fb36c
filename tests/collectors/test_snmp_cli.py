"""`dcim collect --once` and `dcim probe` against real recordings served by snmpsim."""

from __future__ import annotations

import json

import pytest

from dcim.cli.main import main


def _config(tmp_path, agent, dead_port):
    text = f"""
[site]
name = "cli-site"

[snmp.credentials.apc8641]
version = "2c"
community = {{ env = "TEST_CLI_COMMUNITY_1" }}

[snmp.credentials.liebert]
version = "2c"
community = {{ env = "TEST_CLI_COMMUNITY_2" }}

[snmp.credentials.missing]
version = "2c"
community = {{ env = "TEST_CLI_COMMUNITY_UNSET" }}

[[rooms]]
name = "hall"
[[rooms.rows]]
name = "A"
[[rooms.rows.racks]]
name = "R1"

[[pdus]]
name = "pdu-1"
rack = "R1"
feed = "A"
snmp = {{ address = "127.0.0.1", port = {agent.ports[1]}, credentials = "apc8641" }}

[[pdus]]
name = "pdu-dead"
rack = "R1"
feed = "B"
snmp = {{ address = "127.0.0.1", port = {dead_port}, credentials = "apc8641", timeout_s = 0.3, retries = 0 }}

[[pdus]]
name = "pdu-nosecret"
rack = "R1"
feed = "B"
snmp = {{ address = "127.0.0.1", port = {agent.ports[3]}, credentials = "missing" }}

[[cooling]]
name = "crah-1"
room = "hall"
kind = "crah"
capacity_kw = 100
snmp = {{ address = "127.0.0.1", port = {agent.ports[2]}, credentials = "liebert" }}

[store]
backend = "sqlite"
path = "{tmp_path / 'cli.sqlite'}"
[store.spool]
path = "{tmp_path / 'spool'}"
"""
    path = tmp_path / "cli.toml"
    path.write_text(text)
    return path


def test_collect_once_writes_and_summarises(snmpsim_agent, tmp_path, monkeypatch, capsys):
    import socket
    monkeypatch.setenv("TEST_CLI_COMMUNITY_1", "UPS/apc-8641")
    monkeypatch.setenv("TEST_CLI_COMMUNITY_2", "UPS/vertiv-power")
    monkeypatch.delenv("TEST_CLI_COMMUNITY_UNSET", raising=False)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        cfg = _config(tmp_path, snmpsim_agent, s.getsockname()[1])
        rc = main(["collect", "--config", str(cfg), "--once", "--no-gpu"])
    finally:
        s.close()
    out = capsys.readouterr().out
    assert rc == 1  # not every device answered
    lines = {line.split()[1]: line for line in out.splitlines() if line.strip()}
    assert " ok " in lines["pdu-1"] and " ok " in lines["crah-1"]
    assert "ERROR" in lines["pdu-dead"] and "timeout" in lines["pdu-dead"]
    assert "ERROR" in lines["pdu-nosecret"] and "TEST_CLI_COMMUNITY_UNSET is not set" in lines["pdu-nosecret"]
    assert "UPS/apc-8641" not in out   # the community (a secret) is never printed

    from dcim.store.sqlite import SqliteStore
    store = SqliteStore(tmp_path / "cli.sqlite")
    try:
        pdu = store.latest("pdu", where={"pdu": "pdu-1"})
        assert pdu[0].fields["power_w"] == 1210 and pdu[0].tags["rack"] == "R1" and pdu[0].tags["feed"] == "A"
        assert len(store.latest("pdu_outlet", where={"pdu": "pdu-1"})) == 24
        assert store.latest("cooling")[0].fields["return_temp_c"] == 23
        health = {p.tags["target"]: p.fields for p in store.latest("collector")}
        assert health["pdu-1"]["ok"] is True and health["pdu-dead"]["ok"] is False
    finally:
        store.close()


def test_probe_json_lines(snmpsim_agent, monkeypatch, capsys):
    monkeypatch.setenv("TEST_PROBE_COMMUNITY", "UPS/apc-8641")
    rc = main(["probe", f"{snmpsim_agent.host}:{snmpsim_agent.port}", "--community-env", "TEST_PROBE_COMMUNITY",
               "--format", "json"])
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(set(r) == {"measurement", "tags", "fields"} for r in rows)
    pdu = [r for r in rows if r["measurement"] == "pdu"][0]
    assert pdu["fields"]["power_w"] == 1210 and pdu["fields"]["energy_kwh"] == pytest.approx(1951.6)
    assert len([r for r in rows if r["measurement"] == "pdu_outlet"]) == 24


def test_probe_table_v3_and_failures(snmpsim_agent, monkeypatch, capsys):
    from tests.fixtures.snmpsim import SNMPSIM_V3_AUTH, SNMPSIM_V3_PRIV, SNMPSIM_V3_USER
    monkeypatch.setenv("TEST_V3_AUTH", SNMPSIM_V3_AUTH)
    monkeypatch.setenv("TEST_V3_PRIV", SNMPSIM_V3_PRIV)
    target = f"{snmpsim_agent.host}:{snmpsim_agent.port}"
    rc = main(["probe", target, "--v3-user", SNMPSIM_V3_USER, "--v3-auth-key-env", "TEST_V3_AUTH",
               "--v3-priv-key-env", "TEST_V3_PRIV", "--v3-context", "UPS/vertiv-power"])
    out = capsys.readouterr().out
    assert rc == 0 and "profile liebert_env" in out
    assert "return_temp_c" in out and "°C" in out and SNMPSIM_V3_AUTH not in out
    monkeypatch.setenv("TEST_V3_AUTH", "not-the-key-1")
    rc = main(["probe", target, "--v3-user", SNMPSIM_V3_USER, "--v3-auth-key-env", "TEST_V3_AUTH",
               "--v3-priv-key-env", "TEST_V3_PRIV", "--v3-context", "UPS/vertiv-power", "--timeout", "0.5"])
    captured = capsys.readouterr()
    assert rc == 1 and "v3 auth failure" in captured.err and "not-the-key-1" not in captured.err
