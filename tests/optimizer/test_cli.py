"""dcim optimize --once / dcim pue train|evaluate against a small twin history."""

import time
from pathlib import Path

import pytest

from dcim.cli.main import main
from dcim.config import load_config
from dcim.store.sqlite import SqliteStore

simulator = pytest.importorskip("simulator.facility")
REPO = Path(__file__).resolve().parents[2]


def test_pue_train_evaluate_and_optimize_once(tmp_path, capsys):
    db, model = tmp_path / "dcim.sqlite", tmp_path / "pue.pkl"
    text = (REPO / "deploy" / "demo.toml").read_text()
    text = text.replace('path = "var/dcim.sqlite"', f'path = "{db}"').replace("raw_retention_days = 7",
                                                                            "raw_retention_days = 30")
    text = text.replace('[optimizer]\nmode = "enforce"', f'[optimizer]\nmode = "enforce"\nmodel_path = "{model}"')
    conf = tmp_path / "dcim.toml"
    conf.write_text(text)
    cfg = load_config(conf)
    now = time.time_ns()
    twin = simulator.FacilityTwin(cfg, seed=3, start_ns=now - 4 * 86400 * 10**9)
    with SqliteStore(db, raw_retention_days=30) as store:
        batch = []
        while twin.now_ns < now - 3600 * 10**9:
            twin.advance(3600)
            batch += twin.points(include_gpus=False)
        twin.advance((now - twin.now_ns) / 1e9)
        batch += twin.points()
        store.write(batch)
    assert main(["pue", "train", "--config", str(conf), "--days", "5", "--every", "3600"]) == 0
    out = capsys.readouterr().out
    assert "MAPE" in out and "hold-out" in out and model.exists()
    assert main(["pue", "evaluate", "--config", str(conf), "--every", "3600"]) == 0
    assert "features" in capsys.readouterr().out
    assert main(["optimize", "--config", str(conf), "--once", "--mode", "advise", "--state-file",
                 str(tmp_path / "ds.json"), "--publish", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mode advise" in out and " advise " in out
    assert "DRY scontrol update NodeName=" in out
