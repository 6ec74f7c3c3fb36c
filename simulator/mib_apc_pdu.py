"""APC / Schneider PowerNet-MIB rPDU2 group (metered-by-outlet rack PDU, e.g. AP8641).

Layout and scales as in the snmpsim-data recording of a real AP8641 (reference §1.1): every status
table is indexed by a row index with column 2 = module (PDU number in a daisy chain, here 1).
Scales: device/phase power in hundredths of kW, energy in tenths of kWh, currents in tenths of A,
outlet power in W, voltage in V, power factor in hundredths.
"""

from __future__ import annotations

from simulator.mib_common import INT, ROW_NUMBER, STR, Column, Profile, Scalar, Table, enumerate_rows

RPDU2 = "1.3.6.1.4.1.318.1.1.26"


def load_state(current_a: float, limit_a: float) -> int:
    """rPDU2 LoadState enum: 1 lowLoad, 2 normal, 3 nearOverload, 4 overload (APC defaults 80 %/100 %)."""
    share = current_a / limit_a if limit_a else 0.0
    if share < 0.05:
        return 1
    return 2 if share < 0.8 else 3 if share < 1.0 else 4


def _pf(power_w: float, apparent_va: float) -> float:
    return power_w / apparent_va if apparent_va > 0 else 1.0


def _one(dev, r):
    return [((1,), r)]


def _phases(dev, r):
    return enumerate_rows(r.phases)


def _outlets(dev, r):
    return enumerate_rows(r.outlets)


def _probe(dev, r):
    """The rack's probes on the PDU's sensor port: 1 at the front (inlet temperature and
    humidity), 2 at the rear (exhaust temperature), each named as a site names them."""
    rows = []
    if r.inlet_temp_c is not None:
        rows.append(((1,), ("inlet", r.inlet_temp_c, r.inlet_rh_pct)))
    if r.outlet_temp_c is not None:
        rows.append(((2,), ("rear", r.outlet_temp_c, None)))
    return rows


def _idx_columns(number_sub: int | None = None) -> tuple[Column, ...]:
    # Index (1), Module (2) and, for phase/bank/outlet rows, the Number column: the index itself.
    cols = [Column(1, INT, ROW_NUMBER), Column(2, INT, lambda d, r, it, i: 1)]
    if number_sub is not None:
        cols.append(Column(number_sub, INT, ROW_NUMBER))
    return tuple(cols)


PROFILE = Profile(
    name="apc_rpdu2",
    kind="pdu",
    vendor="APC",
    model="AP8641",
    sys_object_id="1.3.6.1.4.1.318.1.3.4.6",  # rPDU2 (from the AP8641 recording)
    sys_descr="APC Web/SNMP Management Card (MB:v4.1.0 PF:v6.7.2 PN:apc_hw05_aos_672.bin "
              "AF1:v6.7.2 AN1:apc_hw05_rpdu2g_672.bin MN:AP8641 HR:02)",
    objects=(
        # rPDU2IdentTable: name and model
        Table(f"{RPDU2}.2.1.1", _one, _idx_columns() + (
            Column(3, STR, lambda d, r, it, i: d.name),
            Column(8, STR, lambda d, r, it, i: "AP8641"),
        )),
        # rPDU2DeviceStatusTable
        Table(f"{RPDU2}.4.3.1", _one, _idx_columns() + (
            Column(3, STR, lambda d, r, it, i: d.name),
            Column(4, INT, lambda d, r, it, i: load_state(max((p.current_a for p in r.phases), default=r.current_a),
                                                       d.breaker_a), measure=True),
            Column(5, INT, lambda d, r, it, i: r.power_w, scale=0.1, measure=True),  # hundredths kW
            Column(9, INT, lambda d, r, it, i: r.energy_kwh, scale=10, measure=True),  # tenths kWh
            Column(16, INT, lambda d, r, it, i: r.apparent_power_va, scale=0.1, measure=True),  # hundredths kVA
            Column(17, INT, lambda d, r, it, i: _pf(r.power_w, r.apparent_power_va), scale=100, measure=True),
        )),
        # rPDU2PhaseConfigTable: thresholds in A
        Table(f"{RPDU2}.6.1.1", _phases, _idx_columns(3) + (
            Column(6, INT, lambda d, r, it, i: d.breaker_a * 0.8, scale=1),
            Column(7, INT, lambda d, r, it, i: d.breaker_a, scale=1),
        )),
        # rPDU2PhaseStatusTable
        Table(f"{RPDU2}.6.3.1", _phases, _idx_columns(3) + (
            Column(4, INT, lambda d, r, p, i: load_state(p.current_a, d.breaker_a), measure=True),
            Column(5, INT, lambda d, r, p, i: p.current_a, scale=10, measure=True),  # tenths A
            Column(6, INT, lambda d, r, p, i: p.voltage_v, scale=1, measure=True),  # V
            Column(7, INT, lambda d, r, p, i: p.power_w, scale=0.1, measure=True),  # hundredths kW
            Column(8, INT, lambda d, r, p, i: p.apparent_power_va, scale=0.1, measure=True),
            Column(9, INT, lambda d, r, p, i: _pf(p.power_w, p.apparent_power_va), scale=100, measure=True),
        )),
        # rPDU2BankConfigTable / rPDU2BankStatusTable: one breaker bank per phase here
        Table(f"{RPDU2}.8.1.1", _phases, _idx_columns(3) + (
            Column(7, INT, lambda d, r, p, i: d.breaker_a, scale=1),
        )),
        Table(f"{RPDU2}.8.3.1", _phases, _idx_columns(3) + (
            Column(4, INT, lambda d, r, p, i: load_state(p.current_a, d.breaker_a), measure=True),
            Column(5, INT, lambda d, r, p, i: p.current_a, scale=10, measure=True),  # tenths A
        )),
        # rPDU2OutletMeteredStatusTable
        Table(f"{RPDU2}.9.4.3.1", _outlets, _idx_columns(4) + (
            Column(3, STR, lambda d, r, o, i: f"{d.rack}-{d.feed}-outlet-{i[0]:02d}"),
            Column(6, INT, lambda d, r, o, i: o.current_a, scale=10, measure=True),  # tenths A
            Column(7, INT, lambda d, r, o, i: o.power_w, scale=1, measure=True),  # W
            Column(11, INT, lambda d, r, o, i: o.energy_kwh, scale=10, measure=True),  # tenths kWh
        )),
        # rPDU2SensorTempHumidityStatusTable: the rack inlet probe
        Table(f"{RPDU2}.10.2.2.1", _probe, _idx_columns() + (
            Column(3, STR, lambda d, r, it, i: f"{d.rack} {it[0]}"),
            Column(8, INT, lambda d, r, it, i: it[1], scale=10, measure=True),  # tenths °C
            Column(10, INT, lambda d, r, it, i: it[2], scale=1, measure=True),  # %; none at the rear
        )),
        # legacy rPDUIdentDevicePowerWatts (W)
        Scalar("1.3.6.1.4.1.318.1.1.12.1.16", INT, lambda d, r: r.power_w, scale=1, measure=True),
    ),
)
