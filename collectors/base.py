"""What the runner schedules: a collector polls its targets and returns points per target.

Collectors take their I/O as constructor arguments (an SNMP engine, a GPU backend), so tests
pass real agents or a fake of the edge, never a fake of the logic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import RetryCallState, wait_exponential

from dcim.metrics import Point


@dataclass
class TargetResult:
    """The outcome of polling one target (a device, or one GPU host) once."""

    target: str
    points: list[Point] = field(default_factory=list)
    ok: bool = True
    error: str | None = None  # why it failed; never contains a secret
    duration_s: float = 0.0
    # Extra counts for the target's ``collector`` health point (the SNMP poller's dropped replies
    # this cycle); names must be fields of the ``collector`` measurement.
    counters: dict[str, int] = field(default_factory=dict)


class Collector(ABC):
    """A family of targets polled together at one interval (e.g. every SNMP device, or the
    local GPUs). A failing target yields ``ok=False`` for that target; it never raises."""

    name: str = "collector"
    interval_s: float = 10.0

    @abstractmethod
    def targets(self) -> list[str]:
        """The names of the targets this collector polls."""

    @abstractmethod
    async def poll(self, deadline_s: float) -> list[TargetResult]:
        """Poll every target once, finishing within *deadline_s* seconds: a target that has not
        answered by then is reported with ok=False rather than delaying the others."""

    async def close(self) -> None:  # noqa: B027 (optional hook: a collector holding nothing keeps the no-op)
        """Release engines, sockets, libraries."""


def exponential_backoff(initial_s: float, max_s: float) -> Callable[[int], float]:
    """Seconds to wait after the *n*-th consecutive failure (n = 1, 2, …): ``initial_s``, then
    doubling, capped at ``max_s`` — tenacity's ``wait_exponential``. For a collector that
    schedules its next try for a later cycle instead of sleeping in this one (tenacity's own
    retry loop would block the cycle), so only the wait policy is tenacity's."""
    wait = wait_exponential(multiplier=initial_s, max=max_s)

    def after(failures: int) -> float:
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # no Retrying: the cycle is the loop
        state.attempt_number = failures
        return wait(state)

    return after
