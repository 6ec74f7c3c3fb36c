"""E3METER IPS power strips (net-track, now Riedo Networks; NETTRACK-E3METER-SNMP-MIB, e3Ipm
.21695.1.10.7). e3IpmMeterTable .2.1 has one row per measuring channel, indexed from 0:
EnergyP .2 (Wh), PowerP .5 (W), PowerS .7 (VA), Urms .8 (mV), Irms .9 (mA), ChannelName .11
("L1".."L3", "N"), ChannelType .12 (0 live wire, 1 neutral wire: "only I_rms will contain
meaningful values"). Live channels become pdu_phase rows named by ChannelName; the strip's
totals add them up. e3IpmSensorTable .3.1: SensorType .2 (0 none, 1 temp, 2 temp-humidity),
TemperatureCelsius .4 (1/10 degC), Humidity .5 (per mil)."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

_M = "1.3.6.1.4.1.21695.1.10.7.2.1"
_S = "1.3.6.1.4.1.21695.1.10.7.3.1"
_LIVE = (f"{_M}.12", (0,))
_PHASE = {"index_tags": {"phase": -1}, "tag_from": {"phase": f"{_M}.11"}, "match_column": _LIVE}
_TOTAL = {"agg": "sum", "match_column": _LIVE}
_SENSOR = {"index_tags": {"sensor": -1}}

E3METER_IPS = Profile(
    name="e3meter_ips", kind="pdu", description="E3METER IPS power strip (NETTRACK-E3METER-SNMP-MIB)",
    sys_object_ids=("1.3.6.1.4.1.21695.1",),
    aliases=("riedo", "e3meter"),
    readings=(
        column(f"{_M}.8", "pdu_phase", "voltage_v", 0.001, **_PHASE),            # e3IpmUrms, mV
        column(f"{_M}.9", "pdu_phase", "current_a", 0.001, **_PHASE),            # e3IpmIrms, mA
        column(f"{_M}.5", "pdu_phase", "power_w", 1.0, **_PHASE),                # e3IpmPowerP, W
        column(f"{_M}.7", "pdu_phase", "apparent_power_va", 1.0, **_PHASE),      # e3IpmPowerS, VA
        column(f"{_M}.2", "pdu_phase", "energy_kwh", 0.001, **_PHASE),           # e3IpmEnergyP, Wh
        column(f"{_M}.5", "pdu", "power_w", 1.0, **_TOTAL),
        column(f"{_M}.7", "pdu", "apparent_power_va", 1.0, **_TOTAL),
        column(f"{_M}.2", "pdu", "energy_kwh", 0.001, **_TOTAL),
        column(f"{_S}.4", "env", "temp_c", 0.1, match_column=(f"{_S}.2", (1, 2)), allow_negative=True,
               sentinels=(), **_SENSOR),                                         # e3IpmSensorTemperatureCelsius
        column(f"{_S}.5", "env", "humidity_pct", 0.1, match_column=(f"{_S}.2", (2,)), **_SENSOR),  # per mil
    ),
)

PROFILES = (E3METER_IPS,)
