"""Gude Expert Power Control switched PDUs (GUDEADS-EPC<model>-MIB, enterprise .28507).

Every Gude product has its own branch .28507.<product> with the same layout below it:
the power table <branch>.1.5.1.2.1 has one row per power channel (a metered input), columns
ChanStatus .2 (0 not active, 1 valid), AbsEnergyActive .3 (Wh), PowerActive .4 (W), Current .5
(mA), Voltage .6 (V), PowerFactor .8 (1/1000), PowerApparent .10 (VA); the external sensor
table <branch>.1.6.1.1 has TempSensor .2 (1/10 degC) and HygroSensor .3 (1/10 %RH). Valid
channels become pdu_phase rows (phase=<channel>); the PDU's totals add them up."""

from __future__ import annotations

from collectors.snmp.profiles.spec import Profile, column

# product branch under .28507 -> model; the layout is the same for each (see the module docstring)
PRODUCTS = {
    81: "EPC 8031",     # proven on a real walk
    43: "EPC 1202",     # GUDEADS-EPC1202-MIB
    58: "EPC 8226",     # GUDEADS-EPC8226-MIB
}


def _profile(product: int, model: str) -> Profile:
    branch = f"1.3.6.1.4.1.28507.{product}"
    power, sensor = f"{branch}.1.5.1.2.1", f"{branch}.1.6.1.1"
    valid = {"match_column": (f"{power}.2", (1,))}          # ChanStatus valid
    chan = {"index_tags": {"phase": -1}, **valid}
    total = {"agg": "sum", **valid}
    probe = {"index_tags": {"sensor": -1}}
    return Profile(
        name=f"gude_{model.split()[-1]}", kind="pdu",
        description=f"Gude Expert Power Control {model.split()[-1]} (GUDEADS MIB .28507.{product})",
        sys_object_ids=(branch,),
        aliases=("gude",) if product == 81 else (),
        readings=(
            column(f"{power}.6", "pdu_phase", "voltage_v", 1.0, **chan),         # Voltage, V
            column(f"{power}.5", "pdu_phase", "current_a", 0.001, **chan),       # Current, mA
            column(f"{power}.4", "pdu_phase", "power_w", 1.0, **chan),           # PowerActive, W
            column(f"{power}.10", "pdu_phase", "apparent_power_va", 1.0, **chan),  # PowerApparent, VA
            column(f"{power}.8", "pdu_phase", "power_factor", 0.001, **chan),    # PowerFactor, 1/1000
            column(f"{power}.3", "pdu_phase", "energy_kwh", 0.001, **chan),      # AbsEnergyActive, Wh
            column(f"{power}.4", "pdu", "power_w", 1.0, **total),
            column(f"{power}.10", "pdu", "apparent_power_va", 1.0, **total),
            column(f"{power}.3", "pdu", "energy_kwh", 0.001, **total),
            column(f"{sensor}.2", "env", "temp_c", 0.1, allow_negative=True, sentinels=(), **probe),
            column(f"{sensor}.3", "env", "humidity_pct", 0.1, **probe),
        ),
    )


PROFILES = tuple(_profile(product, model) for product, model in PRODUCTS.items())
