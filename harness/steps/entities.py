"""Steps that create budget-holding entities through the proxy's management API."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..errors import HarnessError
from ..names import EntityKind, Name
from ..proxy.entities import Entity
from .base import Budget, Step, StepContext, Unsupported, licence_gate


class CreateOrganization(Step, Budget):
    """`/organization/new` (or database rows where the endpoint is licence-gated) with budget fields."""

    action: ClassVar[str] = "create_organization"
    creates: ClassVar[EntityKind | None] = "organization"
    name: Name
    models: list[str] = []
    via: Literal["auto", "api", "db"] = Field(
        "auto",
        description="api: /organization/new; db: rows written straight into the database; "
        "auto: the API, or the database where the release refuses for want of an enterprise licence",
    )

    def run(self, ctx: StepContext) -> str:
        if self.via != "db":
            try:
                ctx.create(self, "organization", {"organization_alias": self.name, "models": self.models})
                return "created through /organization/new"
            except Unsupported as exc:
                if self.via == "api":
                    raise
                note = str(exc)
        else:
            note = "via: db"
        org_id = ctx.db.insert_organization(self.name, self.max_budget, self.budget_duration, self.models)
        ctx.entities[self.name] = Entity("organization", self.name, org_id, created_via="db")
        return f"written into the database ({note})"


class CreateTeam(Step, Budget):
    """`/team/new` with budget fields, in an `organization`; `team_member_budget*` via `extra`."""

    action: ClassVar[str] = "create_team"
    creates: ClassVar[EntityKind | None] = "team"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"organization": ("organization",)}
    name: Name
    organization: Name | None = None
    models: list[str] = []

    def run(self, ctx: StepContext) -> None:
        ctx.create(self, "team", {"team_alias": self.name, "organization_id": ctx.id_of(self.organization), "models": self.models})


class CreateUser(Step, Budget):
    """`/user/new` (user_id = its name) with budget fields, in `teams` and an `organization`."""

    action: ClassVar[str] = "create_user"
    creates: ClassVar[EntityKind | None] = "user"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"teams": ("team",), "organization": ("organization",)}
    name: Name
    teams: list[Name] = []
    organization: Name | None = None
    user_role: str | None = None

    def run(self, ctx: StepContext) -> None:
        body = {
            "user_id": self.name,
            "user_alias": self.name,
            "teams": [ctx.id_of(t) for t in self.teams],
            "organization_id": ctx.id_of(self.organization),
            "user_role": self.user_role,
        }
        ctx.create(self, "user", body)


class CreateKey(Step, Budget):
    """`/key/generate` with budget fields, for a `team`, `organization`, `user` and budget tier (`budget`)."""

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

    def run(self, ctx: StepContext) -> None:
        body = {
            "key_alias": self.name,
            "team_id": ctx.id_of(self.team),
            "organization_id": ctx.id_of(self.organization),
            "user_id": ctx.id_of(self.user),
            "budget_id": ctx.id_of(self.budget),
            "models": self.models,
        }
        ctx.create(self, "key", body)


class CreateEndUser(Step, Budget):
    """`/customer/new` (its id = its name) with budget fields or a budget tier (`budget`)."""

    action: ClassVar[str] = "create_end_user"
    creates: ClassVar[EntityKind | None] = "end_user"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"budget": ("budget",)}
    name: Name
    budget: Name | None = Field(None, description="a budget tier from create_budget (instead of max_budget)")

    def run(self, ctx: StepContext) -> None:
        ctx.create(self, "end_user", {"user_id": self.name, "budget_id": ctx.id_of(self.budget)})


class CreateBudget(Step, Budget):
    """A budget tier (`/budget/new`, id = its name) that keys, end users and tags point at with `budget:`."""

    action: ClassVar[str] = "create_budget"
    creates: ClassVar[EntityKind | None] = "budget"
    name: Name

    def run(self, ctx: StepContext) -> None:
        ctx.create(self, "budget", {"budget_id": self.name})


class CreateTag(Step, Budget):
    """`/tag/new` (the tag's name is its id) with budget fields or a budget tier; `spend: {tags: [...]}` sends tagged calls."""

    action: ClassVar[str] = "create_tag"
    creates: ClassVar[EntityKind | None] = "tag"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"budget": ("budget",)}
    name: Name
    budget: Name | None = Field(None, description="a budget tier from create_budget (the tag's budget_id)")

    def run(self, ctx: StepContext) -> None:
        ctx.require_route("POST", "/tag/new")
        ctx.create(self, "tag", {"name": self.name, "budget_id": ctx.id_of(self.budget)})


class AddTeamMember(Step):
    """`/team/member_add` with an optional `max_budget_in_team`; with `name`, the membership is an entity."""

    action: ClassVar[str] = "add_team_member"
    creates: ClassVar[EntityKind | None] = "team_member"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"team": ("team",), "user": ("user",)}
    name: Name | None = None
    team: Name
    user: Name
    role: Literal["user", "admin"] = "user"
    max_budget_in_team: float | None = Field(None, ge=0)

    def run(self, ctx: StepContext) -> None:
        user_id, team_id = ctx.id_of(self.user), ctx.id_of(self.team)
        body = {"team_id": team_id, "member": {"user_id": user_id, "role": self.role}}
        if self.max_budget_in_team is not None:
            body["max_budget_in_team"] = self.max_budget_in_team
        resp = ctx.target.api("POST", "/team/member_add", json=body)
        licence_gate("POST /team/member_add", resp)  # role admin is an enterprise feature (400 on 1.108.7)
        if not resp.ok:
            raise HarnessError(f"/team/member_add answered {resp.status_code}: {ctx.error_text(resp)}")
        if self.name is not None:
            ctx.entities[self.name] = Entity("team_member", self.name, f"{user_id} in {team_id}", keys=(user_id, team_id))
