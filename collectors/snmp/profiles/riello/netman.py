"""Riello UPSes (RPS SpA, enterprise .5491) on the NetMan 204 card. The card answers the
standard UPS-MIB (RFC 1628), but a single-phase UPS still publishes three input and three
output lines and no upsInputNumLines / upsOutputNumLines: lines 2 and 3 answer 0 V, 0 A, 0 W,
0 Hz. Averaged with them, line 1's 231 V would read 77 V. A line is read when it is live at
discovery (input: upsInputFrequency non-zero; output: upsOutputVoltage non-zero); the rows are
kept until the next rediscovery, so a live line that drops to 0 V in an outage still reads 0 V.
upsInputTruePower answers 0 on the live line while the UPS delivers power: not measured."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column, scalar

_U = "1.3.6.1.2.1.33.1"
_LIVE_IN = {"match_column": (f"{_U}.3.3.1.2", tuple(range(1, 1000)))}    # upsInputFrequency, 0.1 Hz
_LIVE_OUT = {"match_column": (f"{_U}.4.4.1.2", tuple(range(1, 1000)))}   # upsOutputVoltage, V

RIELLO_UPS = Profile(
    name="riello_netman", kind="ups", description="Riello UPS on a NetMan card (UPS-MIB)",
    sys_object_ids=("1.3.6.1.4.1.5491",),
    aliases=("riello", "netman"),
    readings=(
        column(f"{_U}.4.4.1.4", "ups", "output_power_w", 1.0, agg="sum", **_LIVE_OUT),   # upsOutputPower, W
        column(f"{_U}.3.3.1.5", "ups", "input_power_w", 1.0, agg="sum", sentinels=(0, -1),
               **_LIVE_IN),                                                             # upsInputTruePower, W
        column(f"{_U}.4.4.1.5", "ups", "load_pct", 1.0, agg="max", **_LIVE_OUT),        # upsOutputPercentLoad
        column(f"{_U}.3.3.1.3", "ups", "input_voltage_v", 1.0, agg="mean", **_LIVE_IN),  # upsInputVoltage, V
        column(f"{_U}.4.4.1.2", "ups", "output_voltage_v", 1.0, agg="mean", **_LIVE_OUT),  # upsOutputVoltage, V
        scalar(f"{_U}.4.1.0", "ups", "on_battery", enum={5: True}, enum_default=False),  # upsOutputSource
        scalar(f"{_U}.2.4.0", "ups", "battery_charge_pct", 1.0),                        # upsEstimatedChargeRemaining
        scalar(f"{_U}.2.3.0", "ups", "runtime_s", 60.0),                                # upsEstimatedMinutesRemaining
    ),
    post=("ups_input_below_output",),
)

PROFILES = (RIELLO_UPS,)
