"""Management calls on entities a scenario created: update, regenerate, delete, reset_spend,
database state a report starts from, and any other call (`api_call`).

Where the release lacks the endpoint, or its request model lacks a field the step sends, the
step is `unsupported` with that reason, read from the release's own app (the agent's `route`
view) rather than guessed from a 404.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..durations import check_budget_duration, parse_instant, parse_span
from ..errors import HarnessError
from ..names import ANY_ENTITY, EntityKind, Name
from ..proxy.entities import Entity, token_hash
from .base import Expectation, Step, StepContext, licence_gate

#: update endpoint per kind: method, path, the body fields that name the entity
UPDATE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "key": ("POST", "/key/update", ("key",)),
    "user": ("POST", "/user/update", ("user_id",)),
    "team": ("POST", "/team/update", ("team_id",)),
    "organization": ("PATCH", "/organization/update", ("organization_id",)),
    "end_user": ("POST", "/customer/update", ("user_id",)),
    "budget": ("POST", "/budget/update", ("budget_id",)),
    "team_member": ("POST", "/team/member_update", ("user_id", "team_id")),
    "tag": ("POST", "/tag/update", ("name",)),
}
#: reset_spend endpoints per kind (path templates filled with the entity's ids)
RESET_SPEND: dict[str, tuple[str, str]] = {
    "key": ("POST", "/key/{token}/reset_spend"),
    "team_member": ("POST", "/team/{team_id}/member/{user_id}/reset_spend"),
}


class Update(Step):
    """The kind's update endpoint (`/key/update`, `/user/update`, `/team/update`, `/organization/update`, `/customer/update`, `/budget/update`, `/team/member_update`, `/tag/update`) with the budget fields given."""

    action: ClassVar[str] = "update"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"entity": tuple(UPDATE)}
    entity: Name
    max_budget: float | None = Field(None, ge=0, description="for a team member: its max_budget_in_team")
    budget_duration: str | None = None
    budget_limits: list[dict[str, Any]] | None = None
    spend: float | None = Field(None, ge=0)
    temp_budget_increase: float | None = Field(None, ge=0)
    temp_budget_expiry: str | None = Field(None, description="with temp_budget_increase: an ISO time or `+1d` from the clock")
    team_member_budget: float | None = Field(None, ge=0)
    team_member_budget_duration: str | None = None
    extra: dict[str, Any] = Field({}, description="more fields sent as they are")

    @field_validator("budget_duration", "team_member_budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else check_budget_duration(value)

    @field_validator("temp_budget_expiry")
    @classmethod
    def _expiry(cls, value: str | None) -> str | None:
        if value is not None:
            parse_span(value[1:]) if value[:1] == "+" else parse_instant(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> "Update":
        fields = self.model_dump(exclude={"entity", "extra", "on"}, exclude_none=True)
        if not fields and not self.extra:
            raise ValueError("say what to update: max_budget, budget_duration, budget_limits, spend, "
                             "temp_budget_increase, team_member_budget_duration or extra")
        return self

    def run(self, ctx: StepContext) -> str:
        entity = ctx.entity(self.entity)
        method, path, id_fields = UPDATE[entity.kind]
        body: dict[str, Any] = dict(zip(id_fields, _ids(entity)))
        values = self.model_dump(exclude={"entity", "extra", "on"}, exclude_none=True)
        if entity.kind == "team_member" and "max_budget" in values:
            values["max_budget_in_team"] = values.pop("max_budget")
        if self.temp_budget_expiry is not None and self.temp_budget_expiry[:1] == "+":
            now = ctx.target.control.clock()
            # naive UTC, as clients send it: an offset makes some releases compare naive with aware
            values["temp_budget_expiry"] = (now + parse_span(self.temp_budget_expiry[1:])).replace(tzinfo=None).isoformat()
        body.update(values)
        body.update(self.extra)
        ctx.require_route(method, path, fields=[*values, *self.extra])
        resp = ctx.target.api(method, path, json=body)
        return ctx.answer(method, path, resp)


def _ids(entity: Entity) -> tuple[str, ...]:
    if entity.kind == "key":
        return (entity.secret,)
    return entity.keys or (entity.id,)


class RegenerateKey(Step):
    """`/key/{key}/regenerate`: the key gets a new secret (later steps use it; the old one is kept for `old_key`)."""

    action: ClassVar[str] = "regenerate_key"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",)}
    key: Name
    old_key: Name | None = Field(None, description="keep the old secret as a key entity of this name (to show it stops working)")
    extra: dict[str, Any] = Field({}, description="request fields, e.g. max_budget")

    def created(self):
        return [(self.old_key, "key")] if self.old_key is not None else []

    def run(self, ctx: StepContext) -> str:
        entity = ctx.entity(self.key)
        ctx.require_route("POST", "/key/{key}/regenerate")
        path = f"/key/{entity.secret}/regenerate"
        resp = ctx.target.api("POST", path, json=self.extra or {})
        licence_gate("POST /key/{key}/regenerate", resp)  # an enterprise feature: 500 on 1.108.7
        if not resp.ok:
            raise Expectation(f"POST /key/{{key}}/regenerate answered {resp.status_code}: {ctx.error_text(resp)}",
                              expected="2xx", actual=resp.status_code, entity=entity)
        secret = resp.json().get("key")
        if not secret:
            raise HarnessError("/key/{key}/regenerate answered without a `key`")
        if self.old_key is not None:
            ctx.entities[self.old_key] = Entity("key", self.old_key, entity.id, secret=entity.secret)
        ctx.remember_secret(secret)
        entity.secret, entity.id = secret, token_hash(secret)
        return "regenerated: the key has a new secret"


class DeleteKey(Step):
    """`/key/delete` for a key the scenario created."""

    action: ClassVar[str] = "delete_key"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",)}
    key: Name

    def run(self, ctx: StepContext) -> str:
        entity = ctx.entity(self.key)
        resp = ctx.target.api("POST", "/key/delete", json={"keys": [entity.secret]})
        return ctx.answer("POST", "/key/delete", resp)


class ResetSpend(Step):
    """The release's `reset_spend` endpoint for a key (`/key/{key}/reset_spend`) or a team member (`/team/{team}/member/{user}/reset_spend`)."""

    action: ClassVar[str] = "reset_spend"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"entity": tuple(RESET_SPEND)}
    entity: Name
    reset_to: float = Field(0.0, ge=0, description="the spend to set (both endpoints' `reset_to`)")

    def run(self, ctx: StepContext) -> str:
        entity = ctx.entity(self.entity)
        method, template = RESET_SPEND[entity.kind]
        ctx.require_route(method, template)
        if entity.kind == "key":
            path, body = template.format(token=entity.secret), {"reset_to": self.reset_to}
        else:
            user_id, team_id = entity.keys
            path, body = template.format(team_id=team_id, user_id=user_id), {"reset_to": self.reset_to}
        resp = ctx.target.api(method, path, json=body)
        return ctx.answer(method, template, resp)


class SetState(Step):
    """Write an entity's `spend` and/or `budget_reset_at` (`now`, `-1h`, `+2d`, ISO, `null`) straight into the database; the proxy's caches are not told."""

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

    def run(self, ctx: StepContext) -> str:
        entity = ctx.entity(self.entity)
        reset_at = None
        if self.budget_reset_at not in (None, "null"):
            if self.budget_reset_at == "now" or self.budget_reset_at[:1] in "+-":
                now = ctx.target.control.clock()
                offset = parse_span(self.budget_reset_at[1:]) if self.budget_reset_at != "now" else None
                reset_at = now if offset is None else (now + offset if self.budget_reset_at[0] == "+" else now - offset)
            else:
                reset_at = parse_instant(self.budget_reset_at)
        try:
            ctx.db.set_state(entity, self.spend, reset_at, set_reset=self.budget_reset_at is not None)
        except ValueError as exc:
            raise HarnessError(f"set_state on {entity.kind} {entity.name}: {exc}") from None
        return f"spend={self.spend}, budget_reset_at={reset_at.isoformat() if reset_at else 'null'}"


class ApiCall(Step):
    """Any other call: `method`, `path`, `json`, `params`, `headers`, `as_key` (else the master key), `expect_status`; values can name `${entity.field}`."""

    action: ClassVar[str] = "api_call"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"as_key": ("key",)}
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    json_body: dict[str, Any] | list[Any] | None = Field(None, alias="json")
    params: dict[str, Any] = {}
    headers: dict[str, str] = Field({}, description="extra headers (an `Authorization` here replaces the key's)")
    as_key: Name | None = Field(None, description="send with this key instead of the master key")
    expect_status: int | None = 200

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def run(self, ctx: StepContext) -> str:
        key = ctx.entity(self.as_key)
        resp = ctx.target.api(
            self.method, self.path, key=key.secret if key else None, json=self.json_body, params=self.params or None,
            headers=self.headers or None,
        )
        if resp.status_code != self.expect_status:
            # a licence refusal is unsupported whatever the scenario expected, unless it asked
            # for exactly that status (`expect_status: 403`); also with `expect_status: null`
            licence_gate(f"{self.method} {self.path}", resp)
        if self.expect_status is not None and resp.status_code != self.expect_status:
            raise Expectation(
                f"{self.method} {self.path} answered {resp.status_code}: {ctx.error_text(resp)}",
                expected=self.expect_status,
                actual=resp.status_code,
            )
        return f"{self.method} {self.path} -> {resp.status_code}"
