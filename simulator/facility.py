"""The facility twin: steps workload, GPUs, racks, cooling and the power chain together.

``FacilityTwin(config, seed=42).step(10.0)`` advances time by 10 s and returns a
:class:`simulator.readings.FacilitySnapshot`, the ground truth the SNMP agents encode and the
simulated GPUs report. ``points()`` renders the current state as metric-contract Points.

Timing convention: the state computed at time t holds over [t, t + dt); a step first
integrates every energy counter with that state, then moves time and recomputes. All counters
integrate the same powers, so the energy balance (facility = IT + cooling + losses + other)
holds exactly, and PUE emerges from the parts.

Power chain per rack: servers (GPUs + host) → rack PDUs (A/B, load shared) → UPS of the room →
site transformer → facility meter. Cooling (unit fans, chiller plant) and "other" (lighting,
security) are fed from the mechanical/house panels, not through the UPS.

Where the parts live: this module holds the twin's state and steps it; ``topology.py`` builds the
fixed wiring (PDU outlets and phases, cooling zones, UPS feeds), ``cooling_state.py`` computes a
step's air units, chiller plant and UPS chain, ``twin_points.py`` renders the snapshot and Points.

**What the twin emits vs what it hides.** Emitted (``points()``, the simulated NVML GPUs, the
SNMP agents, the twin's Slurm, progress posts): only what real hardware and software emit.
GPU power follows each job's published-spread curve (simulator/capping_curves.py); the NVML
SW-power-cap bit is set whenever a job's bursts reach the limit, as a real H100 does at 330 W
average under 700 W, so it is no "cap binds" signal; meters read within class 0.5, PDUs within
±1 % (a fixed calibration error per device plus a per-reading error); the ``workload``
measurement carries only the scheduler's fields; progress comes from
simulator/progress_model.py (±3 % rate noise, 20 % of jobs never report).

Hidden, for grading only (Python, never emitted, never read by the optimizer):
``twin.truth`` → :class:`Truth`, built from the current state:

- ``gpu_throughput`` (array per GPU, twin slot order = ``twin.uuids``): true relative
  throughput this step, 1 = as fast as at the default limit, 0 when idle;
- ``gpu_power_w`` / ``gpu_demand_w``: true board power and the uncapped demand;
- ``jobs``: job id → :class:`JobTruth` for every running job: ``curve`` (a
  :class:`~simulator.capping_curves.JobCurve`), ``demand_w`` (mean uncapped demand of its GPUs
  now), ``job_class``, ``reports_progress``, ``slots`` (GPU positions); and
  ``throughput_at(cap_w)``, ``power_at(cap_w)`` (W per GPU), ``energy_per_work_at(cap_w)``
  (relative to uncapped) at the job's present demand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dcim.config import Config
from dcim.gpu_backend import PowerConstraints
from dcim.inventory import GpuSlot, build_inventory
from dcim.metrics import Point
from simulator import capping_curves, cooling_state, physics, slurm_api, topology, twin_points
from simulator.gpus import SimulatedGpus, fake_uuid
from simulator.progress_model import RATE_NOISE, REPORTING_SHARE, ProgressModel
from simulator.readings import FacilitySnapshot
from simulator.weather import Weather
from simulator.workload import Job, Placement, Workload

_J_PER_KWH = 3.6e6
UNSERVED_SUPPLY_C = 24.0  # racks no cooling unit serves breathe room air [assumption]
# Metering accuracy (fraction of reading): revenue meters are IEC 62053-22 class 0.5S (±0.5 %);
# metered rack PDUs state ±1 % (IEC 62053-21 class 1, as APC/Raritan/ServerTech data sheets
# say [mem]). Each device carries a fixed calibration error within ±half its class and each
# reading a random error within the other half: every reading stays inside its class.
METER_ACCURACY = 0.005
PDU_ACCURACY = 0.01


@dataclass
class GpuState:
    """Per-GPU arrays, index = position in ``FacilityTwin.slots``."""

    cap_w: np.ndarray
    power_w: np.ndarray
    demand_w: np.ndarray
    util: np.ndarray
    mem_util: np.ndarray
    mem_used_bytes: np.ndarray
    temp_c: np.ndarray
    mem_temp_c: np.ndarray
    sm_clock_mhz: np.ndarray
    throughput: np.ndarray  # work rate 0..1 relative to an uncapped GPU (0 when idle)
    throttle: np.ndarray
    energy_mj: np.ndarray  # int64 mJ counter, like NVML
    energy_frac_mj: np.ndarray  # sub-mJ carry so the integer counter loses nothing
    ecc_corrected: np.ndarray


@dataclass(frozen=True)
class JobTruth:
    """A running job's hidden truth (see the module docstring)."""

    job_id: str
    job_class: str
    curve: capping_curves.JobCurve
    demand_w: float
    reports_progress: bool
    slots: tuple[int, ...]

    def throughput_at(self, cap_w):
        """Relative throughput of the job's GPUs under *cap_w* (W) at the present demand."""
        return self.curve.throughput(cap_w, self.demand_w)

    def power_at(self, cap_w):
        """Average board power (W) per GPU under *cap_w* at the present demand."""
        return self.curve.power_w(cap_w, self.demand_w)

    def energy_per_work_at(self, cap_w):
        """GPU energy per unit of work under *cap_w*, relative to uncapped."""
        return self.curve.energy_per_work(cap_w, self.demand_w)


@dataclass(frozen=True)
class Truth:
    """The twin's hidden state this step, for grading (see the module docstring)."""

    time_ns: int
    gpu_throughput: np.ndarray
    gpu_power_w: np.ndarray
    gpu_demand_w: np.ndarray
    jobs: dict[str, JobTruth]


class FacilityTwin:
    """A deterministic (under *seed*) simulation of the whole facility in *config*.

    *start_ns*: UTC time of the first state (default: now). *placement*: the workload's
    placement hook (default first-fit). *target_util*: share of GPUs the job arrivals aim to
    keep busy; the twin starts in that steady state. *arrivals=False*: no random jobs (an idle
    facility; submit jobs with :meth:`submit_job`). *weather*: overrides the config's
    ``[simulator] weather``.

    *reset_caps_on_job_start*: model the scheduler's job prolog — when a job is placed, the
    power limit of each of its GPUs goes back to the default before its first step (a job never
    inherits the cap set for the previous job on that GPU). Off by default (no prolog).
    *on_job_start(job)*: an extra prolog hook, called after that reset (e.g. to set a cap the
    optimizer pre-approved for the job's class).

    *curve_end*: where the jobs' power → throughput curves sit in the published spread
    (simulator/capping_curves.py): ``"spread"`` (default, each job draws its own),
    ``"optimistic"`` or ``"pessimistic"`` (every job at that end). *progress_share*: share of
    jobs that report progress (default 0.8); *progress_noise*: sd of the relative noise on each
    reported increment (default 0.03); see simulator/progress_model.py.
    """

    def __init__(self, config: Config, *, seed: int = 42, start_ns: int | None = None,
                 placement: Placement | None = None, target_util: float = 0.7, arrivals: bool = True,
                 weather: str | None = None, reset_caps_on_job_start: bool = False,
                 on_job_start: Callable[[Job], None] | None = None,
                 curve_end: capping_curves.CurveEnd = "spread", progress_share: float = REPORTING_SHARE,
                 progress_noise: float = RATE_NOISE):
        self.config = config
        self.curve_end = curve_end
        self.progress_model = ProgressModel(seed, share=progress_share, noise=progress_noise)
        self.reset_caps_on_job_start = reset_caps_on_job_start
        self._user_job_start = on_job_start
        self.inventory = inv = build_inventory(config)
        self.seed = seed
        self.site = inv.site
        self.now_ns = int(time.time_ns() if start_ns is None else start_ns)
        self.constraints = PowerConstraints(physics.H100_MIN_LIMIT_W, physics.H100_MAX_LIMIT_W,
                                            physics.H100_DEFAULT_LIMIT_W)
        self.weather = Weather(weather or config.simulator.weather, seed=seed, tz=inv.timezone)
        self._rng = np.random.default_rng([seed & 0xFFFFFFFF, 0xFAC])
        self._build_topology()
        tenants = [t.name for t in config.tenants]
        self.workload = Workload(self.slots, tenants, seed=seed, start_ns=self.now_ns, placement=placement,
                                 target_util=target_util, arrivals=arrivals, tz=inv.timezone,
                                 on_job_start=self._job_prolog if (reset_caps_on_job_start or on_job_start) else None,
                                 curve_end=curve_end)
        self._backends: dict[str, SimulatedGpus] = {}
        self._snapshot: FacilitySnapshot | None = None
        # The twin's scheduler is a Slurm: tenant → account, job class → partition.
        self.slurm_names = slurm_api.SlurmNames.from_config(config, self.workload.tenants)
        self.workload_mapping = self.slurm_names.mapping(config)
        self._compute_state(0.0)

    def _job_prolog(self, job: Job) -> None:
        """The job-start hook (see the class docstring): reset the job's GPUs to the default
        limit, then the caller's hook. The next step computes the job's state under it."""
        if self.reset_caps_on_job_start:
            self.gpu_state.cap_w[job.slots] = self.constraints.default_w
        if self._user_job_start is not None:
            self._user_job_start(job)

    # --- topology --------------------------------------------------------------------------------

    def _build_topology(self) -> None:
        """The fixed wiring (simulator/topology.py) and the state's starting values. One random
        stream, drawn in a fixed order: PDU load sharing, PDU voltage phases, GPU and counter
        starting values."""
        rack_index = self._build_servers()
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x7090])
        self._build_pdus(rack_index, rng)
        self._build_cooling_and_power(rack_index)
        self._init_state(rng)

    def _build_servers(self) -> dict[str, int]:
        """GPU slots, servers and racks as index arrays; returns each rack's index by name."""
        inv = self.inventory
        self.slots: list[GpuSlot] = list(inv.gpus)
        self.uuids = [fake_uuid(self.seed, s.host, s.index) for s in self.slots]
        self._gpu_tags = [{**s.tags, "uuid": u} for s, u in zip(self.slots, self.uuids)]
        self._workload_tags = [{"site": s.site, "host": s.host, "uuid": u} for s, u in zip(self.slots, self.uuids)]
        self._host_positions: dict[str, list[int]] = {}
        for i, s in enumerate(self.slots):
            self._host_positions.setdefault(s.host, []).append(i)
        server_index = {srv.host: k for k, srv in enumerate(inv.servers)}
        rack_index = {r.rack: k for k, r in enumerate(inv.racks)}
        self.gpu_server = np.array([server_index[s.host] for s in self.slots], dtype=np.int64)
        self.server_rack = np.array([rack_index[s.rack] for s in inv.servers], dtype=np.int64)
        self.server_gpus = np.array([s.gpus for s in inv.servers], dtype=float)
        self.host_idle_w = np.array([s.host_idle_w for s in inv.servers])
        self.host_max_w = np.array([max(s.host_max_w, s.host_idle_w) for s in inv.servers])
        self.rack_max_w = np.bincount(self.server_rack, self.host_max_w + self.server_gpus * physics.H100_MAX_LIMIT_W,
                                      minlength=len(inv.racks))
        self.room_names = [r.name for r in self.config.rooms]
        self.rack_room = [r.room for r in inv.racks]
        return rack_index

    def _build_pdus(self, rack_index: dict[str, int], rng: np.random.Generator) -> None:
        """Rack PDUs: which servers each carries, on which outlets and phases (topology.pdu_maps)."""
        inv = self.inventory
        n_racks = len(inv.racks)
        self.pdus = list(inv.pdus)
        self._pdu_rack = [rack_index[p.rack] for p in self.pdus]
        self._pdu_tags = [inv.device_tags("pdu", p) for p in self.pdus]
        per_rack = np.bincount(self._pdu_rack, minlength=n_racks) if self.pdus else np.zeros(n_racks, dtype=int)
        self._rack_pdu_count = per_rack
        servers_of_rack: list[list[int]] = [[] for _ in range(n_racks)]
        for k, r in enumerate(self.server_rack):
            servers_of_rack[r].append(k)
        self._servers_of_rack = servers_of_rack
        maps = topology.pdu_maps(self.pdus, self._pdu_rack, per_rack, servers_of_rack, len(inv.servers), rng)
        self._phase_slices, self._outlet_slices = maps.phase_slices, maps.outlet_slices
        self._m_outlet, self._m_phase = maps.m_outlet, maps.m_phase
        self._phase_pdu, self._outlet_pdu = maps.phase_pdu, maps.outlet_pdu
        self._pdu_share = np.array([1.0 / per_rack[rk] for rk in self._pdu_rack]) if self.pdus else np.zeros(0)
        self._pdu_rack_arr = np.array(self._pdu_rack, dtype=np.int64)
        self._pdu_phases = np.array([p.phases for p in self.pdus], dtype=float)
        self._pdu_nominal_v = np.array([p.voltage_v for p in self.pdus])
        self._pdu_rating_w = np.array([p.phases * p.breaker_a * p.voltage_v for p in self.pdus])
        self._pdu_voltage_phase = rng.uniform(0, 2 * math.pi, len(self.pdus))

    def _build_cooling_and_power(self, rack_index: dict[str, int]) -> None:
        """Cooling units and the racks they serve, UPSes and the racks they feed, the site's
        transformer and meters."""
        inv = self.inventory
        # Chillers serve every air unit (the demo's one plant serves both halls).
        self.air_units = [u for u in inv.cooling if u.kind != "chiller"]
        self.chillers = [u for u in inv.cooling if u.kind == "chiller"]
        self._rack_unit = topology.rack_units(inv, self.air_units, rack_index)
        self.rack_recirc = topology.rack_recirculation(inv, self.air_units, self._rack_unit)
        self.upses = list(inv.ups)
        self._rack_ups_share = topology.rack_ups_shares(self.upses, self.rack_room)
        # Site transformer sized for the racks' budgets plus the cooling plant [assumption].
        budget_w = sum(r.power_budget_kw for r in inv.racks) * 1000.0
        self._transformer_rating_w = max(1.5 * budget_w, 1.0)
        self.meters = list(inv.meters)

    def _init_state(self, rng: np.random.Generator) -> None:
        """GPU state, device energy counters and metering errors at their starting values."""
        n = len(self.slots)
        self.gpu_state = GpuState(
            cap_w=np.full(n, self.constraints.default_w), power_w=np.full(n, physics.GPU_IDLE_W),
            demand_w=np.full(n, physics.GPU_IDLE_W), util=np.zeros(n), mem_util=np.zeros(n),
            mem_used_bytes=np.zeros(n, dtype=np.int64), temp_c=np.full(n, 35.0), mem_temp_c=np.full(n, 38.0),
            sm_clock_mhz=np.full(n, physics.GPU_IDLE_SM_CLOCK_MHZ), throughput=np.zeros(n),
            throttle=np.full(n, physics.THROTTLE_GPU_IDLE, dtype=np.int64),
            # Counters start where a driver loaded a few days ago would be [assumption].
            energy_mj=(rng.uniform(1, 5, n) * 86400 * 300 * 1000).astype(np.int64), energy_frac_mj=np.zeros(n),
            ecc_corrected=rng.poisson(0.3, n).astype(np.int64))
        # Device energy counters (kWh), started at plausible non-zero values.
        self._pdu_kwh = rng.uniform(1e4, 5e4, len(self.pdus))
        self._phase_kwh_flat = (self._pdu_kwh / np.maximum(self._pdu_phases, 1))[self._phase_pdu]
        self._outlet_kwh_flat = rng.uniform(100, 3000, int(self._m_outlet.shape[0]))
        # Per-PDU views into the flat counters (share memory: updating one updates the other).
        self._phase_kwh = [self._phase_kwh_flat[sl] for sl in self._phase_slices]
        self._outlet_kwh = [self._outlet_kwh_flat[sl] for sl in self._outlet_slices]
        self._ups_kwh = [float(rng.uniform(1e5, 5e5)) for _ in self.upses]
        self._meter_kwh = [float(rng.uniform(1e6, 5e6)) for _ in self.meters]
        self.rack_inlet_c = np.full(len(self.inventory.racks), 22.0)
        # Metering errors (see METER_ACCURACY): fixed per device, and a stream of their own for
        # the per-reading part, so the physics' random streams are the same with or without.
        mrng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x4E01])
        self._pdu_gain = 1.0 + mrng.uniform(-0.5, 0.5, len(self.pdus)) * PDU_ACCURACY
        self._meter_gain = 1.0 + mrng.uniform(-0.5, 0.5, len(self.meters)) * METER_ACCURACY
        self._reading_rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x4E02])

    def gpu_positions(self, host: str) -> list[int]:
        """Global GPU positions of *host*'s GPUs in index order."""
        if host not in self._host_positions:
            raise KeyError(f"no host {host!r} in the twin")
        return self._host_positions[host]

    # --- public API ------------------------------------------------------------------------------

    @property
    def snapshot(self) -> FacilitySnapshot:
        if self._snapshot is None:
            self._snapshot = self._build_snapshot()
        return self._snapshot

    @property
    def truth(self) -> Truth:
        """The hidden truth of this step, for grading only (copies; see the module docstring)."""
        g = self.gpu_state
        jobs = {}
        for job_id, job in self.workload.jobs.items():
            assert job.curve is not None, f"job {job_id} has no curve"  # Workload.new_job draws one for every job
            jobs[job_id] = JobTruth(job_id, job.job_class, job.curve, float(g.demand_w[job.slots].mean()),
                                    self.progress_model.reports_progress(job_id), tuple(job.slots))
        return Truth(self.now_ns, g.throughput.copy(), g.power_w.copy(), g.demand_w.copy(), jobs)

    def step(self, dt_s: float) -> FacilitySnapshot:
        """Advance time by *dt_s* seconds and return the new snapshot."""
        self.advance(dt_s)
        return self.snapshot

    def advance(self, dt_s: float) -> None:
        """Advance time by *dt_s* seconds without building the snapshot objects (cheaper)."""
        if dt_s < 0:
            raise ValueError("time only moves forward")
        dt_ns = int(round(dt_s * 1e9))
        self._integrate(dt_s)
        self.workload.advance(self.now_ns + dt_ns, dt_s, self.gpu_state.throughput)
        self.now_ns += dt_ns
        self._compute_state(dt_s)

    def gpu_backend(self, host: str) -> SimulatedGpus:
        """The simulated GPUs of *host* (one object per host, so injected faults persist)."""
        backend = self._backends.get(host)
        if backend is None:
            backend = self._backends[host] = SimulatedGpus(self, host)
        return backend

    def set_power_limit(self, host: str, index: int, limit_w: float) -> float:
        """Set a GPU's power limit as NVML would (validated, read back)."""
        return self.gpu_backend(host).set_power_limit_w(index, limit_w)

    def reset_energy_counter(self, device_name: str) -> None:
        """Inject a counter reset: a PDU, UPS or meter by name, or a GPU by UUID or 'host:index'."""
        for i, p in enumerate(self.pdus):
            if p.name == device_name:
                self._pdu_kwh[i] = 0.0
                self._phase_kwh[i][:] = 0.0
                self._outlet_kwh[i][:] = 0.0
                self._snapshot = None
                return
        for i, u in enumerate(self.upses):
            if u.name == device_name:
                self._ups_kwh[i] = 0.0
                self._snapshot = None
                return
        for i, m in enumerate(self.meters):
            if m.name == device_name:
                self._meter_kwh[i] = 0.0
                self._snapshot = None
                return
        if device_name in self.uuids:
            pos = self.uuids.index(device_name)
        elif ":" in device_name:
            host, _, idx = device_name.rpartition(":")
            pos = self.gpu_positions(host)[int(idx)]
        else:
            raise KeyError(f"no device named {device_name!r}")
        self.gpu_state.energy_mj[pos] = 0
        self.gpu_state.energy_frac_mj[pos] = 0.0

    # --- physics ---------------------------------------------------------------------------------

    def _integrate(self, dt_s: float) -> None:
        """Add the energy of the current state held for *dt_s* to every counter."""
        if dt_s <= 0:
            return
        g = self.gpu_state
        mj = g.power_w * dt_s * 1000.0 + g.energy_frac_mj
        whole = np.floor(mj)
        g.energy_mj += whole.astype(np.int64)
        g.energy_frac_mj = mj - whole
        kwh = dt_s / _J_PER_KWH  # W held for dt_s → kWh
        if self.pdus:
            # A meter's register integrates the power it senses: its calibration error included.
            gain = self._pdu_gain * kwh
            self._pdu_kwh += self._pdu_power_flat * gain
            self._phase_kwh_flat += self._phase_power_flat * gain[self._phase_pdu]
            self._outlet_kwh_flat += self._outlet_power_flat * gain[self._outlet_pdu]
        for i in range(len(self.upses)):
            self._ups_kwh[i] += self._ups_out_w[i] * kwh
        for i in range(len(self.meters)):
            self._meter_kwh[i] += self._meter_true_w[i] * self._meter_gain[i] * kwh

    def _reading_factor(self, gain: np.ndarray, accuracy: float) -> np.ndarray:
        """Reading / true value for devices with calibration *gain*: the gain times a random
        error within ±half the class (sd a quarter of it)."""
        noise = np.clip(self._reading_rng.normal(0.0, accuracy / 4.0, len(gain)), -accuracy / 2.0, accuracy / 2.0)
        return gain * (1.0 + noise)

    def _compute_state(self, dt_s: float) -> None:
        """Recompute every power, temperature and reading for time ``now_ns``.

        The previous snapshot stays readable until the end, so a reader in another thread (an
        SNMP agent) sees either the old or the new state, never a mix."""
        self.outdoor_c, self.outdoor_rh = self.weather.at(self.now_ns)
        power, util = self._step_gpus(dt_s)
        # Servers and racks.
        n_servers = len(self.server_gpus)
        gpu_sum_w = np.bincount(self.gpu_server, power, minlength=n_servers)
        mean_util = np.bincount(self.gpu_server, util, minlength=n_servers) / np.maximum(self.server_gpus, 1)
        server_w = physics.host_power_w(self.host_idle_w, self.host_max_w, mean_util) + gpu_sum_w
        self.server_power_w = server_w
        rack_w = np.bincount(self.server_rack, server_w, minlength=len(self.rack_max_w))
        self.rack_power_w = rack_w
        rack_pdu_loss, rack_pdu_in = self._step_pdus(rack_w, server_w)
        cooling_w = self._step_cooling(rack_w, rack_pdu_loss)
        self._step_power_chain(rack_w, rack_pdu_loss, rack_pdu_in, cooling_w)
        self._snapshot = None

    def _step_gpus(self, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """GPUs: demand from utilisation; power and throughput under the cap from each job's own
        published-spread curve (simulator/capping_curves.py). Returns (power W, utilisation)."""
        wl, g = self.workload, self.gpu_state
        util = wl.current_util(self.now_ns)
        busy = wl.busy
        demand = physics.gpu_demand_w(util, wl.memory_bound, busy)
        x = capping_curves.power_ratio(g.cap_w, demand, wl.burst, self.constraints.default_w)
        power = np.where(busy, x * demand, np.minimum(demand, g.cap_w))
        thr = np.where(busy, capping_curves.throughput_at_ratio(x, wl.curve_u), 0.0)
        g.util, g.demand_w, g.power_w, g.throughput = util, demand, power, thr
        g.mem_util = np.where(wl.memory_bound, 0.9 * util, 0.4 * util)
        g.mem_used_bytes = (wl.mem_frac * physics.GPU_MEM_TOTAL_BYTES).astype(np.int64)
        g.sm_clock_mhz = physics.sm_clock_mhz(util, wl.memory_bound, busy, np.where(busy, thr, 1.0))
        g.throttle = physics.throttle_reasons(physics.gpu_peak_w(util, wl.memory_bound, busy), g.cap_w, busy)
        inlet_gpu = self.rack_inlet_c[self.server_rack[self.gpu_server]]
        core_t, mem_t = physics.gpu_temp_target_c(inlet_gpu, power)
        if dt_s > 0:
            g.temp_c = physics.lag(g.temp_c, core_t, dt_s, physics.GPU_THERMAL_TAU_S)
            g.mem_temp_c = physics.lag(g.mem_temp_c, mem_t, dt_s, physics.GPU_THERMAL_TAU_S)
        else:
            g.temp_c, g.mem_temp_c = core_t, mem_t
        return power, util

    def _step_pdus(self, rack_w: np.ndarray, server_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rack PDUs: their losses, readings and voltages. Returns each rack's PDU losses and the
        power its PDUs draw (racks without PDUs feed straight from the UPS)."""
        n_racks = len(rack_w)
        t_day = (self.now_ns / 1e9) % 86400.0
        pf = physics.SERVER_POWER_FACTOR
        rack_pdu_in = rack_w.copy()
        rack_pdu_loss: np.ndarray = np.zeros(n_racks)
        if self.pdus:
            out_w = rack_w[self._pdu_rack_arr] * self._pdu_share
            loss = physics.chain_loss_w(out_w, self._pdu_rating_w, physics.PDU_LOSS)
            volt = self._pdu_nominal_v * (1.0 + 0.004 * np.sin(2 * math.pi * t_day / 86400.0 + self._pdu_voltage_phase))
            self._pdu_power_flat = out_w + loss
            self._outlet_power_flat = self._m_outlet @ server_w
            self._phase_power_flat = self._m_phase @ server_w + (loss / self._pdu_phases)[self._phase_pdu]
            read = self._reading_factor(self._pdu_gain, PDU_ACCURACY)  # what each PDU reads
            phase_read = self._phase_power_flat * read[self._phase_pdu]
            phase_current = phase_read / (volt[self._phase_pdu] * pf)
            self._pdu_power_w = (self._pdu_power_flat * read).tolist()
            self._pdu_voltage_v = volt.tolist()
            self._phase_power_w = [phase_read[sl] for sl in self._phase_slices]
            outlet_read = self._outlet_power_flat * read[self._outlet_pdu]
            self._outlet_power_w = [outlet_read[sl] for sl in self._outlet_slices]
            self._phase_current_a = [phase_current[sl] for sl in self._phase_slices]
            rack_pdu_loss = np.bincount(self._pdu_rack_arr, loss, minlength=n_racks)
            rack_pdu_in = np.where(self._rack_pdu_count > 0, rack_w + rack_pdu_loss, rack_w)
        self.rack_pdu_loss_w = rack_pdu_loss
        return rack_pdu_loss, rack_pdu_in

    def _step_cooling(self, rack_w: np.ndarray, rack_pdu_loss: np.ndarray) -> float:
        """Air units carry their racks' heat (IT + PDU losses) plus their own fan heat; the rack
        temperatures follow their supply air; the chiller plant takes the air units' heat.
        Returns the cooling power (W)."""
        rack_heat_w = rack_w + rack_pdu_loss
        supply_of_rack = np.full(len(rack_w), UNSERVED_SUPPLY_C)
        self._unit_state = []
        total_unit_w = 0.0
        air_heat_w = 0.0
        for ui, u in enumerate(self.air_units):
            mask = self._rack_unit == ui
            st = cooling_state.air_unit_state(u, float(rack_heat_w[mask].sum()), direct_expansion=not self.chillers)
            supply_of_rack[mask] = st["supply_c"]
            self._unit_state.append({**st, "mask": mask})
            total_unit_w += st["power_w"]
            air_heat_w += st["heat_w"]
        inlet, outlet = physics.rack_temps_c(supply_of_rack, rack_w, self.rack_max_w, self.rack_recirc)
        self.rack_inlet_c, self.rack_outlet_c = inlet, outlet
        self._chiller_state, plant_w = cooling_state.chiller_states(self.chillers, air_heat_w, self.outdoor_c,
                                                                    self.outdoor_rh)
        return total_unit_w + plant_w

    def _step_power_chain(self, rack_w: np.ndarray, rack_pdu_loss: np.ndarray, rack_pdu_in: np.ndarray,
                          cooling_w: float) -> None:
        """UPS, transformer and site totals by the site's PUE category, and what the meters read."""
        self._ups_out_w, self._ups_in_w, ups_loss_w, unprotected_w = cooling_state.ups_chain(
            self.upses, self._rack_ups_share, rack_pdu_in)
        other_w = physics.OTHER_W_PER_ROOM * len(self.room_names)
        downstream_w = sum(self._ups_in_w) + unprotected_w + cooling_w + other_w
        transformer_w = float(physics.chain_loss_w(downstream_w, self._transformer_rating_w, physics.TRANSFORMER_LOSS))
        facility_w = downstream_w + transformer_w
        pdu_loss_w = float(rack_pdu_loss.sum())
        if self.config.site.pue_category == 1 and self.upses:
            it_w = sum(self._ups_out_w) + unprotected_w  # UPS output (PDU losses count as IT)
            loss_w = ups_loss_w + transformer_w
        else:
            it_w = float(rack_w.sum())  # PDU output / IT input
            loss_w = ups_loss_w + transformer_w + pdu_loss_w
        self.it_power_w, self.cooling_power_w, self.loss_power_w = it_w, cooling_w, loss_w
        self.other_power_w, self.facility_power_w = other_w, facility_w
        self.server_it_power_w = float(rack_w.sum())
        role_power = {"facility_total": facility_w, "it": it_w, "cooling": cooling_w, "other": other_w}
        self._meter_true_w = [role_power[m.role] for m in self.meters]
        read = self._reading_factor(self._meter_gain, METER_ACCURACY)
        self._meter_power_w = [w * f for w, f in zip(self._meter_true_w, read.tolist())]

    # --- what it emits (simulator/twin_points.py) -------------------------------------------------

    def _build_snapshot(self) -> FacilitySnapshot:
        return twin_points.build_snapshot(self)

    def points(self, *, include_outlets: bool = False, include_gpus: bool = True) -> list[Point]:
        """The current state as metric-contract Points (one per series), stamped ``now_ns``.

        Built from the state arrays, not the snapshot, so backfill stays cheap. Outlets are
        optional (24 series per PDU). Tag dicts are fresh per point."""
        return twin_points.points(self, include_outlets=include_outlets, include_gpus=include_gpus)

    # --- convenience -----------------------------------------------------------------------------

    def submit_job(self, *, job_class: str | None = None, tenant: str | None = None, gpus: int | None = None,
                   work_gpu_s: float | None = None, util: float | None = None) -> Job:
        """Submit a job now (attributes not given are drawn); it starts when placement finds room.
        The new state takes effect at the next step."""
        job = self.workload.new_job(self.now_ns, job_class=job_class, tenant=tenant, gpus=gpus,
                                    work_gpu_s=work_gpu_s, util=util)
        self.workload.submit(job, self.now_ns)
        return job

    def free_slots(self) -> list[GpuSlot]:
        return [s for i, s in enumerate(self.slots) if not self.workload.busy[i]]

    def gpu_index_of(self, uuid: str) -> tuple[str, int]:
        pos = self.uuids.index(uuid)
        return self.slots[pos].host, self.slots[pos].index

    def hosts(self) -> Sequence[str]:
        return list(self._host_positions)
