"""Shared test fixtures. Fixtures for real servers live in tests/fixtures/ and are loaded here."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

pytest_plugins = [
    f"tests.fixtures.{p.stem}" for p in sorted((REPO / "tests" / "fixtures").glob("*.py")) if p.stem != "__init__"
]


@pytest.fixture
def demo_config():
    from dcim.config import load_config

    return load_config(REPO / "deploy" / "demo.toml")
