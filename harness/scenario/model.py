"""The scenario vocabulary, as pydantic models.

A scenario file is metadata, optional proxy settings, and an ordered list of steps. Each step
is a one-key mapping `{action: {params}}` (or `action: value` for the one-value actions), so
files read like a script:

    steps:
      - create_organization: {name: acme, max_budget: 1.0, budget_duration: 1d}
      - create_key: {name: k1, organization: acme}
      - spend: {key: k1, requests: 25}
      - advance_clock: 1d2h

Entities are referred to by the names the scenario gives them; the loader checks that every
reference names an entity of the right kind created by an earlier step.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import check_budget_duration, parse_span

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a name the scenario chooses")]
EntityKind = Literal["organization", "team", "user", "key", "end_user", "budget", "team_member"]
ANY_ENTITY: tuple[EntityKind, ...] = ("organization", "team", "user", "key", "end_user", "budget", "team_member")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Metadata and proxy settings


class MockModel(_Strict):
    """The model `spend` calls: a mock response with a fixed per-token cost (no provider)."""

    name: str = "harness-mock"
    input_cost_per_token: float = Field(0.001, gt=0)
    output_cost_per_token: float = Field(0.002, gt=0)
    mock_response: str = "ok"


class ProxySettings(_Strict):
    """Merged into the proxy config the harness generates. Scenarios with equal settings share a proxy."""

    model: MockModel = MockModel()
    general_settings: dict[str, Any] = {}
    litellm_settings: dict[str, Any] = {}
    environment: dict[str, str] = Field({}, description="environment variables for the proxy process")


# ---------------------------------------------------------------------------------------------
# Steps


class Step(_Strict):
    action: ClassVar[str]
    creates: ClassVar[EntityKind | None] = None
    #: fields that name entities, and the kinds each may name
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {}

    def describe(self) -> str:
        values = {k: v for k, v in self.model_dump(exclude_defaults=True).items()}
        inner = ", ".join(f"{k}={v}" for k, v in values.items())
        return f"{self.action}({inner})"


class _Budget(_Strict):
    max_budget: float | None = Field(None, ge=0)
    soft_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = Field(None, description="LiteLLM's own format: 30s, 1h, 1d, 7d, 1mo")
    extra: dict[str, Any] = Field({}, description="more fields sent as they are in the create request")

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else check_budget_duration(value)


class CreateOrganization(Step, _Budget):
    action: ClassVar[str] = "create_organization"
    creates: ClassVar[EntityKind | None] = "organization"
    name: Name
    models: list[str] = []
    via: Literal["auto", "api", "db"] = Field(
        "auto",
        description="api: /organization/new; db: rows written straight into the database; "
        "auto: the API, or the database where the release answers 403 (enterprise licence)",
    )


class CreateTeam(Step, _Budget):
    action: ClassVar[str] = "create_team"
    creates: ClassVar[EntityKind | None] = "team"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"organization": ("organization",)}
    name: Name
    organization: Name | None = None
    models: list[str] = []


class CreateUser(Step, _Budget):
    action: ClassVar[str] = "create_user"
    creates: ClassVar[EntityKind | None] = "user"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"teams": ("team",), "organization": ("organization",)}
    name: Name
    teams: list[Name] = []
    organization: Name | None = None
    user_role: str | None = None


class CreateKey(Step, _Budget):
    action: ClassVar[str] = "create_key"
    creates: ClassVar[EntityKind | None] = "key"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {
        "team": ("team",),
        "organization": ("organization",),
        "user": ("user",),
        "budget": ("budget",),
    }
    name: Name
    team: Name | None = None
    organization: Name | None = None
    user: Name | None = None
    budget: Name | None = Field(None, description="a budget tier from create_budget (the key's budget_id)")
    models: list[str] = []


class CreateEndUser(Step, _Budget):
    action: ClassVar[str] = "create_end_user"
    creates: ClassVar[EntityKind | None] = "end_user"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"budget": ("budget",)}
    name: Name
    budget: Name | None = Field(None, description="a budget tier from create_budget (instead of max_budget)")


class CreateBudget(Step, _Budget):
    """A budget tier (`/budget/new`) that keys and end users can point at with `budget:`."""

    action: ClassVar[str] = "create_budget"
    creates: ClassVar[EntityKind | None] = "budget"
    name: Name


class AddTeamMember(Step, _Strict):
    """`/team/member_add`; with `name`, the membership is an entity `expect_state` can read."""

    action: ClassVar[str] = "add_team_member"
    creates: ClassVar[EntityKind | None] = "team_member"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"team": ("team",), "user": ("user",)}
    name: Name | None = None
    team: Name
    user: Name
    role: Literal["user", "admin"] = "user"
    max_budget_in_team: float | None = Field(None, ge=0)


class Spend(Step):
    """Real `/chat/completions` calls of the mock model, with a key (and optionally as an end user)."""

    action: ClassVar[str] = "spend"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",), "end_user": ("end_user",)}
    key: Name
    end_user: Name | None = None
    requests: int | None = Field(None, ge=1, le=10_000)
    until: float | None = Field(None, gt=0, description="keep calling until this much has been spent")
    allow_rejections: bool = Field(False, description="a budget rejection ends the step instead of failing it")

    @model_validator(mode="after")
    def _one_amount(self) -> "Spend":
        if (self.requests is None) == (self.until is None):
            raise ValueError("give exactly one of `requests` (a count) or `until` (an amount)")
        return self


class FlushSpend(Step):
    """Write queued spend to the database now (the proxy's own update_spend job)."""

    action: ClassVar[str] = "flush_spend"


class RunResetJob(Step):
    """Run the proxy's own scheduled budget reset job now, inside the proxy."""

    action: ClassVar[str] = "run_reset_job"


class FreezeClock(Step):
    """Stop the proxy's clock at `at` (`now`, or an ISO 8601 time; naive times are UTC)."""

    action: ClassVar[str] = "freeze_clock"
    at: str = "now"

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        if value != "now":
            parse_instant(value)
        return value


class AdvanceClock(Step):
    """Move the frozen clock forward (`1d`, `25h`, `1d2h30m`, or seconds)."""

    action: ClassVar[str] = "advance_clock"
    by: str | float

    @field_validator("by")
    @classmethod
    def _by(cls, value: str | float) -> str | float:
        parse_span(value)
        return value

    @property
    def delta(self) -> timedelta:
        return parse_span(self.by)


class SetState(Step):
    """Write an entity's spend and/or budget_reset_at straight into the database.

    For states a report starts from ("already over budget", "reset time in the past"). The
    proxy's caches are not told, exactly as with any outside write.
    """

    action: ClassVar[str] = "set_state"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"entity": ANY_ENTITY}
    entity: Name
    spend: float | None = Field(None, ge=0)
    budget_reset_at: str | None = Field(
        None, description="`now`, an offset from the clock like `-1h` or `+2d`, an ISO time, or `null`"
    )

    @field_validator("budget_reset_at")
    @classmethod
    def _reset_at(cls, value: str | None) -> str | None:
        if value not in (None, "now", "null"):
            if value[:1] in "+-":
                parse_span(value[1:])
            else:
                parse_instant(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> "SetState":
        if self.spend is None and self.budget_reset_at is None:
            raise ValueError("say what to set: `spend` and/or `budget_reset_at`")
        return self


class ExpectedError(_Strict):
    type: str = Field("budget_exceeded", description="the error body's `type`")
    message: str | None = Field(None, description="a text the error message must contain")
    status: int | None = Field(None, description="HTTP status; releases differ (400, 429, 422), prefer type+message")


class ExpectRequest(Step):
    """One `/chat/completions` call whose outcome is asserted."""

    action: ClassVar[str] = "expect_request"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",), "end_user": ("end_user",)}
    key: Name
    end_user: Name | None = None
    outcome: Literal["accepted", "rejected"]
    error: ExpectedError | None = None

    @model_validator(mode="after")
    def _error_only_when_rejected(self) -> "ExpectRequest":
        if self.outcome == "accepted" and self.error is not None:
            raise ValueError("`error` only goes with `outcome: rejected`")
        return self


class ExpectState(Step):
    """Assert on an entity's spend and reset time, read through the API and/or the database."""

    action: ClassVar[str] = "expect_state"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"entity": ANY_ENTITY}
    entity: Name
    spend: float | None = Field(None, ge=0)
    spend_at_least: float | None = Field(None, ge=0)
    tolerance: float = Field(1e-6, ge=0)
    budget_reset_at: Literal["moved_forward", "unchanged", "in_future", "set"] | None = Field(
        None,
        description="moved_forward: later than before the last run_reset_job and than the clock; "
        "unchanged: as before the last run_reset_job",
    )
    budget_reset_within: str | None = Field(
        None, description="budget_reset_at lies after the clock and at most this span later (e.g. 1d: by next midnight)"
    )
    source: Literal["api", "db", "both"] = Field(
        "both", description="both: the API where the release has an info endpoint for the kind, and the database"
    )

    @field_validator("budget_reset_within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        if value is not None:
            parse_span(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> "ExpectState":
        if all(v is None for v in (self.spend, self.spend_at_least, self.budget_reset_at, self.budget_reset_within)):
            raise ValueError("say what to expect: `spend`, `spend_at_least`, `budget_reset_at` or `budget_reset_within`")
        return self


class ApiCall(Step):
    """Any other management call; `as` is a key name or `master`."""

    action: ClassVar[str] = "api_call"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"as_key": ("key",)}
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    json_body: dict[str, Any] | None = Field(None, alias="json")
    params: dict[str, Any] = {}
    as_key: Name | None = Field(None, description="send with this key instead of the master key")
    expect_status: int | None = 200

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


STEP_TYPES: dict[str, type[Step]] = {
    cls.action: cls
    for cls in (
        CreateOrganization,
        CreateTeam,
        CreateUser,
        CreateKey,
        CreateEndUser,
        CreateBudget,
        AddTeamMember,
        Spend,
        FlushSpend,
        RunResetJob,
        FreezeClock,
        AdvanceClock,
        SetState,
        ExpectRequest,
        ExpectState,
        ApiCall,
    )
}

#: actions written as `- action: value`; the value fills this field
SHORTHAND_FIELD: dict[str, str] = {"freeze_clock": "at", "advance_clock": "by"}


# ---------------------------------------------------------------------------------------------
# The scenario


class Metadata(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    issue: str | None = Field(None, description="upstream issue link")
    affects: str | None = Field(
        None,
        description="PEP 440 range of LiteLLM releases where the bug reproduces (the scenario is "
        "expected to fail there), e.g. '<1.85.0' or '>=1.80,<1.85.0'",
    )
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]] = []

    @field_validator("affects")
    @classmethod
    def _affects(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SpecifierSet(value)
            except InvalidSpecifier:
                raise ValueError(f"{value!r} is not a version range: write e.g. '<1.85.0' or '>=1.80,<1.85.0'") from None
        return value


class PlacedStep(BaseModel):
    """A step with where it came from, for error messages and failure reports."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    index: int
    line: int
    source: str
    step: Step


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: str
    meta: Metadata
    proxy: ProxySettings
    steps: tuple[PlacedStep, ...]

    @property
    def name(self) -> str:
        return self.meta.name

    def expected_to_fail_on(self, version: str) -> bool:
        return self.meta.affects is not None and SpecifierSet(self.meta.affects).contains(version, prereleases=True)


def parse_instant(value: str) -> datetime:
    """ISO 8601 -> aware UTC datetime; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time: write `now` or ISO 8601 like 2026-03-02T10:00:00Z") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
