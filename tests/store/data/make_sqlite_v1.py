"""Make ``sqlite_v1.sqlite.gz`` (a store file in the layout before PRAGMA user_version) and
``sqlite_v1_answers.json`` (what the code of that time answered from it), with the SQLite store
of commit cbdf83c. Run from the repository root (needs the git history):

    .venv/bin/python tests/store/data/make_sqlite_v1.py

The points come from ``tests.store.test_sqlite_migration.points`` (deterministic), so the
test can also check the upgraded file against the points themselves.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.store.test_sqlite_migration import ANSWERS, FILE, NOW_NS, answers, points  # noqa: E402


def old_store_class():
    source = subprocess.run(["git", "show", "cbdf83c:dcim/store/sqlite.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "sqlite_cbdf83c.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sqlite_cbdf83c", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SqliteStore


def main() -> None:
    OldStore = old_store_class()
    plain = Path(tempfile.mkdtemp()) / "sqlite_v1.sqlite"
    store = OldStore(plain, raw_retention_days=2, rollup_1m_retention_days=2, timezone="Asia/Seoul")
    store.write(points())
    store.maintain(now_ns=NOW_NS)
    store.close()
    store = OldStore(plain, readonly=True, timezone="Asia/Seoul")
    ANSWERS.write_text(json.dumps(answers(store), indent=1, sort_keys=True) + "\n")
    store.close()
    import sqlite3

    con = sqlite3.connect(plain)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute("VACUUM")
    con.close()
    with plain.open("rb") as src, gzip.GzipFile(FILE, "wb", compresslevel=9, mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    print(FILE, plain.stat().st_size, "bytes,", FILE.stat().st_size, "gzipped")


if __name__ == "__main__":
    main()
