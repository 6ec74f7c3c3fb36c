"""Per-job curve learning from noisy progress counters (optimizer/job_curves.py).

Each test sets a job's true throughput-vs-cap curve itself, runs the job as a real one reports:
a raw ``work_done`` counter posted every 10 s with ±3 % (1 σ) noise on the rate of each interval,
and checks what the learner decides against that truth (computed here, never by the code). The
last tests run jobs on the twin's own hidden curves (simulator/capping_curves.py, both ends of
the published spread) with their GPUs' demand jittering, and grade every cycle on that truth."""

import math

import numpy as np
import pytest

from optimizer.job_curves import DRIFT_SAMPLES, JobCurves, JobView
from optimizer.static_policy import pessimistic_min_fraction
from simulator import capping_curves

S = 10**9
MAX_W = 700.0
HOST_W = 150.0
CYCLE_S = 60.0
REPORT_S = 10.0
BOUND = 0.05


class SynthJob:
    """A job on *gpus* GPUs whose rate per GPU at cap c is ``base × truth(c / MAX_W)``; it draws
    ``min(c, demand_w)`` per GPU and reports its raw counter every REPORT_S."""

    def __init__(self, truth, *, seed, base=3.0, demand_w=665.0, gpus=8, noise=0.03):
        self.truth, self.base, self.demand_w, self.gpus, self.noise = truth, base, demand_w, gpus, noise
        self.rng = np.random.default_rng(seed)
        self.t_ns = 1_780_000_000 * S
        self.work = 0.0
        self.last = None

    def run(self, cap_w, seconds):
        for _ in range(int(seconds / REPORT_S)):
            rate = self.base * self.truth(cap_w / MAX_W) * (1.0 + self.noise * self.rng.standard_normal())
            self.work += max(rate, 0.0) * self.gpus * REPORT_S
            self.t_ns += int(REPORT_S * S)
            self.last = (self.t_ns, self.work)
        return self.last

    def view(self, cap_w, floor_w):
        power = min(cap_w, self.demand_w) * (1.0 + 0.005 * self.rng.standard_normal())
        return JobView("j1", "training", BOUND, self.gpus, cap_w, power, HOST_W, MAX_W, MAX_W, floor_w)


def floor_w():  # the policy floor (cap_fraction_floor 0.5 of max); the published spread is the learner's
    return math.ceil(0.5 * MAX_W)


def static_floor_w():  # how deep a job WITHOUT progress may go (a fraction of the max limit)
    return math.ceil(pessimistic_min_fraction("training", BOUND) * MAX_W)


def bert_ratio_at_loss(loss):
    """Power ratio (own draw) at which Zeus's A40 BERT sweep loses *loss*, by linear
    interpolation between its published rows (limit W, time s, power W), read here from the rows."""
    rows = ((300, 2002.34, 274.61), (250, 2079.35, 241.47), (200, 2226.90, 196.07))
    xs = [p / rows[0][2] for _, _, p in rows]
    rs = [rows[0][1] / t for _, t, _ in rows]
    return float(np.interp(1.0 - loss, rs[::-1], xs[::-1]))


def drive(job, cycles, *, curves=None, cap=MAX_W, apply=True, trace=None):
    """Run *cycles* daemon cycles; the decided target is applied before the next (as enforce
    does, one bounded step). Returns the learner and the last decision."""
    curves = curves or JobCurves(probe_step_w=50.0)
    d = None
    for _ in range(cycles):
        report = job.run(cap, CYCLE_S)
        view = job.view(cap, floor_w())
        sample = curves.sample(job.t_ns, view, report)
        d = curves.decide(view, sample)
        if apply:  # the daemon's rail: one bounded step per cycle (power_caps.decide_caps)
            cap = min(max(d.target_w, cap - 50.0), cap + 50.0)
        if trace is not None:
            trace.append((cap, d.label))
    return curves, d, cap


def gentle(f):  # loses 1.2 % at 600 W, 1.5 % at 593 W (the floor): every probe is within 5 %
    return min(1.0, (f / 0.9) ** 0.25)


def steep(f):  # steeper than anything published: 1.8 % at 650 W, 7.9 % at 600 W
    return min(1.0, (f / 0.95) ** 0.8)


def true_energy_per_work(truth, cap_w, demand_w=665.0):
    return (min(cap_w, demand_w) + HOST_W) / truth(cap_w / MAX_W)


@pytest.mark.parametrize("seed", range(6))
def test_learning_from_noisy_progress_settles_within_the_bound(seed):
    job = SynthJob(gentle, seed=seed)
    trace = []
    curves, d, cap = drive(job, 60, trace=trace)
    assert d.learned and d.label.startswith("learned curve n=")
    # it found a saving, deeper than a job without progress may go (its own draw, 665 W, is the
    # published sweeps' axis, not the 700 W max), never below the policy floor
    assert floor_w() <= cap < static_floor_w()
    assert 1.0 - gentle(cap / MAX_W) <= BOUND
    # every cap it ran at was within the bound on the truth
    assert min(c for c, _ in trace) >= floor_w()
    assert all(1.0 - gentle(c / MAX_W) <= BOUND for c, _ in trace)
    # the choice is (near) the most efficient of the probed levels clearly inside the bound on the
    # truth (2 pt: ~3 standard errors of what 8 noisy samples against 6 at default can prove)
    probed = sorted({c for c, _ in trace if 1.0 - gentle(c / MAX_W) <= BOUND - 0.02})
    best = min(true_energy_per_work(gentle, c) for c in probed)
    assert true_energy_per_work(gentle, cap) <= 1.01 * best
    assert any(lbl.startswith("probing") for _, lbl in trace)


@pytest.mark.parametrize("seed", range(6))
def test_a_job_steeper_than_published_stops_probing_and_keeps_its_bound(seed):
    job = SynthJob(steep, seed=seed)
    trace = []
    curves, d, cap = drive(job, 40, trace=trace)
    assert d.learned
    assert 1.0 - steep(cap / MAX_W) <= BOUND  # settled within the bound on the truth
    assert cap >= 650.0
    # the published sweeps said the first probe was safe; it was not for this job: the levels
    # over its bound were left as soon as the evidence showed it, a few cycles in all
    over = sum(1 for c, _ in trace if 1.0 - steep(c / MAX_W) > BOUND)
    assert over <= 8
    # nothing deeper than the first probe (the published sweeps' loss bound on its own draw)
    assert min(c for c, _ in trace) >= math.floor(bert_ratio_at_loss(BOUND - 0.005) * job.demand_w)


def test_counter_reset_loses_an_interval_not_the_rate():
    job = SynthJob(gentle, seed=1, noise=0.0)
    curves, d, cap = drive(job, 3)
    job.work = 10.0  # the job restarted from an early checkpoint: its counter went back
    curves, d, cap = drive(job, 3, curves=curves, cap=cap)
    sampler = curves.samplers["j1"]
    assert sampler.resets == 1
    rates = [r for lv in curves.curves["j1"].levels.values() for r in lv.rates]
    assert rates and np.allclose(rates, job.base * gentle(1.0))  # no negative or huge sample


def test_a_sample_never_straddles_a_cap_change():
    job = SynthJob(steep, seed=2, noise=0.0)
    curves, d, cap = drive(job, 25)
    for level, lv in curves.curves["j1"].levels.items():
        assert np.allclose(lv.rates, job.base * steep(level / MAX_W)), level


def test_drift_at_the_settled_cap_reprobes_and_noise_alone_does_not():
    job = SynthJob(gentle, seed=3)
    curves, d, cap = drive(job, 40)
    assert d.learned
    curves, d, cap = drive(job, 120, curves=curves, cap=cap)  # two more hours of noise only
    assert curves.curves["j1"].reprobes == 0 and d.learned
    job.base *= 0.8  # the job changed (a new phase): 20 % slower at every cap
    trace = []
    curves, d, cap = drive(job, DRIFT_SAMPLES + 3, curves=curves, cap=cap, trace=trace)
    assert curves.curves["j1"].reprobes == 1
    assert any("baseline" in lbl for _, lbl in trace)


def test_advise_mode_keeps_probing_and_says_so():
    job = SynthJob(gentle, seed=4)
    curves, d, cap = drive(job, 20, apply=False)  # nobody applies the advice: the limit stays
    assert cap == MAX_W and not d.learned
    # the first probe: where the steepest published sweep loses the bound less the 0.5 pt
    # margin, on the job's own draw (665 W, read with its jitter: a few W above)
    low = bert_ratio_at_loss(BOUND - 0.005) * job.demand_w
    assert low <= d.target_w <= low * 1.03
    assert d.label.startswith(f"probing: {d.target_w:.0f} W 0/")


def test_bound_zero_is_never_capped():
    job = SynthJob(gentle, seed=5)
    curves = JobCurves(probe_step_w=50.0)
    cap = MAX_W
    for _ in range(15):
        report = job.run(cap, CYCLE_S)
        view = JobView("j1", "inference", 0.0, 8, cap, 400.0, HOST_W, MAX_W, MAX_W,
                       math.ceil(pessimistic_min_fraction("inference", 0.0) * MAX_W))
        d = curves.decide(view, curves.sample(job.t_ns, view, report))
        cap = d.target_w
        assert cap == MAX_W
    assert not d.learned and d.label.startswith("not capped")


class TwinJob:
    """A job on the twin's own hidden curve (simulator/capping_curves.JobCurve): each GPU's demand
    jitters around the job's mean at every report (σ *jitter_w*, as the twin's utilisation does),
    a synchronous job runs at its slowest GPU, it reports one raw counter per cycle (the harshest
    reading of ±3 % per report: the benchmark's). ``worst_loss`` is the truth graded at each report."""

    def __init__(self, u, *, seed, demand_w, gpus, burst=0.05, jitter_w=10.0, noise=0.03, report_s=CYCLE_S):
        self.curve = capping_curves.JobCurve("training", u, burst)
        self.demand_w, self.gpus, self.jitter_w, self.noise, self.report_s = demand_w, gpus, jitter_w, noise, report_s
        self.rng = np.random.default_rng(seed)
        self.t_ns = 1_780_000_000 * S
        self.work = 0.0
        self.worst_loss = 0.0
        self.power = np.full(gpus, demand_w)

    def run(self, cap_w, seconds):
        for _ in range(max(1, int(seconds / self.report_s))):
            d = self.demand_w + self.jitter_w * self.rng.standard_normal(self.gpus)
            r = float(np.min(self.curve.throughput(cap_w, d)))
            self.worst_loss = max(self.worst_loss, 1.0 - r)
            self.power = self.curve.power_w(cap_w, d)
            self.work += 2.0 * r * self.gpus * self.report_s * (1.0 + self.noise * self.rng.standard_normal())
            self.t_ns += int(self.report_s * S)
        return self.t_ns, self.work

    def view(self, cap_w, floor_w):
        return JobView("j1", "training", BOUND, self.gpus, cap_w, float(self.power.mean()), HOST_W, MAX_W, MAX_W,
                       floor_w, float(self.power.max()))


@pytest.mark.parametrize("u", [0.0, 1.0])  # the gentlest and the steepest published sweep
@pytest.mark.parametrize("gpus,demand_w,jitter_w", [(1, 610.0, 10.0), (8, 640.0, 10.0), (64, 680.0, 5.0)])
@pytest.mark.parametrize("seed", range(3))
def test_on_the_twins_curves_no_cycle_is_over_the_bound(u, gpus, demand_w, jitter_w, seed):
    job = TwinJob(u, seed=seed, demand_w=demand_w, gpus=gpus, jitter_w=jitter_w)
    worst = []
    cap = MAX_W
    curves = JobCurves(probe_step_w=50.0)
    for _ in range(150):  # 12.5 h at one report a cycle
        job.worst_loss = 0.0
        curves, d, cap = drive(job, 1, curves=curves, cap=cap)
        worst.append(job.worst_loss)
    assert max(worst) <= BOUND + 0.001  # the benchmark's grading: every step, 0.1 pt slack
    assert d.learned and cap < demand_w * 0.92  # and it saves: at least 8 % of the job's own draw
    # the steepest sweep's job ends where that sweep loses the bound on its own draw, read a few
    # jitters high (a step when its hungriest GPU draws more must hold the bound too)
    if u == 1.0:
        assert bert_ratio_at_loss(BOUND) * demand_w * 0.99 <= cap
        assert cap <= bert_ratio_at_loss(BOUND - 0.005) * (demand_w + 5.0 * jitter_w)


def test_precise_progress_steps_below_the_published_bound_in_bounded_steps():
    # the gentlest sweep's job with a precise counter (reports every 10 s, ±1 %): its own samples
    # prove room below the first probe (where the steepest published sweep would stop), so it
    # steps down, a bounded step at a time, and never over its bound on the truth
    job = TwinJob(0.0, seed=7, demand_w=680.0, gpus=8, jitter_w=5.0, noise=0.01, report_s=REPORT_S)
    trace = []
    curves, d, cap = drive(job, 240, trace=trace)
    caps = [c for c, _ in trace]
    first = next(float(lbl.split()[1]) for _, lbl in trace if lbl.startswith("probing: ") and " W " in lbl)
    assert first <= bert_ratio_at_loss(BOUND - 0.005) * (680.0 + 4 * 5.0)  # the published bound, own draw
    assert min(caps) <= first - 20.0 and d.learned and cap <= first - 20.0
    assert job.worst_loss <= BOUND + 0.001
    below = sorted({c for c in caps if c < first}, reverse=True)
    assert np.all(-np.diff([first] + below) <= 50.0 + 1e-9)  # each step down at most probe_step_w


def test_a_cap_is_read_against_the_jobs_hungriest_gpu():
    # two 8-GPU jobs with the same mean draw (600 W): one's GPUs spread wide (its top GPU draws
    # 640 W), the other's tight. A synchronous job runs at its slowest GPU: the wide one's first
    # probe is read against its top GPU, so it sits higher, at or above the published bound there
    targets = {}
    for name, top, sd in (("wide", 640.0, 20.0), ("tight", 604.0, 2.0)):
        curves = JobCurves(probe_step_w=50.0)
        t, work = 1_780_000_000 * S, 0.0
        for _ in range(10):
            t, work = t + int(CYCLE_S * S), work + 8 * 3.0 * CYCLE_S
            view = JobView(name, "training", BOUND, 8, MAX_W, 600.0, HOST_W, MAX_W, MAX_W, floor_w(), top, sd)
            d = curves.decide(view, curves.sample(t, view, (t, work)))
        assert d.label.startswith("probing: ") and d.target_w < 600.0
        targets[name] = d.target_w
        assert d.target_w >= bert_ratio_at_loss(BOUND - 0.005) * top
    assert targets["wide"] >= targets["tight"] + 30.0
