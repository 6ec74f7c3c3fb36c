"""Real-device walks (snmprec) the vendor tests serve over snmpsim; see ../test_snmp_vendor_*.py."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def walk_lines(rel: str) -> list[str]:
    """The data lines of a fixture (comments, which name the device it came from, dropped)."""
    text = (HERE / rel).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def serve(agent, rel: str) -> str:
    """Serve the fixture on a fresh snmpsim community (real UDP) and return the community."""
    return agent.synthetic(walk_lines(rel))
