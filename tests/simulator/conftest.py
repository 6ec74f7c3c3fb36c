import pytest

# 2026-01-15 00:00 UTC: a fixed start so tests do not depend on the wall clock.
JAN_NS = 1_768_435_200 * 10**9


@pytest.fixture
def twin(demo_config):
    from simulator.facility import FacilityTwin

    return FacilityTwin(demo_config, seed=42, start_ns=JAN_NS)
