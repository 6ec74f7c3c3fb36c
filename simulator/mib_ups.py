"""UPS-MIB (RFC 1628) UPSes, reference §2.3.

Two profiles share the RFC 1628 tables:

* ``eaton_xups`` (the default): an Eaton 93-series with XUPS-MIB. Like the real Eaton 93E
  recording, ``upsInputTruePower`` reads 0 on every line; the input power is in the vendor's
  ``xupsInputTotalWatts`` / ``xupsInputWatts`` (the reference's first choice for UPS losses and PUE).
* ``ups_mib``: a plain RFC 1628 agent that fills ``upsInputTruePower``.

Three input and output lines; the twin's totals are split evenly across them.
"""

from __future__ import annotations

from simulator.mib_common import INT, STR, Column, Profile, Scalar, Table

UPS = "1.3.6.1.2.1.33.1"
XUPS = "1.3.6.1.4.1.534.1"
LINES = 3
FREQ_HZ = 60.0  # Korea's grid
SOURCE_NORMAL, SOURCE_BATTERY = 3, 5  # upsOutputSource
BATTERY_NORMAL, BATTERY_LOW = 2, 3  # upsBatteryStatus
INPUT_PF = 0.99  # double-conversion UPS input power factor, for the input current


def _lines(dev, r):
    return [((n,), r) for n in range(1, LINES + 1)]


def _input_current(r) -> float:
    return r.input_power_w / LINES / (r.input_voltage_v * INPUT_PF) if r.input_voltage_v else 0.0


def _common(input_true_power) -> tuple:
    return (
        Scalar(f"{UPS}.1.1", STR, lambda d, r: "EATON"),  # upsIdentManufacturer
        Scalar(f"{UPS}.1.2", STR, lambda d, r: f"93PM {d.capacity_kw:.0f} kW"),  # upsIdentModel
        Scalar(f"{UPS}.1.5", STR, lambda d, r: d.name),  # upsIdentName
        Scalar(f"{UPS}.2.1", INT, lambda d, r: BATTERY_LOW if r.battery_charge_pct < 20 else BATTERY_NORMAL),
        Scalar(f"{UPS}.2.3", INT, lambda d, r: r.runtime_s / 60.0, scale=1, measure=True),  # minutes
        Scalar(f"{UPS}.2.4", INT, lambda d, r: r.battery_charge_pct, scale=1, measure=True),  # %
        Scalar(f"{UPS}.3.2", INT, lambda d, r: LINES),  # upsInputNumLines
        # upsInputTable: Frequency (0.1 Hz), Voltage (V), Current (0.1 A), TruePower (W)
        Table(f"{UPS}.3.3.1", _lines, (
            Column(1, INT, lambda d, r, it, i: i[0]),
            Column(2, INT, lambda d, r, it, i: FREQ_HZ, scale=10, measure=True),
            Column(3, INT, lambda d, r, it, i: r.input_voltage_v, scale=1, measure=True),
            Column(4, INT, lambda d, r, it, i: _input_current(r), scale=10, measure=True),
            Column(5, INT, input_true_power, scale=1, measure=True),
        )),
        Scalar(f"{UPS}.4.1", INT, lambda d, r: SOURCE_BATTERY if r.on_battery else SOURCE_NORMAL),
        Scalar(f"{UPS}.4.2", INT, lambda d, r: FREQ_HZ, scale=10, measure=True),  # upsOutputFrequency
        Scalar(f"{UPS}.4.3", INT, lambda d, r: LINES),  # upsOutputNumLines
        # upsOutputTable: Voltage (V), Current (0.1 A), Power (W), PercentLoad (%)
        Table(f"{UPS}.4.4.1", _lines, (
            Column(1, INT, lambda d, r, it, i: i[0]),
            Column(2, INT, lambda d, r, it, i: r.output_voltage_v, scale=1, measure=True),
            Column(3, INT, lambda d, r, it, i: r.output_current_a / LINES, scale=10, measure=True),
            Column(4, INT, lambda d, r, it, i: r.output_power_w / LINES, scale=1, measure=True),
            Column(5, INT, lambda d, r, it, i: r.load_pct, scale=1, measure=True),
        )),
        Scalar(f"{UPS}.9.5", INT, lambda d, r: d.capacity_kw * 1000.0, scale=1),  # upsConfigOutputVA (unity PF)
        Scalar(f"{UPS}.9.6", INT, lambda d, r: d.capacity_kw * 1000.0, scale=1),  # upsConfigOutputPower W
    )


EATON = Profile(
    name="eaton_xups",
    kind="ups",
    vendor="Eaton",
    model="93PM",
    sys_object_id="1.3.6.1.4.1.534.1",  # Eaton PowerWare XUPS
    sys_descr="Eaton 93PM UPS, Network-M2 card",
    objects=_common(lambda d, r, it, i: 0) + (
        Scalar(f"{XUPS}.1.1", STR, lambda d, r: "EATON"),  # xupsIdentManufacturer
        Scalar(f"{XUPS}.1.2", STR, lambda d, r: "Eaton 93PM"),  # xupsIdentModel
        # xupsInputTable watts (W per phase) and xupsInputTotalWatts (W)
        Table(f"{XUPS}.3.4.1", _lines, (
            Column(1, INT, lambda d, r, it, i: i[0]),
            Column(4, INT, lambda d, r, it, i: r.input_power_w / LINES, scale=1, measure=True),
        )),
        Scalar(f"{XUPS}.3.8.3", INT, lambda d, r: r.input_power_w, scale=1, measure=True),
        Scalar(f"{XUPS}.4.9.3", INT, lambda d, r: r.output_power_w, scale=1, measure=True),  # xupsOutputTotalWatts
    ),
)

GENERIC = Profile(
    name="ups_mib",
    kind="ups",
    vendor="generic",
    model="RFC 1628 UPS",
    sys_object_id="1.3.6.1.2.1.33",  # upsMIB itself: no vendor branch to point at
    sys_descr="UPS with an RFC 1628 (UPS-MIB) agent",
    objects=_common(lambda d, r, it, i: r.input_power_w / LINES),
)

PROFILES = (EATON, GENERIC)
