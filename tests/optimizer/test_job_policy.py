"""The daemon on real signals only, end to end: a SqliteStore fed GPU telemetry, the scheduler's
workload and jobs' raw progress counters (no work_rate anywhere), caps applied through the
BackendActuator to fake GPUs; each job's true throughput curve is set by the test.

- a job that reports progress is probed and settles on its own measured curve, within its bound
  on the truth, on its own draw (deeper than a job without progress may go);
- a job without progress gets its class's static policy only, labelled so;
- an unknown class is never capped; inference (bound 0) never;
- the control group stays at default; the measured saving (M&V) reaches the store.
"""

from pathlib import Path

import numpy as np
import pytest

from dcim.config import load_config
from dcim.metrics import Point
from dcim.store.sqlite import SqliteStore
from optimizer.actuator import BackendActuator
from optimizer.daemon import OptimizerDaemon
from optimizer.measured_savings import in_control_group, read_measured_saving
from optimizer.static_policy import pessimistic_min_fraction
from tests.optimizer.fakes import FakeGpus

REPO = Path(__file__).resolve().parents[2]
T0 = 1_782_864_000 * 10**9
S = 10**9
CYCLE_S = 60.0
REPORT_S = 10.0
CLASSES = ("training", "batch", "inference", "unknown")
DEMAND_W = {"training": 665.0, "batch": 640.0, "inference": 420.0, "unknown": 600.0}


def truth(frac):  # relative throughput at cap / max; gentler than the pessimistic end
    return np.minimum(1.0, (np.asarray(frac) / 0.92) ** 0.3)


class Site:
    """One job per server (8 GPUs), class by server, 4 of 5 jobs reporting progress."""

    def __init__(self, control_share=0.0, seed=0):
        cfg = load_config(REPO / "deploy" / "demo.toml")
        opt = cfg.optimizer.model_copy(update={"control_share": control_share, "control_seed": 3})
        self.cfg = cfg.model_copy(update={"optimizer": opt})
        self.store = SqliteStore(":memory:")
        self.now = T0
        self.rng = np.random.default_rng(seed)
        hosts = sorted({s.host for s in self.__inventory().gpus})
        self.gpus = {h: FakeGpus(8, host=h) for h in hosts}
        self.jobs = {h: (f"job-{k}", CLASSES[k % 4], k % 5 != 0) for k, h in enumerate(hosts)}
        self.work = {job: 0.0 for job, _, _ in self.jobs.values()}
        self.daemon = OptimizerDaemon(self.cfg, self.store, BackendActuator(self.gpus), clock=lambda: self.now,
                                      mode="enforce")

    def __inventory(self):
        from dcim.inventory import build_inventory
        return build_inventory(self.cfg)

    def step(self):
        pts = []
        for _ in range(int(CYCLE_S / REPORT_S)):
            self.now += int(REPORT_S * S)
            for h, (job, _cls, reports) in self.jobs.items():
                limit = self.gpus[h].limits[0]
                rate = 8 * 5.0 * float(truth(limit / 700.0)) * (1 + 0.03 * self.rng.standard_normal())
                self.work[job] += rate * REPORT_S
                if reports:
                    pts.append(Point("progress", {"site": "daejeon-hub", "job": job, "tenant": "t"},
                                     {"work_done": self.work[job], "unit": "steps"}, self.now))
        for h, (job, cls, _) in self.jobs.items():
            for i, limit in enumerate(self.gpus[h].limits):
                uuid = f"GPU-{h}-{i}"
                power = min(limit, DEMAND_W[cls]) * (1 + 0.005 * self.rng.standard_normal())
                pts.append(Point("gpu", {"site": "daejeon-hub", "room": "hall-1", "rack": "r", "host": h,
                                         "gpu": str(i), "uuid": uuid, "model": "NVIDIA H100 80GB HBM3"},
                                 {"power_w": power, "power_limit_w": limit, "power_limit_min_w": 200.0,
                                  "power_limit_max_w": 700.0, "power_limit_default_w": 700.0, "util_pct": 95.0,
                                  "throttle_reasons": 0x4}, self.now))
                pts.append(Point("workload", {"site": "daejeon-hub", "host": h, "uuid": uuid},
                                 {"job": job, "job_class": cls, "tenant": "t"}, self.now))
        it_w = 512 * 600.0 + 64 * 1500.0
        pts.append(Point("facility", {"site": "daejeon-hub"},
                         {"total_power_w": 1.3 * it_w, "it_power_w": it_w, "outdoor_temp_c": 25.0}, self.now))
        self.store.write(pts)
        return self.daemon.run_once()

    def caps(self, pred):
        return {h: self.gpus[h].limits for h, j in self.jobs.items() if pred(*j)}


@pytest.fixture(scope="module")
def run():
    site = Site(control_share=0.15)
    reports = [site.step() for _ in range(70)]  # 70 minutes at a cycle a minute
    yield site, reports
    site.store.close()


def test_the_daemon_never_reads_a_work_rate(run):
    site, _ = run
    assert not site.store.latest("workload", where={"site": "daejeon-hub"})[0].fields.get("work_rate")
    assert not hasattr(site.daemon.last_fleet, "work_rate")


def test_reporting_jobs_learn_their_own_cap_within_the_bound(run):
    site, _ = run
    # a job without progress may go no deeper than this fraction of the max limit; a job that
    # reports progress is read on its own draw (665 W here) and goes deeper, within its bound
    static_floor = np.ceil(pessimistic_min_fraction("training", 0.05) * 700.0)
    learned = 0
    for h, (job, cls, reports) in site.jobs.items():
        if cls != "training" or not reports or in_control_group(job, 0.15, 3):
            continue
        caps = np.array(site.gpus[h].limits)
        assert np.all(caps == caps[0])  # one cap per job
        assert 0.5 * 700.0 <= caps[0] < static_floor and 1.0 - truth(caps[0] / 700.0) <= 0.05
        assert site.daemon.last_jobs.jobs[job] == "learned"
        learned += 1
    assert learned >= 5


def test_a_job_without_progress_gets_the_static_policy_only(run):
    site, _ = run
    labels = site.daemon.last_jobs.label
    fleet = site.daemon.last_fleet
    for h, (job, cls, reports) in site.jobs.items():
        if reports or in_control_group(job, 0.15, 3) or cls not in ("training", "batch"):
            continue
        want = max(site.cfg.optimizer.static_cap_fraction[cls],
                   pessimistic_min_fraction(cls, site.cfg.optimizer.throughput_loss_bound[cls])) * 700.0
        assert site.gpus[h].limits == [pytest.approx(want)] * 8
        rows = np.flatnonzero(fleet.job == job)
        assert all(str(lbl).startswith("static policy") for lbl in labels[rows])
        assert site.daemon.last_jobs.jobs[job] == "static"


def test_unknown_class_and_inference_are_never_capped(run):
    site, reports = run
    for h, (job, cls, _) in site.jobs.items():
        if cls in ("unknown", "inference"):
            assert site.gpus[h].limits == [700.0] * 8, (job, cls)
    kinds = site.daemon.last_jobs.jobs
    assert any(kinds[j] == "none" for _, (j, c, rep) in site.jobs.items() if c == "unknown" and not rep)
    sets = {(d.host) for r in reports for d in r.decisions if d.action == "set"}
    assert not sets & {h for h, (_, c, _) in site.jobs.items() if c in ("unknown", "inference")}


def test_the_control_group_stays_at_default_and_the_measured_saving_is_stored(run):
    site, reports = run
    control = [h for h, (job, _, _) in site.jobs.items() if in_control_group(job, 0.15, 3)]
    assert len(control) >= 4
    for h in control:
        assert site.gpus[h].limits == [700.0] * 8
    m = read_measured_saving(site.store, "daejeon-hub")
    assert m is not None and m.control_jobs >= 3 and m.ci_low_pct <= m.saving_pct <= m.ci_high_pct
    audit = site.store.query("optimizer", ["reason"], T0, site.now + 1, agg="count", group_by=["action"])
    assert "measured" in {s.tags["action"] for s in audit}


def test_every_decision_says_why(run):
    site, reports = run
    reasons = " | ".join(d.reason for r in reports for d in r.decisions)
    for phrase in ("static policy", "probing", "learned curve n="):
        assert phrase in reasons, phrase
    labels = set(site.daemon.last_jobs.label.tolist())  # held at default: no decision, but a reason
    assert "control group (M&V): held at default" in labels
    assert "no progress and class unknown: not capped" in labels
