"""UPS profiles: UPS-MIB (RFC 1628) plus the vendor input-power/energy objects that fill the
gaps real UPSes leave (reference §2.3: the Eaton 93E reports upsInputTruePower = 0)."""

from __future__ import annotations

from dataclasses import replace

from collectors.snmp.profiles.spec import Profile, column, scalar

_U = "1.3.6.1.2.1.33.1"
_UPS_MIB = (
    column(f"{_U}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum"),
    column(f"{_U}.3.3.1.5", "ups", "input_power_w", 1.0, agg="sum", fallback=True),
    column(f"{_U}.4.4.1.5", "ups", "load_pct", 1.0, agg="max"),           # the most loaded line
    column(f"{_U}.3.3.1.3", "ups", "input_voltage_v", 1.0, agg="mean"),
    column(f"{_U}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean"),
    scalar(f"{_U}.4.1.0", "ups", "on_battery", enum={5: True}, enum_default=False),  # upsOutputSource
    scalar(f"{_U}.2.4.0", "ups", "battery_charge_pct", 1.0),
    scalar(f"{_U}.2.3.0", "ups", "runtime_s", 60.0),                      # minutes
)

UPS_MIB = Profile(
    name="ups_mib", kind="ups", description="Any UPS with the standard UPS-MIB (RFC 1628)",
    sys_object_ids=("1.3.6.1.2.1.33",),  # agents with no vendor branch point at upsMIB itself
    readings=_UPS_MIB, post=("ups_input_below_output",),
    probe_oid=f"{_U}.1.1.0",  # upsIdentManufacturer
)

# Eaton XUPS-MIB: vendor input power first, UPS-MIB as the fallback.
_X = "1.3.6.1.4.1.534.1"
EATON_XUPS = Profile(
    name="eaton_xups", kind="ups", description="Eaton UPS (XUPS-MIB + UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.534.1", "1.3.6.1.4.1.705.1"),
    readings=(
        scalar(f"{_X}.3.8.3.0", "ups", "input_power_w", 1.0),               # xupsInputTotalWatts
        column(f"{_X}.3.4.1.4", "ups", "input_power_w", 1.0, agg="sum", fallback=True),  # xupsInputWatts
        scalar(f"{_X}.4.9.3.0", "ups", "output_power_w", 1.0),              # xupsOutputTotalWatts
    ) + tuple(replace(r, fallback=True) if r.field == "output_power_w" else r for r in _UPS_MIB),
    post=("ups_input_below_output",),
)

# APC PowerNet UPS: high-precision energy counters and per-phase input power.
_A = "1.3.6.1.4.1.318.1.1.1"
APC_UPS = Profile(
    name="apc_ups", kind="ups", description="APC Smart-UPS / Symmetra (PowerNet-MIB + UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.318.1.3.2", "1.3.6.1.4.1.318.1.3.27"),
    readings=(
        column(f"{_A}.9.2.3.1.9", "ups", "input_power_w", 1.0, agg="sum"),    # upsPhaseInputPower
        scalar(f"{_A}.4.2.8.0", "ups", "output_power_w", 1.0),               # upsAdvOutputActivePower
        scalar(f"{_A}.4.3.6.0", "ups", "energy_kwh", 0.01),                  # hundredths kWh (output)
    ) + tuple(replace(r, fallback=True) if r.field in ("input_power_w", "output_power_w") else r
              for r in _UPS_MIB),
    post=("ups_input_below_output",),
)

PROFILES = (EATON_XUPS, APC_UPS, UPS_MIB)
