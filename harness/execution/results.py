"""What a run produces: the run's settings, each step's and scenario's result, and the verdict rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ..scenario.model import Scenario
from ..verdicts import StepStatus, Verdict, exit_code

Progress = Callable[[str], None]


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
    status: StepStatus = StepStatus.SKIPPED
    seconds: float = 0.0
    message: str = ""
    #: the replica that served each of the step's requests (deployments with several replicas)
    served: list[str] = field(default_factory=list)
    expected: Any = None
    actual: Any = None
    rows: dict[str, Any] | None = None
    #: after the step, when a hook wants readings (Hooks.wants_readings): the scenario's clock
    #: ("clock": ISO time, None when not frozen), the real time it ended ("real") and each
    #: entity's spend and max_budget ("spend": {name: {kind, spend, max_budget}})
    readings: dict[str, Any] | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario
    version: str
    verdict: Verdict
    reason: str
    steps: list[StepResult]
    seconds: float
    environment: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""
    secrets: list[str] = field(default_factory=list)
    #: the faults the scenario injected, with when each started and ended (real UTC time)
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: the budget-related database rows right after the scenario (for bundles; see Hooks.wants_rows)
    database_rows: dict[str, Any] | None = None

    @property
    def failing(self) -> bool:
        return Verdict(self.verdict).failing

    @property
    def first_problem(self) -> StepResult | None:
        return next((s for s in self.steps if StepStatus(s.status).problem), None)


def verdict_for(scenario: Scenario, version: str, steps: list[StepResult], error: str | None) -> tuple[Verdict, str]:
    """(verdict, one-line reason) from the step outcomes and the scenario's `affects` range."""
    expected_fail = scenario.expected_to_fail_on(version)
    affects = f"affects {scenario.meta.affects}" if scenario.meta.affects else "no affected releases"
    unsupported = next((s for s in steps if s.status == StepStatus.UNSUPPORTED), None)
    if unsupported is not None:
        return Verdict.UNSUPPORTED, f"line {unsupported.line}: {unsupported.message}"
    if error is not None:
        return Verdict.ERROR, error
    failed = [s for s in steps if s.status == StepStatus.FAILED]
    if failed:
        where = f"line {failed[0].line}: {failed[0].message}"
        return (Verdict.REPRODUCED if expected_fail else Verdict.REGRESSION), where
    if expected_fail:
        return Verdict.UNEXPECTED_PASS, f"every step passed, but the scenario {affects} includes {version}: the bug did not reproduce"
    return Verdict.PASSED, f"every step passed ({affects})"




@dataclass
class RunOutcome:
    """Every cell of a run, in version order then the scenarios' order."""

    scenarios: list[Scenario]
    versions: list[str]
    results: list[ScenarioResult]
    jobs: int = 1
    seconds: float = 0.0
    release_seconds: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def cell(self, path: str, version: str) -> ScenarioResult | None:
        return next((r for r in self.results if r.scenario.path == path and r.version == version), None)

    @property
    def secrets(self) -> list[str]:
        return sorted({s for r in self.results for s in r.secrets if s})

    def exit_code(self, whole: bool = True) -> int:
        return exit_code([r.verdict for r in self.results], whole)
