"""The code checks the developers' guide asks for, run by the test command (so by CI): ruff and mypy,
with the settings in pyproject.toml ([tool.ruff], [tool.mypy]) and the versions pinned in
constraints.txt. A finding fails the suite with the tool's own report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)


def test_ruff_finds_nothing():
    done = _run([str(BIN / "ruff"), "check", "--no-cache", "."], timeout_s=120)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_mypy_finds_nothing():
    # the packages come from [tool.mypy] files; the cache lives in the (git-ignored) .mypy_cache
    done = _run([str(BIN / "mypy")], timeout_s=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
