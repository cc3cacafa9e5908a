"""Steps that assert: a request's outcome, an entity's state."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .. import assertions
from ..errors import HarnessError
from ..proxy.entities import KINDS, EntityState, parse_time
from ..scenario.durations import parse_span
from .base import ANY_ENTITY, EntityKind, Expectation, Name, Step, Strict, Unsupported


class ExpectedError(Strict):
    type: str = Field("budget_exceeded", description="the error body's `type`")
    message: str | None = Field(None, description="a text the error message must contain")
    status: int | None = Field(None, description="HTTP status; releases differ (400, 429, 422), prefer type+message")


class ExpectRequest(Step):
    """One `/chat/completions` call; `outcome: accepted|rejected`, for rejections `error.type`/`.message`/`.status`."""

    action: ClassVar[str] = "expect_request"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",), "end_user": ("end_user",), "tags": ("tag",)}
    key: Name
    end_user: Name | None = None
    tags: list[Name] = []
    outcome: Literal["accepted", "rejected"]
    error: ExpectedError | None = None

    @model_validator(mode="after")
    def _error_only_when_rejected(self) -> "ExpectRequest":
        if self.outcome == "accepted" and self.error is not None:
            raise ValueError("`error` only goes with `outcome: rejected`")
        return self

    def run(self, ctx) -> str:
        key = ctx.entity(self.key)
        resp = ctx.target.chat(key.secret, ctx.id_of(self.end_user), tags=[ctx.id_of(t) for t in self.tags] or None)
        ctx.target.control("settle")
        outcome = assertions.classify(resp)
        assertions.check_request(outcome, self, entity=key, fail=Expectation)
        return outcome.summary()


class ExpectState(Step):
    """An entity's `spend` (within `tolerance`), `spend_at_least`, `budget_reset_at`, `budget_reset_within`, read through the API and/or the database."""

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

    def run(self, ctx) -> str:
        entity = ctx.entity(self.entity)
        readings: dict[str, EntityState] = {}
        if self.source in ("db", "both"):
            state = ctx.db.state(entity)
            if state is None:
                raise HarnessError(f"no database row for {entity.kind} {entity.name}")
            readings["db"] = state
        api_note = None
        if self.source == "api" or (self.source == "both" and KINDS[entity.kind].info_path is not None):
            try:
                readings["api"] = ctx.api_state(entity)
            except Unsupported as exc:
                # `both` asks for every reading the release offers: an info endpoint that is
                # missing or licence-gated leaves the database reading (`source: api` stays unsupported)
                if self.source == "api":
                    raise
                api_note = f"api: not read ({str(exc)[:120]})"
        now = parse_time(ctx.target.control("clock")["now"])
        notes = []
        for source, state in readings.items():
            assertions.check_state(
                state,
                self,
                source=source,
                clock=now,
                before_reset=ctx.before_reset.get(entity.name) if ctx.reset_job_ran else None,
                reset_job_ran=ctx.reset_job_ran,
                entity=entity,
                fail=Expectation,
            )
            notes.append(f"{source}: spend={state.spend}, budget_reset_at={_iso(state.budget_reset_at)}")
        if api_note:
            notes.append(api_note)
        return "; ".join(notes)


def _iso(moment) -> str:
    return moment.isoformat() if moment else "null"
