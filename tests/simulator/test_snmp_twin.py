"""The agents driven by the real FacilityTwin, and ``dcim simulate`` end to end.

Facility-level checks read every device over SNMP (v3 and v2c) and decode with the reference's
scales: UPS output ≈ the PDUs behind it, UPS input = output + losses, cooling output ≈ rack heat.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from dcim.config import load_config
from dcim.inventory import build_inventory
from tests.conftest import REPO
from tests.simulator.snmp_helpers import HAVE_NET_SNMP, TEST_SECRETS, NetSnmp, free_udp_port, relocated, running_service, target

facility = pytest.importorskip("simulator.facility")
pytestmark = pytest.mark.skipif(not HAVE_NET_SNMP, reason="Net-SNMP command-line tools not installed")

APC_POWER = "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1"  # hundredths of kW
RARITAN_POWER = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5"  # inlet activePower
RARITAN_POWER_DIGITS = "1.3.6.1.4.1.13742.6.3.3.4.1.7.1.1.5"
UPS_OUTPUT_POWER = "1.3.6.1.2.1.33.1.4.4.1.4"  # W per line
XUPS_INPUT_TOTAL = "1.3.6.1.4.1.534.1.3.8.3.0"  # W
INROW_COOL_OUTPUT = "1.3.6.1.4.1.318.1.1.13.3.2.2.2.2.0"  # tenths of kW
LGP_COOLING_CAPACITY = "1.3.6.1.4.1.476.1.42.3.4.3.9.0"  # %


@pytest.fixture(scope="module")
def twin_setup():
    mp = pytest.MonkeyPatch()
    for name, value in TEST_SECRETS.items():
        mp.setenv(name, value)
    config = relocated(load_config(REPO / "deploy" / "demo.toml"), prefix="127.79")
    twin = facility.FacilityTwin(config, seed=11)
    twin.step(1800)
    with running_service(config, twin) as svc:
        yield config, svc
    mp.undo()


def _pdu_power_w(snmp: NetSnmp, config, name: str, profile: str) -> float:
    where = target(config, name)
    if profile == "apc_rpdu2":
        return int(snmp.get(where, APC_POWER)[APC_POWER]) * 10.0
    got = snmp.get(where, RARITAN_POWER, RARITAN_POWER_DIGITS)
    return int(got[RARITAN_POWER]) / 10 ** int(got[RARITAN_POWER_DIGITS])


def test_ups_output_is_the_pdus_behind_it_plus_losses_at_input(twin_setup):
    config, svc = twin_setup
    snmp, inv = NetSnmp(), build_inventory(config)
    profiles = {d["name"]: d["profile"] for d in svc.agents.describe()}
    snap = svc.snapshot
    for ups in config.ups:
        racks = {r.rack for r in inv.racks if r.room in ups.rooms}
        pdus = [p.name for p in config.pdus if p.rack in racks]
        pdu_sum = sum(_pdu_power_w(snmp, config, name, profiles[name]) for name in pdus)
        where = target(config, ups.name)
        output = sum(int(v) for v in snmp.bulkwalk(where, UPS_OUTPUT_POWER).values())
        input_w = int(snmp.get(where, XUPS_INPUT_TOTAL)[XUPS_INPUT_TOTAL])
        assert pdu_sum > 50_000  # a loaded hall
        assert output == pytest.approx(pdu_sum, rel=0.01)  # PDU inputs = UPS output (no PDU losses modelled)
        reading = snap.ups[ups.name]
        assert input_w > output  # double conversion loses power
        assert input_w - output == pytest.approx(reading.input_power_w - reading.output_power_w, abs=5)
        assert 0.85 < output / input_w < 0.99


def test_cooling_output_tracks_rack_heat(twin_setup):
    config, svc = twin_setup
    snmp, snap = NetSnmp(), svc.snapshot
    for unit in config.cooling:
        if unit.kind == "chiller":
            continue
        heat_kw = sum(snap.rack_power_w[r] for r in unit.racks) / 1000
        where = target(config, unit.name)
        if unit.kind == "inrow":
            cooling_kw = int(snmp.get(where, INROW_COOL_OUTPUT)[INROW_COOL_OUTPUT]) / 10
        else:  # Liebert: capacity % of the rated capacity
            cooling_kw = int(snmp.get(where, LGP_COOLING_CAPACITY)[LGP_COOLING_CAPACITY]) / 100 * unit.capacity_kw
        # removes the rack heat plus its own fan heat (a few %); % resolution on the Liebert
        assert heat_kw * 0.97 <= cooling_kw <= heat_kw * 1.15 + unit.capacity_kw * 0.01, unit.name


def test_dcim_simulate_serves_and_keeps_secrets_quiet(tmp_path):
    port = free_udp_port("127.80.0.1")
    text = (REPO / "deploy" / "demo.toml").read_text().replace("127.42.", "127.80.").replace("port = 1161",
                                                                                          f"port = {port}")
    cfg_path, secrets_path = tmp_path / "site.toml", tmp_path / "snmp.env"
    cfg_path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in TEST_SECRETS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcim.cli.main", "simulate", "--config", str(cfg_path), "--speed", "60",
         "--duration", "30", "--secrets-file", str(secrets_path), "--slurm-port", "0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "serving, Ctrl-C to stop" in line:
                break
        out = "".join(lines)
        assert f"127.80.1.17:{port}" in out and "raritan_pdu2" in out and "v2c" in out, out
        assert "DCIM_SNMP_AUTH_KEY" in out
        secrets = dict(line.split("=", 1) for line in secrets_path.read_text().split())
        assert set(secrets) == set(TEST_SECRETS) | {"DCIM_SLURM_JWT"}  # the twin's slurmrestd token too
        assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
        assert not any(value in out for value in secrets.values())
        snmp = NetSnmp(auth_key=secrets["DCIM_SNMP_AUTH_KEY"], priv_key=secrets["DCIM_SNMP_PRIV_KEY"],
                       community=secrets["DCIM_SNMP_COMMUNITY"])
        assert snmp.get(f"127.80.2.7:{port}", "1.3.6.1.2.1.1.5.0")["1.3.6.1.2.1.1.5.0"] == "chiller-1"
        assert snmp.get(f"127.80.4.2:{port}", "1.3.6.1.2.1.1.5.0", version="2c")
        proc.send_signal(2)  # Ctrl-C
        rest, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
