"""The twin's physics: GPU power and throughput, temperatures, cooling and the power chain.

Every constant names its source. "ref §x" is /work/shared/reference/energy-and-gpu.md;
"[measured]" means an H100 measurement recorded there; "[assumption]" marks a value we chose
because no source gives it, kept in the plausible range and never tuned to flatter the
optimizer. Functions are vectorised (numpy) where they run per GPU; the rest run per rack or
per device. Units are in the names (W, kW, °C, K, m³/s, fractions 0..1).

PUE is never drawn: the facility meter is the sum of the IT load, the cooling plant, the
UPS/transformer losses and a small "other" load, each computed from its own physics.
"""

from __future__ import annotations

import math

import numpy as np

# --- GPU (H100 80GB HBM3 SXM) ------------------------------------------------------------------

# NVML power-limit constraints on an H100 SXM: [200000, 700000] mW, default 700 W
# (ref §2.2 "Cap range", ref §3.1 [measured]).
H100_MIN_LIMIT_W = 200.0
H100_MAX_LIMIT_W = 700.0
H100_DEFAULT_LIMIT_W = 700.0
# Idle with no process 76–78 W; with a CUDA context open 125 W (ref "Measured: H100" [measured]).
GPU_IDLE_W = 76.0
GPU_CONTEXT_IDLE_W = 125.0
# HBM3 installed on an "80GB" H100 as NVML reports it (81559 MiB) [mem: nvidia-smi on H100 SXM].
GPU_MEM_TOTAL_BYTES = 81559 * 1024 * 1024
GPU_MEM_CLOCK_MHZ = 2619.0  # HBM3 clock nvidia-smi shows on H100 SXM [mem]
GPU_IDLE_SM_CLOCK_MHZ = 345.0  # lowest SM clock seen in the sweep [measured]

# Power vs duty cycle at the default 700 W limit (ref "Measured: H100" table [measured]).
# Compute-bound = bf16 GEMM; duty 1.0 read 694 W pinned at the 700 W limit, so the uncapped
# demand at full duty is taken as the limit itself. Duty 0 = a context open but no kernels.
COMPUTE_DUTY = np.array([0.0, 0.10, 0.25, 0.50, 0.75, 1.00])
COMPUTE_POWER_W = np.array([GPU_CONTEXT_IDLE_W, 202.0, 330.0, 507.0, 636.0, 700.0])
COMPUTE_SM_CLOCK_MHZ = np.array([1980.0, 1980.0, 1935.0, 1739.0, 1768.0, 1482.0])
# Memory-bound = 2 GiB device copy: ~400 W at full duty, clocks stay at 1980 MHz.
MEMORY_DUTY = np.array([0.0, 0.10, 0.50, 1.00])
MEMORY_POWER_W = np.array([GPU_CONTEXT_IDLE_W, 162.0, 269.0, 402.0])
MEMORY_SM_CLOCK_MHZ = np.array([1980.0, 1980.0, 1980.0, 1980.0])

JOB_CLASSES = ("training", "fine_tuning", "inference", "batch")
# LLM decode is memory-bound (ref §3.6, llmgarage sweep); the others are compute-bound.
MEMORY_BOUND_CLASSES = frozenset({"inference"})

# Throughput and power versus the power cap come from published sweeps, per job:
# simulator/capping_curves.py (its docstring states the axes; docs/published-capping.md the points).

# Short-window peak board power of a job (W) by duty, the level NVML's SW power-cap clock-event
# bit (0x4) compares with the limit. Measured H100 (ref "Measured: H100", [measured]): a GEMM at
# duty 0.10 (202 W average) never set the bit under 700 W; at duty 0.25 (330 W average) its
# kernel phases reach the limit and the bit is set (the measurement: ~100 % of samples);
# at 0.50 and up it is set. A memory-bound copy never reached it (402 W at full duty).
COMPUTE_PEAK_DUTY = np.array([0.0, 0.10, 0.25, 1.00])
COMPUTE_PEAK_W = np.array([GPU_CONTEXT_IDLE_W, 330.0, H100_MAX_LIMIT_W, H100_MAX_LIMIT_W])
MEMORY_PEAK_DUTY = MEMORY_DUTY
MEMORY_PEAK_W = np.array([GPU_CONTEXT_IDLE_W, 200.0, 330.0, 450.0])  # copy + prefill bursts [assumption]
# The bit counts as set when the peak reaches this share of the limit [assumption: NVML's
# controller acts a few per cent under the limit].
THROTTLE_PEAK_SHARE = 0.97


def relative_throughput(job_class: str, power_fraction) -> np.ndarray:
    """Deprecated (bench/savings.py's old oracle): throughput at power ratio *power_fraction*
    on the middle of the published spread. The twin's truth is per job: FacilityTwin.truth."""
    from simulator.capping_curves import throughput_at_ratio
    return throughput_at_ratio(np.clip(np.asarray(power_fraction, dtype=float), 0.0, 1.0), 0.5)


def gpu_peak_w(util: np.ndarray, memory_bound: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """Short-window peak board power (W) of each GPU at its utilisation (uncapped)."""
    compute = np.interp(util, COMPUTE_PEAK_DUTY, COMPUTE_PEAK_W)
    memory = np.interp(util, MEMORY_PEAK_DUTY, MEMORY_PEAK_W)
    return np.where(busy, np.where(memory_bound, memory, compute), GPU_IDLE_W)


def throttle_reasons(peak_w: np.ndarray, cap_w: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """NVML clock-event reasons: GPU idle (0x1) without a job; SW power cap (0x4) whenever the
    job's bursts reach the limit, which a busy compute-bound H100 does even at the default limit
    (so the bit does not say that a lowered cap binds)."""
    capped = busy & (peak_w >= THROTTLE_PEAK_SHARE * cap_w)
    return np.where(busy, np.where(capped, THROTTLE_SW_POWER_CAP, 0), THROTTLE_GPU_IDLE).astype(np.int64)


# Steady GPU temperature = inlet + a + b·P. Fitted to the sweep (45 °C at 202 W, 69 °C at
# 694 W [measured]) assuming a 24 °C inlet during the measurement [assumption: not recorded].
GPU_TEMP_OFFSET_K = 11.1
GPU_TEMP_K_PER_W = 0.0488
# HBM runs a little warmer than the core at low power [assumption].
MEM_TEMP_OFFSET_K = 14.0
MEM_TEMP_K_PER_W = 0.042
GPU_THERMAL_TAU_S = 30.0  # first-order lag of die temperature [assumption: heatsink mass]

# NVML clock-event reason bits (ref §2.2 "Throttle reasons").
THROTTLE_GPU_IDLE = 0x1
THROTTLE_SW_POWER_CAP = 0x4


def gpu_demand_w(util: np.ndarray, memory_bound: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """Uncapped average board power (W) of each GPU from its utilisation (0..1).

    Idle GPUs (no job) draw GPU_IDLE_W; busy ones follow the measured duty-cycle curves."""
    compute = np.interp(util, COMPUTE_DUTY, COMPUTE_POWER_W)
    memory = np.interp(util, MEMORY_DUTY, MEMORY_POWER_W)
    demand = np.where(memory_bound, memory, compute)
    return np.where(busy, demand, GPU_IDLE_W)


def sm_clock_mhz(util: np.ndarray, memory_bound: np.ndarray, busy: np.ndarray,
                 throughput: np.ndarray) -> np.ndarray:
    """SM clock (MHz): the measured clock at that duty, slowed with throughput under a cap
    (compute-bound work scales with clock); idle GPUs drop to the lowest clock."""
    compute = np.interp(util, COMPUTE_DUTY, COMPUTE_SM_CLOCK_MHZ)
    memory = np.interp(util, MEMORY_DUTY, MEMORY_SM_CLOCK_MHZ)
    clock = np.where(memory_bound, memory, compute) * throughput
    return np.where(busy, clock, GPU_IDLE_SM_CLOCK_MHZ)


def gpu_temp_target_c(inlet_c: np.ndarray, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state core and HBM temperatures (°C) for inlet air temperature and board power."""
    core = inlet_c + GPU_TEMP_OFFSET_K + GPU_TEMP_K_PER_W * power_w
    mem = inlet_c + MEM_TEMP_OFFSET_K + MEM_TEMP_K_PER_W * power_w
    return core, mem


def lag(current: np.ndarray, target: np.ndarray, dt_s: float, tau_s: float) -> np.ndarray:
    """First-order approach of *current* to *target* over *dt_s* seconds (exact for any dt)."""
    alpha = 1.0 - math.exp(-max(dt_s, 0.0) / tau_s)
    return current + (target - current) * alpha


# --- servers -----------------------------------------------------------------------------------

# Host power (CPUs, fans, NICs, PSU losses) between the config's host_idle_w and host_max_w,
# linear in the server's mean GPU utilisation (ref §3.1 node model: P_node = P_host + Σ P_gpu).


def host_power_w(idle_w: np.ndarray, max_w: np.ndarray, mean_util: np.ndarray) -> np.ndarray:
    return idle_w + (max_w - idle_w) * np.clip(mean_util, 0.0, 1.0)


# --- air and racks -----------------------------------------------------------------------------

AIR_DENSITY_KG_M3 = 1.2  # ref §3.3 "Air mass flow"
AIR_CP_J_KGK = 1005.0  # ref §3.3
# Server air temperature rise at full load: DGX-class servers run ~15 K [assumption]; fans ramp
# sub-linearly with power (airflow ∝ P^0.7, so ΔT grows slowly with load), never below 40 % of
# full airflow [assumption].
SERVER_DT_FULL_K = 15.0
SERVER_MIN_AIRFLOW_FRAC = 0.40
SERVER_AIRFLOW_EXPONENT = 0.7
# Share of rack intake air that is recirculated exhaust (Moore et al. ATC'05 / Tang et al. model
# recirculation explicitly; the fractions are [assumption]): close-coupled in-row cooling
# recirculates little, room CRAHs more, and more at row ends.
RECIRC_INROW = 0.03
RECIRC_ROOM = 0.08
RECIRC_ROW_END_EXTRA = 0.04


def air_flow_m3s(heat_w: float, delta_t_k: float) -> float:
    """Air volume flow (m³/s) carrying *heat_w* with a temperature rise *delta_t_k*: Q = ṁ·c_p·ΔT."""
    return heat_w / (AIR_DENSITY_KG_M3 * AIR_CP_J_KGK * max(delta_t_k, 1e-6))


def rack_temps_c(supply_c: np.ndarray, rack_power_w: np.ndarray, rack_max_w: np.ndarray,
                 recirc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rack inlet and outlet temperatures (°C).

    Rack airflow follows its servers' fans; the outlet is inlet + P/(ρ·c_p·V). The inlet mixes
    supply air with a fraction f of the rack's own exhaust: T_in = T_s + f·ΔT/(1−f)."""
    full_flow = rack_max_w / (AIR_DENSITY_KG_M3 * AIR_CP_J_KGK * SERVER_DT_FULL_K)
    load = np.clip(rack_power_w / np.maximum(rack_max_w, 1.0), 0.0, 1.0)
    frac = np.maximum(load ** SERVER_AIRFLOW_EXPONENT, SERVER_MIN_AIRFLOW_FRAC)
    flow = np.maximum(full_flow * frac, 1e-6)
    delta_k = rack_power_w / (AIR_DENSITY_KG_M3 * AIR_CP_J_KGK * flow)
    inlet = supply_c + recirc * delta_k / (1.0 - recirc)
    return inlet, inlet + delta_k


# --- cooling units (CRAH / in-row) -------------------------------------------------------------

# Design air ΔT across a cooling coil 12 K (ref §3.3: 0.069 m³/s per kW at ΔT 12 K).
UNIT_DESIGN_DT_K = 12.0
# Rated fan electrical power as a share of the unit's cooling capacity [assumption: 2–5 % is
# typical of CRAH/in-row data sheets]; VFD minimum speed [assumption].
UNIT_FAN_W_PER_KW = 30.0
UNIT_MIN_FAN_FRAC = 0.30
# Fan affinity law P ∝ N³, in practice exponent 2.5–2.8 (ref §3.3).
FAN_AFFINITY_EXPONENT = 2.7
# Supply air warms when the heat exceeds the unit's capacity [assumption: 10 K per 100 % over].
OVERLOAD_K_PER_FRAC = 10.0


def fan_power_w(rated_w: float, speed_frac: float) -> float:
    """Fan electrical power (W) at *speed_frac* of full speed (fan affinity law)."""
    return rated_w * speed_frac ** FAN_AFFINITY_EXPONENT


def unit_fan_speed_frac(heat_w: float, capacity_w: float) -> float:
    """Fan speed (0..1) a unit needs to move *heat_w* at its design ΔT: airflow ∝ speed."""
    rated_flow = air_flow_m3s(capacity_w, UNIT_DESIGN_DT_K)
    need = air_flow_m3s(heat_w, UNIT_DESIGN_DT_K)
    return min(1.0, max(UNIT_MIN_FAN_FRAC, need / rated_flow))


# --- chiller plant -----------------------------------------------------------------------------

# Physics-based chiller COP (ref §3.3 "Physics-based fallback"): COP = η_II·T_evap/(T_cond−T_evap)
# in kelvin, η_II 0.45–0.6; T_evap = T_chws − 2 K; water-cooled T_cond = T_wb + tower approach
# (3–4 K) + range (5–6 K) + 2 K.
CHILLER_ETA_II = 0.5
EVAP_APPROACH_K = 2.0
TOWER_APPROACH_K = 3.5
TOWER_RANGE_K = 5.5
COND_APPROACH_K = 2.0
# Head-pressure control keeps the lift above ~10 K, which bounds COP in cold weather [assumption].
MIN_LIFT_K = 10.0
# Part-load power fraction EIRFPLR = 0.03303 + 0.6852·PLR + 0.2818·PLR² (ref §3.3, SustainDC /
# EnergyPlus unit-test coefficients).
PLR_CURVE = (0.03303, 0.6852, 0.2818)
# Water-side economizer: free cooling when T_wb + tower approach + HX approach ≤ T_chws, partial
# within a few K above (ref §3.3 "Economizers"); HX approach and ramp width [assumption].
HX_APPROACH_K = 1.5
ECONOMIZER_RAMP_K = 4.0
# Pumps: P = Δp·V̇/η (ref §3.3). Chilled-water loop 250 kPa, condenser loop 200 kPa, η 0.7, water
# ΔT 5.5 K [assumption: typical design values].
CHW_PUMP_PA = 250e3
CW_PUMP_PA = 200e3
PUMP_EFF = 0.7
WATER_DT_K = 5.5
WATER_RHO_CP_J_M3K = 1000.0 * 4186.0
# Cooling-tower fans ∝ airflow³ (ref §3.3); rated at 1 % of the rejected heat [assumption].
TOWER_FAN_W_PER_KW = 10.0


def wet_bulb_c(dry_bulb_c: float, rh_pct: float) -> float:
    """Wet-bulb temperature (°C) from dry bulb and RH (Stull 2011, J. Appl. Meteor. Climatol.,
    valid 5–99 % RH, −20–50 °C; error < 1 K)."""
    t, rh = dry_bulb_c, min(max(rh_pct, 5.0), 99.0)
    return (t * math.atan(0.151977 * math.sqrt(rh + 8.313659)) + math.atan(t + rh)
            - math.atan(rh - 1.676331) + 0.00391838 * rh ** 1.5 * math.atan(0.023101 * rh) - 4.686035)


def chiller_full_load_cop(chw_supply_c: float, wet_bulb: float) -> float:
    """Full-load COP of a water-cooled chiller at this chilled-water set point and wet bulb."""
    t_evap = chw_supply_c - EVAP_APPROACH_K + 273.15
    t_cond = wet_bulb + TOWER_APPROACH_K + TOWER_RANGE_K + COND_APPROACH_K + 273.15
    lift = max(t_cond - t_evap, MIN_LIFT_K)
    return CHILLER_ETA_II * t_evap / lift


def economizer_fraction(chw_supply_c: float, wet_bulb: float) -> float:
    """Share (0..1) of the load carried by water-side free cooling."""
    t_free = wet_bulb + TOWER_APPROACH_K + HX_APPROACH_K
    return min(1.0, max(0.0, (chw_supply_c + ECONOMIZER_RAMP_K - t_free) / ECONOMIZER_RAMP_K))


def plant_power_w(heat_w: float, capacity_w: float, chw_supply_c: float,
                  outdoor_c: float, outdoor_rh_pct: float) -> dict[str, float | None]:
    """Electrical power of the chilled-water plant removing *heat_w*.

    Returns compressor_w, pumps_w, tower_w, total_w, economizer (0..1) and cop (heat/total)."""
    wb = wet_bulb_c(outdoor_c, outdoor_rh_pct)
    econ = economizer_fraction(chw_supply_c, wb)
    mech_heat = heat_w * (1.0 - econ)
    plr = min(1.0, mech_heat / capacity_w) if capacity_w > 0 else 0.0
    a, b, c = PLR_CURVE
    cop = chiller_full_load_cop(chw_supply_c, wb)
    compressor = (capacity_w / cop) * (a + b * plr + c * plr * plr) if mech_heat > 0 else 0.0
    water_m3s = heat_w / (WATER_RHO_CP_J_M3K * WATER_DT_K)
    rejected = heat_w + compressor
    pumps = (CHW_PUMP_PA * water_m3s + CW_PUMP_PA * rejected / (WATER_RHO_CP_J_M3K * WATER_DT_K)) / PUMP_EFF
    tower_rated = TOWER_FAN_W_PER_KW * capacity_w / 1000.0
    tower = tower_rated * min(1.0, rejected / max(capacity_w, 1.0)) ** 3
    total = compressor + pumps + tower
    return {"compressor_w": compressor, "pumps_w": pumps, "tower_w": tower, "total_w": total,
            "economizer": econ, "cop": heat_w / total if total > 0 else None, "wet_bulb_c": wb,
            "tower_frac": min(1.0, rejected / max(capacity_w, 1.0))}


# Direct-expansion fallback for units with no chiller: CRAC COP(T) = 0.0068·T² + 0.0008·T + 0.458
# (T = supply air °C; Moore et al. USENIX ATC'05, ref §3.3).
def crac_cop(supply_c: float) -> float:
    return 0.0068 * supply_c ** 2 + 0.0008 * supply_c + 0.458


# --- power chain -------------------------------------------------------------------------------

# Loss = rating·(a + b·x + c·x²), x = load/rating (Schneider WP113/WP108, ref §3.2).
# Modern transformer-less double-conversion UPS a=0.008, b=0.015, c=0.010 → η 95.3 % @25 %,
# 96.5 % @50 %, 96.8 % @100 % (ref §3.2, centiel).
UPS_LOSS = (0.008, 0.015, 0.010)
# Rack PDUs: ref §3.2 gives 94–98 % for PDUs with transformers; ours are transformer-less rack
# strips, so we take ~99 % at typical load: a small fixed metering load and I²R [assumption].
PDU_LOSS = (0.002, 0.0, 0.015)
# MV/LV transformer and switchgear ~98.5–99.5 % (ref §3.2 [mem]); rated for the whole site.
TRANSFORMER_LOSS = (0.002, 0.0, 0.008)
SERVER_POWER_FACTOR = 0.98  # PFC server PSUs [assumption]
# Battery runtime at full load and the Peukert-like exponent for part load [assumption].
UPS_RUNTIME_FULL_S = 600.0
UPS_RUNTIME_EXPONENT = 1.15
# Lighting, security and office per room [assumption: ~2 kW per hall].
OTHER_W_PER_ROOM = 2000.0


def chain_loss_w(load_w, rating_w, coeffs: tuple[float, float, float]):
    """Loss (W) of a power-chain device carrying *load_w* with rating *rating_w*."""
    a, b, c = coeffs
    x = np.asarray(load_w, dtype=float) / rating_w
    return rating_w * (a + b * x + c * x * x)


def ups_runtime_s(load_frac: float) -> float:
    return UPS_RUNTIME_FULL_S * max(load_frac, 0.02) ** -UPS_RUNTIME_EXPONENT
