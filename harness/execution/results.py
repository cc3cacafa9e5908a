"""What a run produces: the run's settings, each step's and scenario's result, and the verdict rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ..scenario.model import Scenario

Progress = Callable[[str], None]

PASSED, REPRODUCED, UNEXPECTED_PASS, REGRESSION, ERROR, UNSUPPORTED = (
    "passed", "reproduced", "unexpected pass", "regression", "error", "unsupported",
)
#: verdicts that fail a run (CLI exit code, pytest outcome)
FAILING = {UNEXPECTED_PASS, REGRESSION, ERROR}


@dataclass(frozen=True)
class RunConfig:
    """Settings of a whole run, the same for every scenario and release (picklable: matrix
    workers get a copy)."""

    #: replaces `now` in `freeze_clock: now` (`--at`), so a scenario can be proved at an instant
    at: datetime | None = None
    #: the operator's proxy config (`--proxy-config`), under the harness's models and settings
    proxy_config: Any = None
    #: the Redis provider for deployments with Redis (`--redis`, `--redis-url`; None: $HARNESS_REDIS or auto)
    redis: str | None = None
    redis_url: str | None = None

    def describe_clock(self) -> str:
        return f"freeze_clock: now means {self.at.isoformat()} (--at)" if self.at else "freeze_clock: now means the real time"


@dataclass
class StepResult:
    index: int
    line: int
    source: str
    description: str
    status: str = "skipped"  # passed | failed | error | unsupported | skipped
    seconds: float = 0.0
    message: str = ""
    #: the replica that served each of the step's requests (deployments with several replicas)
    served: list[str] = field(default_factory=list)
    expected: Any = None
    actual: Any = None
    rows: dict[str, Any] | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario
    version: str
    verdict: str
    reason: str
    steps: list[StepResult]
    seconds: float
    environment: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""
    secrets: list[str] = field(default_factory=list)
    #: the faults the scenario injected, with when each started and ended (real UTC time)
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING

    @property
    def first_problem(self) -> StepResult | None:
        return next((s for s in self.steps if s.status in ("failed", "error", "unsupported")), None)


def verdict_for(scenario: Scenario, version: str, steps: list[StepResult], error: str | None) -> tuple[str, str]:
    """(verdict, one-line reason) from the step outcomes and the scenario's `affects` range."""
    expected_fail = scenario.expected_to_fail_on(version)
    affects = f"affects {scenario.meta.affects}" if scenario.meta.affects else "no affected releases"
    unsupported = next((s for s in steps if s.status == "unsupported"), None)
    if unsupported is not None:
        return UNSUPPORTED, f"line {unsupported.line}: {unsupported.message}"
    if error is not None:
        return ERROR, error
    failed = [s for s in steps if s.status == "failed"]
    if failed:
        where = f"line {failed[0].line}: {failed[0].message}"
        return (REPRODUCED if expected_fail else REGRESSION), where
    if expected_fail:
        return UNEXPECTED_PASS, f"every step passed, but the scenario {affects} includes {version}: the bug did not reproduce"
    return PASSED, f"every step passed ({affects})"


