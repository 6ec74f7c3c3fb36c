"""The static policy for jobs without progress, and its pessimistic bound held to the published
points (docs/published-capping.md: the expected values are read from that table)."""

import re
from pathlib import Path

import numpy as np
import pytest

from optimizer.static_policy import pessimistic_min_fraction, pessimistic_throughput, static_cap

DOC = Path(__file__).resolve().parents[2] / "docs" / "published-capping.md"
FRACTIONS = {"training": 0.75, "fine_tuning": 0.75, "batch": 0.7}


def published_rows(test_kind):
    """(id, slowdown, energy, tolerance) of the rows of the published table whose test column is
    *test_kind*."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[7] == test_kind and re.fullmatch(r"[0-9.]+", cells[5]):
            rows.append((cells[0], float(cells[5]), float(cells[6]), float(cells[8])))
    return rows


def test_the_pessimistic_curve_passes_through_its_published_sweep():
    rows = published_rows("anchor-pess")
    assert len(rows) >= 2
    for rid, slowdown, energy, _ in rows:
        x = energy / slowdown  # the job's power ratio under the cap (energy = power × time)
        assert float(pessimistic_throughput("training", x)) == pytest.approx(1.0 / slowdown, abs=0.003), rid


def test_every_published_point_in_the_operating_range_saves_at_least_the_pessimistic_curve():
    """At a published point's slowdown, the pessimistic curve saves no more energy than the point
    did (within the row's stated tolerance): it is the pessimistic end of the spread."""
    rows = [r for r in published_rows("within") + published_rows("anchor-opt") if r[1] <= 1.25]
    assert len(rows) >= 15
    fine = np.linspace(0.3, 1.0, 70001)
    r_fine = pessimistic_throughput("training", fine)
    for rid, slowdown, energy, tol in rows:
        x_pess = fine[np.argmax(r_fine >= 1.0 / slowdown)]  # the power ratio where it is that slow
        assert x_pess * slowdown >= energy - tol, rid


def test_the_floor_keeps_the_pessimistic_loss_within_the_bound():
    for cls, bound in (("training", 0.05), ("batch", 0.10), ("fine_tuning", 0.05)):
        f = pessimistic_min_fraction(cls, bound)
        assert 1.0 - float(pessimistic_throughput(cls, f)) <= bound + 1e-9
        assert 1.0 - float(pessimistic_throughput(cls, f - 0.01)) > bound  # and it is the lowest
    assert pessimistic_min_fraction("inference", 0.0) == 1.0
    # from the published sweep by hand: 5 % loss lies between the 200 W and 250 W rows of 300 W
    assert 196.07 / 274.61 < pessimistic_min_fraction("training", 0.05) < 241.47 / 274.61


def test_unknown_class_is_not_capped():
    for cls in ("", "unknown", "quantum"):
        cap = static_cap(cls, 0.05 if cls else None, FRACTIONS)
        assert cap.fraction == 1.0 and "not capped" in cap.label


def test_a_class_without_a_static_fraction_is_not_capped():
    cap = static_cap("inference", 0.0, FRACTIONS)
    assert cap.fraction == 1.0 and cap.label == "no progress and no static policy for inference: not capped"


def test_the_configured_fraction_is_raised_to_the_pessimistic_floor_never_lowered():
    deep = static_cap("training", 0.05, FRACTIONS)  # 0.75 asked; the floor for 5 % is ~0.85
    assert deep.fraction == pessimistic_min_fraction("training", 0.05) > 0.75
    assert deep.label.startswith("static policy") and "raised" in deep.label
    shallow = static_cap("training", 0.05, {"training": 0.95})
    assert shallow.fraction == 0.95 and "raised" not in shallow.label
    loose = static_cap("batch", 0.10, {"batch": 0.9})
    assert loose.fraction == 0.9


def test_the_static_config_is_validated():
    from dcim.config import OptimizerSettings

    with pytest.raises(ValueError, match="static_cap_fraction for 'training'"):
        OptimizerSettings(static_cap_fraction={"training": 1.5})
    assert np.isclose(OptimizerSettings().control_share, 0.1)
