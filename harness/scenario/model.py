"""A scenario's metadata, proxy settings and placed steps, as pydantic models.

The step types themselves live in `harness.steps` (one class per step, grouped by family).
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

from typing import Annotated, Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .durations import parse_instant  # noqa: F401  (re-exported: steps and tests parse times with it)


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

    @field_validator("litellm_settings")
    @classmethod
    def _timezone(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("timezone") is not None:
            from ..calendar import zone

            zone(str(value["timezone"]))
        return value


ReplicaName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,15}$")]


class ReplicaSettings(_Strict):
    """One replica's own settings, on top of the scenario's `proxy:` ones (read at start-up)."""

    general_settings: dict[str, Any] = {}
    litellm_settings: dict[str, Any] = {}
    environment: dict[str, str] = Field({}, description="environment variables of this replica only")


class Deployment(_Strict):
    """How the proxy is deployed: named replicas on one database, and whether they share a Redis.

    `redis` says how the proxy finds it, because bugs depend on it: `cache` (litellm_settings.cache
    + cache_params), `coordination` (general_settings.coordination_redis), `env` (bare REDIS_*
    variables), or `none`. Requests of a step without `on:` are spread over the replicas by
    `routing`."""

    replicas: dict[ReplicaName, ReplicaSettings] = Field(
        default_factory=lambda: {"a": ReplicaSettings()},
        description="replica names (a list) or names -> their own settings; the first is the default",
    )
    redis: Literal["none", "cache", "coordination", "env"] = "none"
    routing: Literal["round_robin", "first"] = Field(
        "round_robin", description="who serves a request of a step without `on:`: each replica in turn, or the first")

    @field_validator("replicas", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            if len(set(map(str, value))) != len(value):
                raise ValueError("replica names must be unique")
            return {name: {} for name in value}
        return value

    @field_validator("replicas")
    @classmethod
    def _count(cls, value: dict) -> dict:
        if not 1 <= len(value) <= 4:
            raise ValueError(f"a deployment has 1 to 4 replicas, not {len(value)}")
        if "all" in value:
            raise ValueError("`all` is not a replica name (it means every replica in `on: all`)")
        return value

    @property
    def names(self) -> list[str]:
        return list(self.replicas)


# ---------------------------------------------------------------------------------------------
# The scenario


class Metadata(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    #: the upstream report's title, short (catalogue tables and `check` list it)
    title: str = Field("", max_length=120)
    #: one sentence: what the user sees
    description: str = ""
    issue: str | None = Field(None, description="upstream issue link")
    affects: str | None = Field(
        None,
        description="PEP 440 range of LiteLLM releases where the bug reproduces (the scenario is "
        "expected to fail there), e.g. '<1.85.0' or '>=1.80,<1.85.0'; ranges on more than one release "
        "line are joined by ' || ' (any of them), e.g. '<1.83.3 || >=1.84.0,<1.84.2'",
    )
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]] = []

    @field_validator("affects")
    @classmethod
    def _affects(cls, value: str | None) -> str | None:
        if value is not None:
            affects_ranges(value)
        return value


#: joins the ranges of an `affects` union: PEP 440 has no "or" (a SpecifierSet is an "and")
AFFECTS_OR = "||"


def affects_ranges(text: str) -> list[SpecifierSet]:
    """The ranges of an `affects` value (`'<1.83.3 || >=1.84.0,<1.84.2'`: two); ValueError if one is bad."""
    parts = [part.strip() for part in text.split(AFFECTS_OR)]
    ranges = []
    for part in parts:
        try:
            if not part:
                raise InvalidSpecifier(part)
            ranges.append(SpecifierSet(part))
        except InvalidSpecifier:
            raise ValueError(f"{text!r} is not a version range: write e.g. '<1.85.0', '>=1.80,<1.85.0' "
                             "or, on several release lines, '<1.83.3 || >=1.84.0,<1.84.2'") from None
    return ranges


def affects_contains(text: str | None, version: str) -> bool:
    """Whether any range of `affects` contains `version` (prereleases included)."""
    return text is not None and any(r.contains(version, prereleases=True) for r in affects_ranges(text))


class PlacedStep(BaseModel):
    """A step with where it came from, for error messages and failure reports."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    index: int
    line: int
    source: str
    step: Any  # a harness.steps Step
    #: the `${name.field}` references in the step's values: (name, field, line)
    refs: tuple[tuple[str, str, int], ...] = ()


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: str
    meta: Metadata
    proxy: ProxySettings
    steps: tuple[PlacedStep, ...]
    deployment: Deployment = Deployment()

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def needs_pg_relay(self) -> bool:
        """A step faults PostgreSQL: the replicas reach it through a relay the harness controls."""
        return any(getattr(type(p.step), "needs_pg_relay", False) for p in self.steps)

    def expected_to_fail_on(self, version: str) -> bool:
        return affects_contains(self.meta.affects, version)


def __getattr__(name: str):
    """Step classes and the step table live in `harness.steps`; these names stay importable here."""
    from .. import steps

    if name == "STEP_TYPES":
        return steps.registry()
    for cls in steps.registry().values():
        if cls.__name__ == name:
            return cls
    from ..steps.expectations import ExpectedError

    if name == "ExpectedError":
        return ExpectedError
    raise AttributeError(name)
