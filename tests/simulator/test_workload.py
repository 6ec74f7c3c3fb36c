"""Power caps slow whole jobs down as the published sweeps say; placement is pluggable.

Expected slowdowns are the published rows themselves (docs/published-capping.md), not the
code's outputs. A sweep row gives a job's average power and time per limit; the power ratio
(capped ÷ default-limit power) is the job's own axis, so the test caps a twin job at that ratio
of its own draw and expects the row's slowdown: Zeus NSDI'23 A40 ResNet-50 b128 at 200 W
(179.23 of 244.26 W, 1.0676× time) at the optimistic end, Sentiment140 BERT b128 at 200 W
(196.07 of 274.61 W, 1.1121×) at the pessimistic end. H100 copy kernels draw ~402 W, so
memory-bound work is untouched above that (Ma et al.: no cap above the decode draw binds).
"""

from __future__ import annotations

import pytest

from simulator.facility import FacilityTwin
from tests.simulator.conftest import JAN_NS

H100_FULL_DUTY_W = 700.0  # measured: GEMM at duty 1.0 sits on the 700 W limit
H100_COPY_FULL_W = 402.0  # measured: memory-bound copy at duty 1.0


def _run_job(config, job_class, cap_w, util=1.0, gpus=8, hours=1.0, dt=10.0, start_ns=JAN_NS,
             curve_end="spread"):
    """Duration (s) and mean GPU power (W) of one job alone in the facility under *cap_w*."""
    twin = FacilityTwin(config, seed=3, start_ns=start_ns, arrivals=False, curve_end=curve_end)
    job = twin.submit_job(job_class=job_class, tenant="hanbit-univ", gpus=gpus, work_gpu_s=gpus * hours * 3600,
                          util=util)
    assert job.start_ns is not None
    for pos in job.slots:
        slot = twin.slots[pos]
        twin.set_power_limit(slot.host, slot.index, cap_w)
    power = []
    while job.end_ns is None:
        twin.advance(dt)
        if job.end_ns is None:
            power.append(twin.gpu_state.power_w[job.slots].mean())
        assert twin.now_ns - start_ns < 5 * hours * 3600e9
    return (job.end_ns - job.start_ns) / 1e9, sum(power) / len(power)


@pytest.mark.parametrize("job_class, curve_end, capped_w, default_w, published_slowdown", [
    ("training", "optimistic", 179.23, 244.26, 1.0676),  # Zeus A40 ResNet-50 b128, 200 W row
    ("batch", "optimistic", 179.23, 244.26, 1.0676),
    ("training", "pessimistic", 196.07, 274.61, 1.1121),  # Zeus A40 Sentiment140 BERT b128, 200 W row
    ("fine_tuning", "pessimistic", 196.07, 274.61, 1.1121),
])
def test_caps_lengthen_compute_bound_jobs_as_published(demo_config, job_class, curve_end, capped_w, default_w,
                                                       published_slowdown):
    base_s, base_w = _run_job(demo_config, job_class, 700.0, curve_end=curve_end)
    assert base_w > 650  # a full-duty compute job sits near the 700 W limit
    cap_w = round(capped_w / default_w * base_w)  # the row's power ratio, of this job's own draw
    capped_s, mean_w = _run_job(demo_config, job_class, cap_w, curve_end=curve_end)
    assert mean_w <= cap_w + 0.001 < base_w
    assert capped_s / base_s == pytest.approx(published_slowdown, rel=0.01)


def test_the_cap_as_a_fraction_of_max_is_not_a_fraction_of_the_draw(demo_config):
    """The axis the old twin got wrong: Zeus's A40 median is 1.05× time at 200 of 300 W. Applied
    as 2/3 of an H100 job's own ~700 W draw it is a much deeper cut than the sweep made (its jobs
    drew ~80 % of their 300 W limit), and the twin must say so: far more than 5 % slower."""
    base_s, _ = _run_job(demo_config, "training", 700.0, curve_end="optimistic")
    capped_s, _ = _run_job(demo_config, "training", 700.0 * 200 / 300, curve_end="optimistic")
    assert capped_s / base_s > 1.10


def test_memory_bound_inference_loses_nothing_above_its_draw_and_as_published_below(demo_config):
    # Around 15:00 KST (06:00 UTC) the daily request rhythm is at its flat peak, so the draw is
    # the full-duty copy draw for the whole half hour.
    peak_ns = JAN_NS + 6 * 3600 * 10**9 - 15 * 60 * 10**9
    base_s, base_w = _run_job(demo_config, "inference", 700.0, hours=0.5, start_ns=peak_ns)
    assert H100_COPY_FULL_W - 10 < base_w < H100_COPY_FULL_W + 1
    above_s, _ = _run_job(demo_config, "inference", 450.0, hours=0.5, start_ns=peak_ns)
    assert above_s - base_s <= 10.0  # one 10 s step at most: only the clipped bursts
    # Samsi et al. (words to watts): 175 of 250 W → 1.065× latency at −23 % energy, i.e. a power
    # ratio of 0.77 / 1.065 = 0.723 of the job's draw. At that ratio on the optimistic end the
    # twin is within the table's tolerance for that row (docs/published-capping.md: 0.03 in
    # energy, which is 0.035 in slowdown here).
    ratio = 0.77 / 1.065
    low_s, low_w = _run_job(demo_config, "inference", ratio * base_w, hours=0.5, start_ns=peak_ns,
                            curve_end="optimistic")
    assert low_w <= ratio * base_w + 0.001
    assert low_s / base_s == pytest.approx(1.065, abs=0.035)


def test_placement_hook_is_used_and_checked(demo_config):
    seen = []

    def last_fit(free, job):
        seen.append((len(free), job.id))
        return list(free)[-job.gpus:]

    twin = FacilityTwin(demo_config, seed=5, start_ns=JAN_NS, arrivals=False, placement=last_fit)
    job = twin.submit_job(job_class="batch", tenant="neuron-labs", gpus=2, work_gpu_s=7200, util=0.9)
    assert seen and job.start_ns is not None
    racks = {twin.slots[p].rack for p in job.slots}
    assert racks == {"D04"}  # last free slots of the tenant's racks
    # Tenancy: only the tenant's racks were offered.
    assert seen[0][0] == 128

    def bad(free, job):
        return list(free)[:1]  # wrong size: the twin falls back to first-fit

    twin2 = FacilityTwin(demo_config, seed=5, start_ns=JAN_NS, arrivals=False, placement=bad)
    job2 = twin2.submit_job(job_class="batch", tenant="neuron-labs", gpus=2, work_gpu_s=7200, util=0.9)
    assert len(job2.slots) == 2


def test_workload_exposes_jobs_per_gpu_and_keeps_running(demo_config):
    twin = FacilityTwin(demo_config, seed=11, start_ns=JAN_NS)
    assert 0.5 < twin.workload.busy.mean() <= 1.0
    for _ in range(48 * 12):
        twin.advance(300.0)
    wl = twin.workload
    assert wl.finished > 20
    assert 0.3 < wl.busy.mean() <= 1.0
    classes = {j.job_class for j in wl.jobs.values()}
    assert len(classes) >= 3
    tenants = {j.tenant for j in wl.jobs.values()}
    assert tenants <= {t.name for t in demo_config.tenants}
    for job in wl.jobs.values():  # jobs sit on their tenant's racks
        assert {twin.slots[p].tenant for p in job.slots} == {job.tenant}


@pytest.mark.parametrize("prolog", [False, True])
def test_job_start_hook_resets_the_inherited_cap(demo_config, prolog):
    """The scheduler's prolog (``reset_caps_on_job_start``): a job landing on a GPU still capped
    for the previous job starts at the default limit; without it the cap is inherited."""
    started = []
    twin = FacilityTwin(demo_config, seed=5, start_ns=JAN_NS, arrivals=False, reset_caps_on_job_start=prolog,
                        on_job_start=started.append)
    first = twin.submit_job(job_class="training", tenant="hanbit-univ", gpus=8, work_gpu_s=8 * 120, util=0.95)
    assert started == [first]
    for pos in first.slots:
        twin.set_power_limit(twin.slots[pos].host, twin.slots[pos].index, 400.0)
    while first.end_ns is None:
        twin.advance(60.0)
    second = twin.submit_job(job_class="batch", tenant="hanbit-univ", gpus=8, work_gpu_s=8 * 3600, util=0.95)
    assert started == [first, second] and second.slots == first.slots
    twin.advance(60.0)
    caps = twin.gpu_state.cap_w[second.slots]
    if prolog:
        assert (caps == twin.constraints.default_w).all()
        assert twin.gpu_state.throughput[second.slots].min() == 1.0  # runs uncapped from its first step
    else:
        assert (caps == 400.0).all()
        assert twin.gpu_state.throughput[second.slots].max() < 0.95
