"""What every step type is: a pydantic model (its fields and validation) with a `run` method.

A step type is declared once, in one module of `harness/steps/` (or a plugin's module): the
class holds its fields, checks, the entity kinds its fields name, the entity it creates, its
one-line doc (`doc`, else the docstring's first line) and how it runs (`run(ctx)`, where `ctx`
is the runner's `ScenarioRun`). The loader, the JSON Schema and the README's step table are
generated from these classes (`harness.steps.registry()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..scenario.durations import check_budget_duration

if TYPE_CHECKING:  # the runner imports the steps, not the other way round
    from ..execution.scenario_run import ScenarioRun

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a name the scenario chooses")]
EntityKind = Literal["organization", "team", "user", "key", "end_user", "budget", "team_member", "tag"]
ANY_ENTITY: tuple[EntityKind, ...] = ("organization", "team", "user", "key", "end_user", "budget", "team_member", "tag")


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
    #: the step needs `deployment.redis` (the loader says so at the step's line)
    needs_redis: ClassVar[bool] = False

    on: str | None = Field(
        None, description="the replica this step runs on (a name from `deployment.replicas`, or `all`); "
        "without it, requests are spread by `deployment.routing` and jobs and views run on every replica")

    def created(self) -> list[tuple[str, EntityKind]]:
        """(name, kind) of the entities this step creates, for the loader's reference checks."""
        name = getattr(self, "name", None)
        return [(name, self.creates)] if self.creates is not None and name is not None else []

    def run(self, ctx: "ScenarioRun") -> str | None:
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
