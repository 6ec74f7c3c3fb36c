"""deploy/systemd/dcim-exporter.service: systemd's own verifier finds nothing wrong with it but
the binary this box lacks (as for the other units), its command line is one dcim's parser
accepts, and it is hardened as the other read-only services are."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = UNITS / "dcim-exporter.service"


def sections(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_verifies_the_unit():
    done = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if line.strip() and "/opt/dcim/.venv/bin/dcim is not executable" not in line]
    assert complaints == []


def test_the_command_is_dcim_exporter_with_the_sites_config():
    from dcim.cli.main import build_parser

    argv = shlex.split(sections(UNIT)["Service"]["ExecStart"])
    assert argv[0] == "/opt/dcim/.venv/bin/dcim"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "exporter" and args.config == "/etc/dcim/dcim.toml"
    assert args.port is None and args.host is None          # from [exporter] in the TOML


def test_hardened_as_the_dashboard():
    mine, dashboard = sections(UNIT)["Service"], sections(UNITS / "dcim-dashboard.service")["Service"]
    skip = {"ExecStart", "EnvironmentFile"}
    assert {k: v for k, v in mine.items() if k not in skip} == {k: v for k, v in dashboard.items() if k not in skip}
