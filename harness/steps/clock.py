"""Steps that move the proxy's clock (freezegun inside the proxy, through the agent)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from ..durations import parse_instant, parse_span
from ..errors import HarnessError
from ..names import ANY_ENTITY, EntityKind, Name
from .base import Step, StepContext, db_state


class FreezeClock(Step):
    """Stop the proxy's clock at `at` (`now`, or an ISO 8601 time; naive times are UTC)."""

    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "the clock is one for the whole deployment"
    action: ClassVar[str] = "freeze_clock"
    shorthand: ClassVar[str | None] = "at"
    at: str = "now"

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        if value != "now":
            parse_instant(value)
        return value

    def run(self, ctx: StepContext) -> str:
        if self.at != "now":
            at, note = parse_instant(self.at), ""
        elif ctx.config.at is not None:
            at, note = ctx.config.at, " (now = --at)"
        else:
            at, note = None, " (now)"
        return "clock frozen at " + ctx.target.control.freeze(at).isoformat() + note


class AdvanceClock(Step):
    """Move the frozen clock forward by a span (`1d`, `25h`, `1d2h30m`, seconds), or just `past` an entity's budget_reset_at."""

    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "the clock is one for the whole deployment"
    action: ClassVar[str] = "advance_clock"
    shorthand: ClassVar[str | None] = "by"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"past": ANY_ENTITY}
    by: str | float | None = None
    past: Name | None = Field(None, description="an entity: the clock moves to its budget_reset_at (database) plus `margin`")
    margin: str | float = Field("1s", description="with `past`: how far beyond budget_reset_at")

    @field_validator("by", "margin")
    @classmethod
    def _span(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            parse_span(value)
        return value

    @model_validator(mode="after")
    def _one(self) -> "AdvanceClock":
        if (self.by is None) == (self.past is None):
            raise ValueError("give exactly one of `by` (a span) or `past` (an entity)")
        return self

    @property
    def delta(self) -> timedelta:
        return parse_span(self.by) if self.by is not None else timedelta(0)

    def run(self, ctx: StepContext) -> str:
        if self.past is None:
            return "clock now " + ctx.target.control.advance(self.delta.total_seconds()).isoformat()
        entity = ctx.entity(self.past)
        state = db_state(ctx, entity)
        if state.budget_reset_at is None:
            raise HarnessError(f"`past: {self.past}`: its budget_reset_at is not set (nothing to move past)")
        now = ctx.target.control.clock()
        target = state.budget_reset_at + parse_span(self.margin)
        if target <= now:
            return f"clock already past {self.past}'s budget_reset_at {state.budget_reset_at.isoformat()} (now {now.isoformat()})"
        moved = ctx.target.control.advance((target - now).total_seconds()).isoformat()
        return f"clock now {moved}, {self.margin} past {self.past}'s budget_reset_at {state.budget_reset_at.isoformat()}"
