"""[optimizer] (the daemon that sets GPU power caps) and [agent] (the GPU-node agent that applies them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from dcim.config.base import (
    AGENT_AUTH_HINT,
    MAX_SITE_KW,
    MAX_STALE_AFTER_S,
    MIN_INTERVAL_S,
    Name,
    SecretRef,
    Strict,
    check_host,
    check_url,
)


class OptimizerSettings(Strict):
    mode: Literal["off", "advise", "enforce"] = "advise"
    # A cycle reads the store fleet-wide: more than once a second only loads it.
    interval_s: float = Field(60.0, ge=1, le=3600)
    # A cap outlives the daemon by at most its lease: an hour bounds how long a dead daemon's caps stay.
    lease_s: float = Field(300.0, ge=1, le=3600)
    max_step_w: float = Field(50.0, gt=0, le=500)
    # Also at most STALE_AFTER_POLLS polls of the slowest collector (checked across sections).
    stale_after_s: float = Field(120.0, ge=1, le=MAX_STALE_AFTER_S)
    cap_fraction_floor: float = Field(0.5, ge=0.1, le=1)
    # Largest throughput loss each job class may suffer from capping (0.05 = 5 %).
    throughput_loss_bound: dict[Name, float] = {
        "training": 0.05, "fine_tuning": 0.05, "inference": 0.0, "batch": 0.10,
    }
    # Demand response: the largest throughput loss per job class while a DR budget holds
    # (separate from the efficiency bound above; a class not listed keeps its efficiency bound).
    dr_loss_bound: dict[Name, float] = {"training": 0.20, "fine_tuning": 0.20, "inference": 0.0, "batch": 0.40}
    # Step bound while a DR budget holds and on the cycle it ends: a grid signal is met in one
    # cycle and its caps are released in one (an H100's whole 200–700 W range is 500 W).
    dr_max_step_w: float = Field(500.0, gt=0, le=2000)
    # Jobs that report no progress get only this static cap per class, as a fraction of the GPU's
    # max limit (the MIT Lincoln Lab approach, 0.6-0.8 of TDP), never deeper than the pessimistic
    # end of the published curves allows for the class's loss bound (optimizer/static_policy.py).
    # A class not listed (or unknown) is not capped.
    static_cap_fraction: dict[Name, float] = {"training": 0.75, "fine_tuning": 0.75, "batch": 0.7}
    # M&V: this share of jobs (drawn per job by a hash of its id and control_seed) stays at default
    # limits as a control group for the measured saving; 0 turns the control group off.
    control_share: float = Field(0.1, ge=0, le=0.5)
    control_seed: int = Field(0, ge=0)
    breaker_derate: float = Field(0.8, ge=0.5, le=1)
    # "2N": each of a rack's A/B feeds must carry the whole rack on failover, so its budget is the
    # weakest single feed; "shared": the feeds share the load, budget = their sum. Per rack too.
    feed_redundancy: Literal["2N", "shared"] = "2N"
    site_power_budget_kw: float | None = Field(None, gt=0, le=MAX_SITE_KW)
    host: str = "127.0.0.1"
    port: int = Field(8087, ge=0, le=65535)  # 0: any free port
    # POST /v1/progress on its own listener (uvicorn; see optimizer/progress_server.py); 0: any free port
    progress_port: int = Field(8088, ge=0, le=65535)
    token: SecretRef | None = None
    model_path: Path = Path("var/pue_model.pkl")
    report_dir: Path = Path("var/reports")

    @field_validator("static_cap_fraction")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for key, frac in value.items():
            if not 0.1 <= frac <= 1:
                raise ValueError(f"static_cap_fraction for {key!r} must be between 0.1 and 1, got {frac}")
        return value

    @field_validator("throughput_loss_bound", "dr_loss_bound")
    @classmethod
    def _bounds(cls, value: dict[str, float]) -> dict[str, float]:
        for key, bound in value.items():
            if not 0 <= bound <= 1:
                raise ValueError(f"bound for {key!r} must be between 0 and 1, got {bound}")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)


class AgentSettings(Strict):
    """The GPU-node agent (``dcim agent``) on each GPU server."""

    # Where the optimizer serves desired state; the token is the optimizer's API token.
    optimizer_url: str = "http://127.0.0.1:8087"
    token: SecretRef | None = None
    # This server's host name in the inventory (a Name, like [[...servers]] host: it becomes the
    # store's host tag and a report cell); default: the machine's host name.
    host: Name | None = None
    # Each cap's own lease (set by the optimizer's lease_s) bounds how long it outlives contact.
    poll_interval_s: float = Field(15.0, ge=MIN_INTERVAL_S, le=600)
    # The caps this agent set and has not yet reverted (written before each set), so that a
    # restarted agent, or `dcim agent --revert` after a crash, returns them to default.
    cap_record_path: Path = Path("var/agent-caps.json")

    @field_validator("optimizer_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return check_url(value, AGENT_AUTH_HINT)

