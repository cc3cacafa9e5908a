"""A scenario's metadata, proxy settings and placed steps, as pydantic models.

The proxy settings and the deployment are `harness.proxy.settings` models (the proxy reads them).

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

from typing import Annotated, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import shorten
from ..proxy.settings import Deployment, ProxySettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# The scenario

#: a tag for files that take minutes per release (e.g. 33,000 seeded end users): the pytest plugin
#: and the calendar edges leave them out unless --long-scenarios; run, matrix and check run them
LONG_TAG = "long"


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

    @property
    def long(self) -> bool:
        return LONG_TAG in self.tags

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
            raise ValueError(f"{shorten(repr(text))} is not a version range: write e.g. '<1.85.0', '>=1.80,<1.85.0' "
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
    def requires(self) -> frozenset[str]:
        """The fault injectors the steps act on (`Step.requires`): the deployment builds these."""
        return frozenset().union(*(type(p.step).requires for p in self.steps))

    def expected_to_fail_on(self, version: str) -> bool:
        return affects_contains(self.meta.affects, version)

