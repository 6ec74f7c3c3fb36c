"""The twin as a service: steps the facility physics in real or accelerated time and serves it
through the SNMP agents. Used by ``dcim simulate``, ``dcim up``, the tests and the benchmarks.

Run it inside an asyncio loop (``await svc.start()`` / ``await svc.stop()``) or on a background
thread with its own loop (``svc.start_background()`` / ``svc.stop_background()``). The physics
and the agents share that one loop, so a request never sees a half-written step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import threading
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcim.config import Config, SecretRef, SnmpV2c, read_secret
from dcim.inventory import Inventory, build_inventory
from simulator.readings import (
    CoolingReading,
    FacilitySnapshot,
    MeterReading,
    OutletReading,
    PduReading,
    PhaseReading,
    UpsReading,
)
from simulator.snmp_agents import AgentSet

if TYPE_CHECKING:
    from simulator.progress_poster import ProgressPoster
    from simulator.slurm_api import SlurmRestServer

log = logging.getLogger(__name__)


# --- SNMP secrets for the twin ------------------------------------------------------------------


def _secret_refs(config: Config) -> list[SecretRef]:
    refs = []
    for creds in config.snmp.credentials.values():
        refs += [creds.community] if isinstance(creds, SnmpV2c) else [creds.auth_key, creds.priv_key]
    return refs


def ensure_snmp_secrets(config: Config, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Generate the SNMP secrets the config reads from environment variables that are unset.

    Returns the names of the variables it set (never the values). Secrets in files are left alone.
    """
    environ = os.environ if environ is None else environ
    generated = []
    for ref in _secret_refs(config):
        if ref.env and not environ.get(ref.env):
            environ[ref.env] = secrets.token_urlsafe(18)  # 24 chars: above USM's 8-char minimum
            generated.append(ref.env)
    return generated


def write_secrets_file(path: str | Path, config: Config, environ: MutableMapping[str, str] | None = None,
                       extra: tuple[str, ...] = ()) -> list[str]:
    """Write ``NAME=value`` lines for the config's SNMP secret variables and the *extra* ones
    (e.g. the twin's Slurm token), mode 0600 (for ``set -a; . FILE``)."""
    environ = os.environ if environ is None else environ
    wanted = [ref.env for ref in _secret_refs(config)] + list(extra)
    names = sorted({name for name in wanted if name and environ.get(name)})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file already existed with a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{name}={environ[name]}\n" for name in names)
    return names


# --- the twin's slurmrestd -----------------------------------------------------------------------

TWIN_SLURM_TOKEN_ENV = "DCIM_SLURM_JWT"  # where the token lives when the config names none
TWIN_SLURM_USER = "dcim"


def twin_slurm_token(config: Config, environ: MutableMapping[str, str] | None = None) -> tuple[str, SecretRef, bool]:
    """The token the twin's slurmrestd accepts: the config's ``[workload.slurm] rest_token``, or
    a generated one in its environment variable (``DCIM_SLURM_JWT`` where the config names
    none). Returns (token, where it lives, whether it was generated); callers print only the
    variable's name."""
    return _token_or_generated(config.workload.slurm.rest_token, TWIN_SLURM_TOKEN_ENV,
                               "workload.slurm.rest_token", environ)


def _token_or_generated(ref: SecretRef | None, default_env: str, key: str,
                        environ: MutableMapping[str, str] | None) -> tuple[str, SecretRef, bool]:
    """The secret *ref* names (*key* in errors), else a token generated into *default_env* once
    and reused from there: (token, where it lives, whether it was generated)."""
    environ = os.environ if environ is None else environ
    ref = ref or SecretRef(env=default_env)
    if ref.file is not None:
        token = read_secret(ref, key)
        assert token is not None  # read_secret returns None only for no ref
        return token, ref, False
    env = ref.env
    assert env is not None  # a SecretRef holds exactly one of env/file (its validator)
    if environ.get(env):
        return environ[env], ref, False
    environ[env] = secrets.token_urlsafe(32)
    return environ[env], ref, True


TWIN_OPTIMIZER_TOKEN_ENV = "DCIM_OPTIMIZER_TOKEN"  # the optimizer's token when the config names none


def twin_optimizer_token(config: Config, environ: MutableMapping[str, str] | None = None
                         ) -> tuple[str, SecretRef, bool]:
    """The optimizer API's token under the twin, which its jobs post progress with: the
    config's ``[optimizer] token``, or a generated one in ``DCIM_OPTIMIZER_TOKEN`` where the
    config names none (the demo). Returns (token, where it lives, whether it was generated);
    callers print only the variable's name."""
    return _token_or_generated(config.optimizer.token, TWIN_OPTIMIZER_TOKEN_ENV, "optimizer.token", environ)


def twin_slurm_config(config: Config, rest_url: str, token_ref: SecretRef, names) -> Config:
    """*config* with its ``[workload]`` pointed at the twin's slurmrestd (mode "rest" at
    *rest_url*): the collector then reads the twin's jobs as it reads a real site's. The
    account → tenant and partition → class maps are the config's, completed with the twin's
    own *names* (``twin.slurm_names``), so every twin job maps to its tenant and class."""
    wl = config.workload
    if wl.source not in ("none", "slurm"):
        log.warning("[workload] source = %r: the twin's scheduler is a Slurm; reading it instead", wl.source)
    mapping = names.mapping(config)
    slurm = wl.slurm.model_copy(update={"mode": "rest", "rest_url": rest_url, "rest_token": token_ref,
                                        "rest_user": wl.slurm.rest_user or TWIN_SLURM_USER})
    workload = wl.model_copy(update={"source": "slurm", "slurm": slurm, "tenants": dict(mapping.tenants),
                                     "job_classes": dict(mapping.job_classes)})
    return config.model_copy(update={"workload": workload})


# --- the physics -------------------------------------------------------------------------------


def make_twin(config: Config, seed: int | None = None) -> Any:
    """The facility twin (``simulator.facility.FacilityTwin``), or the synthetic stand-in while that
    module is not available."""
    seed = config.simulator.seed if seed is None else seed
    try:
        from simulator.facility import FacilityTwin
    except ImportError:
        log.warning("simulator.facility is not available: serving a synthetic load (SyntheticTwin)")
        return SyntheticTwin(config, seed=seed)
    return FacilityTwin(config, seed=seed)


class SyntheticTwin:
    """A stand-in with the FacilityTwin interface (``step(dt_s)``, ``snapshot``, ``now_ns``):
    smooth per-rack load, energy integrated from power, cooling that removes the rack heat,
    UPS and cooling losses. Not physics: enough to exercise the agents and collectors.
    """

    UPS_EFFICIENCY = 0.96
    COP = 4.0
    PSU_PF = 0.98

    def __init__(self, config: Config, seed: int = 42, start_ns: int = 1_767_225_600 * 10 ** 9):
        self.config = config
        self.inventory = build_inventory(config)
        self.seed = seed
        self.now_ns = start_ns
        self._elapsed_s = 0.0
        self._energy: dict[str, float] = {}  # kWh per counter key
        self.snapshot = self._compute(0.0)

    def step(self, dt_s: float) -> FacilitySnapshot:
        self._elapsed_s += dt_s
        self.now_ns += int(dt_s * 1e9)
        self.snapshot = self._compute(dt_s)
        return self.snapshot

    def _counter(self, key: str, power_w: float, dt_s: float) -> float:
        self._energy[key] = self._energy.get(key, 0.0) + power_w * dt_s / 3.6e6
        return self._energy[key]

    def _rack_power_w(self, index: int, servers: int) -> float:
        # each rack breathes with its own period and phase (seeded), between ~30 % and 100 % load
        phase = (self.seed * 7919 + index * 104729) % 1000 / 1000 * 2 * math.pi
        load = 0.65 + 0.35 * math.sin(self._elapsed_s / (600 + 37 * index) * 2 * math.pi + phase)
        return servers * (1500 + 8 * 700 * load)

    def _compute(self, dt_s: float) -> FacilitySnapshot:
        inv, cfg = self.inventory, self.config
        snap = FacilitySnapshot(time_ns=self.now_ns)
        rack_w = {}
        for i, rack in enumerate(inv.racks):
            servers = sum(1 for s in inv.servers if s.rack == rack.rack)
            rack_w[rack.rack] = self._rack_power_w(i, servers)
            snap.rack_power_w[rack.rack] = rack_w[rack.rack]
            snap.rack_inlet_temp_c[rack.rack] = 22.0 + 2.0 * rack_w[rack.rack] / 40_000
            snap.rack_outlet_temp_c[rack.rack] = snap.rack_inlet_temp_c[rack.rack] + rack_w[rack.rack] / 2_500
        for pdu in cfg.pdus:
            feeds = len(inv.pdus_by_rack.get(pdu.rack, [pdu]))
            snap.pdus[pdu.name] = self._pdu(pdu, rack_w.get(pdu.rack, 0.0) / feeds, snap, dt_s)
        for unit in cfg.cooling:
            if unit.kind == "chiller":
                heat_kw = sum(rack_w[r.rack] for r in inv.racks if r.room == unit.room) / 1000
            else:
                heat_kw = sum(rack_w.get(r, 0.0) for r in unit.racks) / 1000
            snap.cooling[unit.name] = self._cooling(unit, heat_kw, snap)
        snap.cooling_power_w = sum(c.power_w for c in snap.cooling.values())
        for ups in cfg.ups:
            racks = {r.rack for r in inv.racks if not ups.rooms or r.room in ups.rooms}
            out_w = sum(snap.pdus[p.name].power_w for p in cfg.pdus if p.rack in racks)
            in_w = out_w / self.UPS_EFFICIENCY
            snap.ups[ups.name] = UpsReading(
                input_power_w=in_w, output_power_w=out_w, load_pct=100 * out_w / (ups.capacity_kw * 1000),
                on_battery=False, energy_kwh=self._counter(f"ups:{ups.name}", out_w, dt_s),
                battery_charge_pct=100.0, runtime_s=600.0 * 400_000 / max(out_w, 1.0),
                input_voltage_v=220.0, output_voltage_v=220.0, output_current_a=out_w / 220.0)
        snap.it_power_w = sum(p.power_w for p in snap.pdus.values())
        ups_in = sum(u.input_power_w for u in snap.ups.values()) if snap.ups else snap.it_power_w
        snap.loss_power_w = ups_in - snap.it_power_w
        snap.facility_power_w = ups_in + snap.cooling_power_w
        for meter in cfg.meters:
            power = {"facility_total": snap.facility_power_w, "it": snap.it_power_w,
                     "cooling": snap.cooling_power_w}.get(meter.role, 0.0)
            snap.meters[meter.name] = MeterReading(
                power_w=power, energy_kwh=self._counter(f"meter:{meter.name}", power, dt_s),
                voltage_v=380.0, current_a=power / (math.sqrt(3) * 380.0))
        return snap

    def _pdu(self, pdu, power_w: float, snap: FacilitySnapshot, dt_s: float) -> PduReading:
        va = power_w / self.PSU_PF
        phases = []
        for n in range(pdu.phases):
            share = power_w / pdu.phases * (1 + 0.04 * (n - (pdu.phases - 1) / 2))  # slightly unbalanced
            phases.append(PhaseReading(
                current_a=share / self.PSU_PF / pdu.voltage_v, voltage_v=pdu.voltage_v, power_w=share,
                apparent_power_va=share / self.PSU_PF,
                energy_kwh=self._counter(f"pdu:{pdu.name}:p{n}", share, dt_s)))
        used = max(1, min(pdu.outlets, 8))  # 4 servers x 2 PSUs per feed
        outlets = []
        for n in range(pdu.outlets):
            w = power_w / used if n < used else 0.0
            outlets.append(OutletReading(current_a=w / self.PSU_PF / pdu.voltage_v, power_w=w,
                                         energy_kwh=self._counter(f"pdu:{pdu.name}:o{n}", w, dt_s)))
        return PduReading(
            power_w=power_w, apparent_power_va=va, energy_kwh=self._counter(f"pdu:{pdu.name}", power_w, dt_s),
            voltage_v=pdu.voltage_v, current_a=sum(p.current_a for p in phases), breaker_a=pdu.breaker_a,
            phases=phases, outlets=outlets, inlet_temp_c=snap.rack_inlet_temp_c.get(pdu.rack), inlet_rh_pct=45.0,
            outlet_temp_c=snap.rack_outlet_temp_c.get(pdu.rack))

    def _cooling(self, unit, heat_kw: float, snap: FacilitySnapshot) -> CoolingReading:
        fan = min(100.0, 30.0 + 70.0 * heat_kw / unit.capacity_kw)
        delta = 12.0 * heat_kw / unit.capacity_kw if unit.kind != "chiller" else 5.0
        inlets = [snap.rack_inlet_temp_c[r] for r in unit.racks if r in snap.rack_inlet_temp_c]
        return CoolingReading(
            kind=unit.kind, supply_temp_c=unit.supply_setpoint_c, return_temp_c=unit.supply_setpoint_c + delta,
            setpoint_c=unit.supply_setpoint_c, rack_inlet_temp_c=max(inlets) if inlets else None,
            fan_pct=None if unit.kind == "chiller" else fan,
            airflow_m3s=None if unit.kind == "chiller" else 0.12 * heat_kw / 1.0 + 0.5,
            cooling_kw=heat_kw, power_w=heat_kw * 1000 / self.COP,
            humidity_pct=None if unit.kind == "chiller" else 45.0,
            cop=self.COP)


# --- the service -------------------------------------------------------------------------------


class TwinService:
    """Steps a twin and serves its SNMP agents.

    ``speed``: simulated seconds per real second. ``tick_s``: real seconds between steps.
    ``max_step_s``: a long step (high speed) is split into steps of at most this many simulated seconds.
    ``twin``: anything with ``step(dt_s) -> FacilitySnapshot`` and ``snapshot``; default ``make_twin``.
    """

    def __init__(self, config: Config, *, twin: Any = None, seed: int | None = None, speed: float | None = None,
                 tick_s: float = 1.0, max_step_s: float = 60.0, devices: list[str] | None = None,
                 inventory: Inventory | None = None, serve_snmp: bool = True, faults: list[str] | None = None):
        self.config = config
        self.inventory = inventory or build_inventory(config)
        self.twin = twin if twin is not None else make_twin(config, seed)
        # Scheduled faults (simulator/twin_faults.py). Only the commands pass [simulator] faults:
        # a test stepping the demo's twin gets none unless it asks.
        self.faults = _fault_schedule(self.twin, faults or [])
        self.speed = config.simulator.speed if speed is None else speed
        self.tick_s = tick_s
        self.max_step_s = max_step_s
        self.agents = AgentSet(config, self.snapshot_provider, inventory=self.inventory, devices=devices) \
            if serve_snmp else None
        self.listeners: list[Callable[[FacilitySnapshot], None]] = []  # called after every step
        self.slurm: SlurmRestServer | None = None  # the twin's slurmrestd, once serve_slurm() started it
        self.progress: ProgressPoster | None = None  # the twin's jobs' progress poster, once post_progress() started it
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adopted_loop: asyncio.AbstractEventLoop | None = None  # the caller's, while start() runs in it

    @property
    def snapshot(self) -> FacilitySnapshot:
        return self.twin.snapshot

    def snapshot_provider(self) -> FacilitySnapshot:
        # Straight from the twin: it rebuilds its snapshot after a step or an injected change
        # (counter reset, power cap), and the agents rebuild their tables when the object changes.
        return self.twin.snapshot

    def advance(self, sim_s: float) -> FacilitySnapshot:
        """Step the twin by *sim_s* simulated seconds now (in steps of at most ``max_step_s``)."""
        # FacilityTwin.advance skips building the snapshot objects; only the last step needs them.
        step = getattr(self.twin, "advance", None) or self.twin.step
        left = sim_s
        while left > 1e-9:
            dt = min(left, self.max_step_s)
            self._apply_faults()
            step(dt)
            left -= dt
        snap = self.twin.snapshot
        for listener in self.listeners:
            listener(snap)
        return snap

    def _apply_faults(self) -> None:
        # before each step, so the step's physics runs with the units the schedule asks for
        if self.faults is not None:
            self.faults.apply(self.twin)

    def serve_slurm(self, token: str, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the twin's jobs as slurmrestd's ``GET /slurm/v0.0.38/jobs`` (simulator/slurm_api.py)
        on *host*:*port* (0: any free port), accepting *token*. Returns its URL. Each answer is
        rendered on the service's loop (``call``), between two steps of the twin."""
        from simulator.slurm_api import SlurmRestServer, jobs_body

        twin = self.twin
        if not hasattr(twin, "workload"):
            raise ValueError(f"{type(twin).__name__} runs no jobs: no Slurm to serve")
        slurm = self.slurm = SlurmRestServer(lambda: self.call(lambda: jobs_body(twin, twin.slurm_names)), token,
                                             host=host, port=port).start()
        return slurm.url

    def stop_slurm(self) -> None:
        slurm, self.slurm = self.slurm, None
        if slurm is not None:
            slurm.stop()

    def post_progress(self, url: str, token: str, *, every_s: float = 10.0, first_report_after_s: float = 0.0):
        """The twin's running jobs post their work done to *url*'s ``POST /v1/progress`` with
        *token*, every *every_s* of twin time (simulator/progress_poster.py). Returns the poster."""
        from simulator.progress_poster import ProgressPoster

        if not hasattr(self.twin, "workload"):
            raise ValueError(f"{type(self.twin).__name__} runs no jobs: no progress to post")
        self.stop_progress()
        progress = self.progress = ProgressPoster(self.twin, url, token, every_s=every_s,
                                                  first_report_after_s=first_report_after_s).start()
        self.listeners.append(progress.on_step)
        return self.progress

    def stop_progress(self) -> None:
        poster, self.progress = self.progress, None
        if poster is not None:
            if poster.on_step in self.listeners:
                self.listeners.remove(poster.on_step)
            poster.close()

    async def start(self) -> None:
        if self._loop is None:  # in the caller's loop (dcim simulate): call() runs there too
            self._loop = self._adopted_loop = asyncio.get_running_loop()
        if self.agents is not None:
            await self.agents.start()
        if self.speed > 0:
            self._task = asyncio.create_task(self._run(), name="twin-steps")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self.agents is not None:
            await self.agents.stop()
        if self._adopted_loop is not None:
            self._loop = self._adopted_loop = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            try:
                await self._advance_yielding((now - last) * self.speed)  # real elapsed time: no drift
            except Exception:  # keep serving the last good snapshot rather than dying silently
                log.exception("twin step failed")
            last = now

    async def _advance_yielding(self, sim_s: float) -> None:
        # Like advance(), but gives the loop to the SNMP agents between steps, so a high --speed
        # (many steps per tick) does not hold requests back for the whole tick.
        step = getattr(self.twin, "advance", None) or self.twin.step
        left = sim_s
        while left > 1e-9:
            dt = min(left, self.max_step_s)
            self._apply_faults()
            step(dt)
            left -= dt
            await asyncio.sleep(0)
        snap = self.twin.snapshot
        for listener in self.listeners:
            listener(snap)

    # --- background thread --------------------------------------------------------------------

    def start_background(self, timeout_s: float = 10.0) -> None:
        """Run the service on a daemon thread with its own event loop; returns once agents serve."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=main, name="twin-service", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError("twin service did not start")
        if failure:
            self._thread = None
            raise failure[0]

    def stop_background(self, timeout_s: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._thread = self._loop = None

    def call(self, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Run *fn* on the service's loop thread (e.g. ``svc.call(lambda: svc.advance(60))``)."""
        loop = self._loop
        if loop is None or _running_loop() is loop:  # no loop, or already on it: waiting would deadlock
            return fn()
        fut = asyncio.run_coroutine_threadsafe(_call(fn), loop)
        return fut.result(timeout_s)


def _fault_schedule(twin: Any, specs: list[str]):
    """The twin's fault schedule, or None without faults. A malformed spec is a ConfigError naming
    ``simulator.faults`` (printed as one line by the command line); one naming a unit this twin
    does not have is logged and left out (configs cut from the demo keep its faults)."""
    if not specs:
        return None
    from dcim.config import ConfigError
    from simulator.twin_faults import FaultError, FaultSchedule

    if not hasattr(twin, "air_units"):
        raise ConfigError([("simulator.faults", f"{type(twin).__name__} has no cooling units to fail")])
    try:
        return FaultSchedule.from_specs(list(specs), twin, skip_unknown_units=True)
    except FaultError as exc:
        raise ConfigError([("simulator.faults", str(exc))]) from None


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
