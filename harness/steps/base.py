"""What every step type is: a pydantic model (its fields and validation) with a `run` method.

A step type is declared once, in one module of `harness/steps/` (or a plugin's module): the
class holds its fields, checks, the entity kinds its fields name, the entity it creates, the
fault injectors it drives, its one-line doc (`doc`, else the docstring's first line) and how
it runs (`run(ctx)`, where `ctx` is a `StepContext`: the runner's, which steps never import).
The loader, the JSON Schema and the README's step table are generated from these classes
(`harness.steps.registry()`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Protocol

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import assertions
from ..durations import check_budget_duration
from ..names import EntityKind
from ..proxy.control import Route
from ..proxy.entities import Database, Entity, EntityState, missing_row
from ..proxy.fleet import Scope
from ..proxy.settings import ProxySettings


class RunSettings(Protocol):
    """What a step reads of the whole run's settings (harness.execution.results.RunConfig)."""

    @property
    def at(self) -> datetime | None:
        """The instant `freeze_clock: now` means (`--at`); None: the real time."""


class ScenarioSettings(Protocol):
    """What a step reads of its scenario (harness.scenario.model.Scenario)."""

    @property
    def proxy(self) -> ProxySettings:
        """The scenario's `proxy:` settings (`litellm_settings.timezone` for calendar checks)."""


class StepContext(Protocol):
    """Everything a step's `run(ctx)` may use: the scenario's entities, the deployment it runs on
    (`target`: the replicas its `on:` names), the database view, the fault injectors it declared.

    The runner's ScenarioRun is one (tests/test_step_context.py checks every member)."""

    #: the entities created so far, by the scenario's names (create steps add theirs)
    entities: dict[str, Entity]
    #: each entity's database budget_reset_at before the last run_reset_job
    before_reset: dict[str, datetime | None]
    reset_job_ran: bool
    config: RunSettings
    scenario: ScenarioSettings
    db: Database
    target: Scope

    def entity(self, name: str | None) -> Entity | None:
        """The entity of that name (None for None); Skipped if its create step failed."""

    def id_of(self, name: str | None) -> str | None:
        """The entity's id (None for None)."""

    def create(self, step: Budget, kind: EntityKind, body: dict[str, Any]) -> Entity:
        """Create through the kind's endpoint with `body`, the step's budget fields and `extra`,
        and keep it under the step's `name`."""

    def adopt(self, kind: EntityKind, name: str, entity_id: str) -> Entity:
        """An entity the proxy creates by itself (an end user met first in a request)."""

    def require_route(self, method: str, path: str, fields: list[str] | None = None) -> Route:
        """Unsupported unless the release's app has the route (and its request model takes `fields`)."""

    def answer(self, method: str, path: str, resp: requests.Response) -> str:
        """A management call's answer: a licence refusal -> Unsupported; another refusal -> Expectation."""

    def api_state(self, entity: Entity) -> EntityState:
        """The entity's spend and budget_reset_at as the proxy's info endpoint reports them."""

    def error_text(self, resp: requests.Response) -> str:
        """A refusal's message, short."""

    def remember_secret(self, secret: str) -> None:
        """A virtual key the scenario saw, redacted from every report."""

    def injector(self, name: str) -> Any:
        """The deployment's `name` fault injector (harness.faults.injectors), which the running
        step declares in `requires`."""

    def network_faults(self) -> list[str]:
        """The modes of the network faults in force (relays not passing traffic untouched)."""

    def progress(self, message: str) -> None:
        """A progress line for a long step (shown as the run's detail line, not kept in reports)."""

    def spoil_deployment(self, why: str) -> None:
        """The next scenario gets a fresh deployment, not this one (e.g. a job still holds locks in it)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expectation(Exception):
    """A step's expectation did not hold: the scenario's subject misbehaved."""

    def __init__(self, message: str, expected: Any = None, actual: Any = None, entity: Any = None):
        super().__init__(message)
        self.expected, self.actual, self.entity = expected, actual, entity


class Skipped(Exception):
    """The step needs an entity whose creation failed earlier."""


class Unsupported(Exception):
    """The release cannot run this step for a reason outside the scenario (endpoint missing, licence)."""


def licence_gate(what: str, resp: requests.Response) -> None:
    """Unsupported, with the refusal as the reason, when the release refused `what` for want of an
    enterprise licence: the one rule for every request a step sends (assertions.LICENCE_MARKS)."""
    outcome = assertions.classify(resp)
    if outcome.is_licence_refusal:
        raise Unsupported(f"{what} answered {outcome.status}: {outcome.message[:300]}")


def no_row(entity: Entity) -> Expectation:
    """A row the release never wrote (a team membership /team/member_add did not create, say)
    is the release's doing, not the harness's: a failed expectation naming what is missing."""
    return Expectation(f"{missing_row(entity)}: the release did not create it (or has deleted it)",
                       expected="a database row", actual=None)


def db_state(ctx: StepContext, entity: Entity) -> EntityState:
    """The entity's database state; `no_row` when it has none."""
    state = ctx.db.state(entity)
    if state is None:
        raise no_row(entity)
    return state


class Step(Strict):
    action: ClassVar[str]
    #: the entity kind a step with a `name` field creates
    creates: ClassVar[EntityKind | None] = None
    #: fields that name entities, and the kinds each may name
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {}
    #: `- action: value` fills this field
    shorthand: ClassVar[str | None] = None
    #: the one-line doc for the README and the schema (default: the docstring's first line)
    doc: ClassVar[str | None] = None
    #: the family (the module's last name unless a plugin sets it)
    family: ClassVar[str | None] = None
    #: whether `on:` may pick the replicas it runs on (not the clock: one for the whole deployment)
    replica_scoped: ClassVar[bool] = True
    not_scoped_because: ClassVar[str] = ""
    #: the fault injectors it drives (harness.faults.injectors: `pg_relay`, `redis_relay`, `redis`,
    #: `redis_process`, `replicas`); the deployment builds them, the loader checks it can
    requires: ClassVar[frozenset[str]] = frozenset()

    on: str | None = Field(
        None, description="the replica this step runs on (a name from `deployment.replicas`, or `all`); "
        "without it, requests are spread by `deployment.routing` and jobs and views run on every replica")

    def created(self) -> list[tuple[str, EntityKind]]:
        """(name, kind) of the entities this step creates, for the loader's reference checks."""
        name = getattr(self, "name", None)
        return [(name, self.creates)] if self.creates is not None and name is not None else []

    def run(self, ctx: StepContext) -> str | None:
        """Do the step against the target; return a one-line note, raise Expectation/Unsupported/HarnessError."""
        raise NotImplementedError(f"step `{self.action}` has no run()")

    def describe(self) -> str:
        values = self.model_dump(exclude_defaults=True, by_alias=True)
        return f"{self.action}({', '.join(f'{k}={v}' for k, v in values.items())})"

    @classmethod
    def one_line_doc(cls) -> str:
        return (cls.doc or (cls.__doc__ or cls.action).strip().splitlines()[0]).strip()

    @classmethod
    def family_name(cls) -> str:
        return cls.family or cls.__module__.rsplit(".", 1)[-1]


class Budget(Strict):
    """The budget fields every create step takes."""

    max_budget: float | None = Field(None, ge=0)
    soft_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = Field(None, description="LiteLLM's own format: 30s, 1h, 1d, 7d, 1mo")
    budget_limits: list[dict[str, Any]] | None = Field(
        None, description="multi-window budgets, e.g. [{budget_duration: 1d, max_budget: 0.1}] (releases that have them)"
    )
    extra: dict[str, Any] = Field({}, description="more fields sent as they are in the create request")

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else check_budget_duration(value)

    def budget_body(self) -> dict[str, Any]:
        fields = ("max_budget", "soft_budget", "budget_duration", "budget_limits")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}
