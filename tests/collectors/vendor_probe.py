"""Shared by the test_snmp_vendor_*.py files: read one real-walk fixture the way an operator
does, with `dcim probe` over real UDP against snmpsim, and return what it decoded."""

from __future__ import annotations

import json
import re

from dcim.cli.main import main


def probe(agent, community: str, capsys, kind: str | None = None) -> tuple[str, dict[tuple, dict]]:
    """(profile picked under auto-detection, {(measurement, row tag or None): fields}); the row
    tag is the phase, outlet, breaker or sensor, else a cooling unit named by a table row. An env
    sensor's or a row unit's tag is given as "dev" or "dev-<row>"; a unit that is the device
    itself (no row) keys as None."""
    target = f"{agent.host}:{agent.port}"
    extra = ["--kind", kind] if kind else []
    capsys.readouterr()
    assert main(["probe", target, "--community", community, *extra]) == 0
    table = capsys.readouterr().out
    found = re.search(r"profile (\S+):", table)
    assert found, table
    device = re.search(r"^device\s+(.*) at ", table, re.M).group(1)   # sysName, else the address
    assert main(["probe", target, "--community", community, "--format", "json", *extra]) == 0
    points: dict[tuple, dict] = {}
    for line in capsys.readouterr().out.splitlines():
        p = json.loads(line)
        tags = p["tags"]
        row = next((tags[t] for t in ("phase", "outlet", "breaker", "sensor") if t in tags), None)
        if "sensor" in tags:  # probe names the device after its address (the walks carry no sysName)
            row = "dev" + row[len(agent.host):] if row.startswith(agent.host) else row
        elif row is None and tags.get("unit", device) != device:
            # a cooling unit named by a table row, "<device>-<row>" (one board serving units 1..n)
            row = "dev" + tags["unit"][len(device):] if tags["unit"].startswith(device + "-") else tags["unit"]
        key = (p["measurement"], row)
        assert key not in points, f"two points for {key}: rows collide"
        points[key] = p["fields"]
    return found.group(1), points


def count_fields(points: dict[tuple, dict]) -> int:
    return sum(len(f) for f in points.values())
