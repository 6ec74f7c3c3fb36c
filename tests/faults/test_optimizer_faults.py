"""Optimizer faults not already covered by tests/optimizer (which has: stale telemetry, an apply
error rolled back, mode off, and `kill -9` of a real `dcim optimize` process in
test_twin.py::test_kill_minus_9_of_a_real_daemon_process, marked slow).

Here: no telemetry at all; a model file that does not load; a model that raises; the store
down for longer than the lease. Each time: no cap outside the GPUs' constraints or beyond the
step bound, caps revert after their lease, and every change the GPUs saw (read from the twin,
not from the daemon's report) has its audit record in the store.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dcim.store.base import Store, StoreUnavailable
from dcim.store.sqlite import SqliteStore

twin_tests = pytest.importorskip("tests.optimizer.test_twin")
rig, step, caps = twin_tests.rig, twin_tests.step, twin_tests.caps

MIN_W, MAX_W = 200.0, 700.0
S = 10**9


@pytest.fixture(scope="module")
def cfg():
    from dcim.config import load_config
    from tests.faults.conftest import REPO

    return load_config(REPO / "deploy" / "demo.toml")


class SwitchableStore(Store):
    """A real SqliteStore that the test can take down (every call raises StoreUnavailable)."""

    def __init__(self):
        self.inner = SqliteStore(":memory:")
        self.down = False

    def _check(self):
        if self.down:
            raise StoreUnavailable("store down for the test")

    def write(self, points):
        self._check()
        self.inner.write(points)

    def query(self, *a, **k):
        self._check()
        return self.inner.query(*a, **k)

    def latest(self, *a, **k):
        self._check()
        return self.inner.latest(*a, **k)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Audit:
    """Checks every cap change the twin's GPUs saw against the optimizer points in the store."""

    def __init__(self, twin, daemon):
        self.twin, self.daemon = twin, daemon
        self.changes: list[tuple[int, str, float]] = []  # (cycle time, uuid, new limit)

    def cycle(self):
        before = caps(self.twin).copy()
        now = self.twin.now_ns
        report = self.daemon.run_once()
        after = caps(self.twin)
        assert np.all((after >= MIN_W) & (after <= MAX_W)), "a cap outside the constraints"
        lowered = before - after
        assert np.all(lowered <= self.daemon.settings.max_step_w + 1e-6), "a step deeper than max_step_w"
        for i in np.flatnonzero(np.abs(after - before) > 0.5):
            self.changes.append((now, self.twin.uuids[i], float(after[i])))
        return report

    def check(self, store):
        audited = {}
        for series in store.query("optimizer", ["power_limit_w"], 0, 2**62, every_s=1, agg="last",
                                  group_by=["uuid", "action"]):
            if series.tags["action"] in ("set", "revert", "rollback"):
                for t, v in zip(series.times_ns, series.values["power_limit_w"]):
                    audited.setdefault(series.tags["uuid"], []).append((t, v))
        missing = [(t, u, w) for t, u, w in self.changes
                   if not any(abs(v - w) < 0.6 and abs(at - t) < S for at, v in audited.get(u, []))]
        assert self.changes, "the scenario changed no cap: it tests nothing"
        assert not missing, f"{len(missing)} of {len(self.changes)} cap changes not audited, e.g. {missing[:3]}"


def test_no_telemetry_at_all_holds_and_is_audited(cfg):
    twin, store, act, daemon = rig(cfg)
    twin.advance(120)  # time passes, nothing was ever written
    report = daemon.run_once()
    assert report.held.startswith("hold: no GPU telemetry")
    assert np.all(caps(twin) == MAX_W) and not act.desired.leases()
    assert [p.tags["action"] for p in store.latest("optimizer")] == ["hold"]


def test_model_file_that_does_not_load_is_no_model(tmp_path, caplog):
    from optimizer.pue_model import load_model

    caplog.set_level(logging.WARNING)
    for i, blob in enumerate((b"", b"not a pickle at all", b"\x80\x04\x95garbage", b"\x80\x04N.")):
        path = tmp_path / f"model{i}.pkl"
        path.write_bytes(blob)
        assert load_model(path) is None, blob
    assert load_model(tmp_path / "absent.pkl") is None


class BrokenModel:
    """A model that loaded but fails at every use (a version mismatch, a corrupt estimator)."""

    features = ["it_power_kw"]

    def out_of_range(self, row):
        return []

    def predict(self, rows):
        raise ValueError("estimator exploded")

    def facility_power_w(self, row, it_power_w):
        raise ValueError("estimator exploded")


def test_a_model_that_raises_keeps_the_safe_path(cfg):
    from optimizer.daemon import OptimizerDaemon

    twin, store, act, _ = rig(cfg)
    daemon = OptimizerDaemon(cfg, store, act, clock=lambda: twin.now_ns, model=BrokenModel(), learn_curves=False)
    audit = Audit(twin, daemon)
    for _ in range(3):
        step(twin, store)
        report = audit.cycle()
        assert report.conservative and report.predicted_pue is None
    assert (caps(twin) < MAX_W).any()  # it still acts, conservatively
    twin.advance(cfg.optimizer.lease_s + 1)
    store.write(twin.points())
    audit.cycle()
    audit.check(store)


def test_store_down_longer_than_the_lease(cfg):
    twin, _, act, _ = rig(cfg)
    from optimizer.daemon import OptimizerDaemon

    store = SwitchableStore()
    daemon = OptimizerDaemon(cfg, store, act, clock=lambda: twin.now_ns, learn_curves=False)
    audit = Audit(twin, daemon)
    for _ in range(3):
        step(twin, store)
        audit.cycle()
    capped = caps(twin) < MAX_W
    assert capped.any()
    # the store goes down: the collectors cannot write, the daemon cannot read or audit
    store.down = True
    t_end = twin.now_ns + int((cfg.optimizer.lease_s + 120) * S)
    while twin.now_ns < t_end:
        twin.advance(60)
        audit.cycle()
    # leases lapsed while the store was down: every GPU is back at its default, none is capped
    assert np.all(caps(twin) == MAX_W) and not act.desired.leases()
    # the store comes back: the collectors write again, and the daemon's audit catches up
    store.down = False
    step(twin, store)
    audit.cycle()
    audit.check(store)
    reverts = [p for p in store.latest("optimizer", where={"action": "revert"})]
    assert len(reverts) >= int(capped.sum())
