"""The reference model: entities with budgets, requests admitted or rejected, spend, the reset job.

Written from LiteLLM's budget documentation (docs/model.md lists the pages), not from its code.
Pure Python and deterministic: every operation takes the instant it happens at, so nothing here
reads a clock or the machine's zone.

A budget tier (kind `budget`) lends its max_budget and budget_duration to the entities that link
to it (`budget_id`) and holds the budget_reset_at of that shared period; the spend stays on each
linked entity. A team member is the pair (user, team), id `user_id/team_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .options import KINDS, ModelOptions
from .periods import next_reset


@dataclass
class Entity:
    kind: str
    id: str
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    spend: float = 0.0
    #: links by kind: key -> team/user/organization/budget, team -> organization, end_user/team_member -> budget
    links: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    admitted: bool
    #: (kind, id) of every budget the request met, in checking order
    checked: tuple[tuple[str, str], ...]
    #: the first budget that rejected it, if any
    blocked_by: tuple[str, str] | None = None


def member_id(user_id: str, team_id: str) -> str:
    return f"{user_id}/{team_id}"


class World:
    def __init__(self, options: ModelOptions | None = None) -> None:
        self.options = options or ModelOptions()
        self.entities: dict[tuple[str, str], Entity] = {}

    # --- management -------------------------------------------------------------------------
    def create(self, kind: str, id: str, now: datetime, *, max_budget: float | None = None,
               budget_duration: str | None = None, **links: str) -> Entity:
        if kind not in KINDS:
            raise ValueError(f"unknown entity kind {kind!r}; kinds: {', '.join(KINDS)}")
        if (kind, id) in self.entities:
            raise ValueError(f"{kind} {id!r} exists already")
        for link_kind, link_id in links.items():
            if (link_kind, link_id) not in self.entities:
                raise ValueError(f"{kind} {id!r} links to {link_kind} {link_id!r}, which does not exist")
        entity = Entity(kind, id, max_budget, budget_duration, links=dict(links))
        if budget_duration:
            # docs/proxy/team_budgets: the create response already carries budget_reset_at
            entity.budget_reset_at = next_reset(budget_duration, now, self.options)
        self.entities[(kind, id)] = entity
        return entity

    def add_member(self, user_id: str, team_id: str, now: datetime, *, max_budget: float | None = None,
                   budget_id: str | None = None) -> Entity:
        links = {"user": user_id, "team": team_id}
        if budget_id:
            links["budget"] = budget_id
        return self.create("team_member", member_id(user_id, team_id), now, max_budget=max_budget, **links)

    def get(self, kind: str, id: str) -> Entity:
        try:
            return self.entities[(kind, id)]
        except KeyError:
            raise KeyError(f"no {kind} {id!r} in the model") from None

    def update(self, kind: str, id: str, now: datetime, **fields) -> Entity:
        """A management update: any of max_budget, budget_duration, spend."""
        entity = self.get(kind, id)
        unknown = set(fields) - {"max_budget", "budget_duration", "spend"}
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)} of a {kind}")
        if "max_budget" in fields:
            entity.max_budget = fields["max_budget"]
        if "spend" in fields:
            entity.spend = float(fields["spend"])
        if "budget_duration" in fields:
            # an update that gives budget_duration sets its period afresh, also when the value is
            # the one the entity had (the generator expects the next boundary after any such update)
            entity.budget_duration = fields["budget_duration"]
            if not entity.budget_duration:
                entity.budget_reset_at = None
            elif self.options.duration_update_moves_reset_at or entity.budget_reset_at is None:
                entity.budget_reset_at = next_reset(entity.budget_duration, now, self.options)
        return entity

    def reset_spend(self, kind: str, id: str) -> Entity:
        entity = self.get(kind, id)
        entity.spend = 0.0
        return entity

    # --- limits -----------------------------------------------------------------------------
    def limits(self, entity: Entity) -> tuple[float | None, str | None, datetime | None]:
        """(max_budget, budget_duration, budget_reset_at) in force: the entity's own, else its tier's."""
        tier = self.entities.get(("budget", entity.links["budget"])) if "budget" in entity.links else None
        if tier is not None and entity.max_budget is None and entity.budget_duration is None:
            return tier.max_budget, tier.budget_duration, tier.budget_reset_at
        return entity.max_budget, entity.budget_duration, entity.budget_reset_at

    def blocks(self, entity: Entity) -> bool:
        max_budget = self.limits(entity)[0]
        if max_budget is None:
            return False
        if self.options.comparison.get(entity.kind, "over_limit") == "at_limit":
            return entity.spend >= max_budget
        return entity.spend > max_budget

    # --- requests ---------------------------------------------------------------------------
    def applicable(self, key_id: str, end_user: str | None = None, tags: tuple[str, ...] = ()) -> list[Entity]:
        """Every entity whose budget a request with this key (and end user, tags) meets."""
        key = self.get("key", key_id)
        chain: list[Entity] = [key]
        team = self.entities.get(("team", key.links["team"])) if "team" in key.links else None
        user = self.entities.get(("user", key.links["user"])) if "user" in key.links else None
        if team is not None:
            chain.append(team)
        org_id = key.links.get("organization") or (team.links.get("organization") if team else None)
        if org_id:
            chain.append(self.get("organization", org_id))
        chain += [self.get("tag", t) for t in tags]
        if user is not None and (team is None or self.options.team_key_meets_user_budget):
            chain.append(user)
        if user is not None and team is not None:
            member = self.entities.get(("team_member", member_id(user.id, team.id)))
            if member is not None:
                chain.append(member)
        if end_user is not None:
            customer = self.get("end_user", end_user)
            chain = [customer] if self.options.end_user_request_meets == "end_user_only" else chain + [customer]
        return chain

    def spenders(self, key_id: str, end_user: str | None = None, tags: tuple[str, ...] = ()) -> list[Entity]:
        """Every entity an admitted request's cost accrues to (docs: spend is tracked per key,
        user, team, team member, organization, end user and tag, whether or not it has a budget)."""
        key = self.get("key", key_id)
        found = {(e.kind, e.id): e for e in self.applicable(key_id, None, tags)}
        if "user" in key.links:
            found[("user", key.links["user"])] = self.get("user", key.links["user"])
        if end_user is not None:
            found[("end_user", end_user)] = self.get("end_user", end_user)
        return list(found.values())

    def request(self, key_id: str, cost: float, *, end_user: str | None = None, tags: tuple[str, ...] = ()) -> Decision:
        """One request: admitted when no budget it meets blocks; an admitted one adds `cost` everywhere."""
        checked = self.applicable(key_id, end_user, tags)
        for entity in checked:
            if self.blocks(entity):
                return Decision(False, tuple((e.kind, e.id) for e in checked), (entity.kind, entity.id))
        for entity in self.spenders(key_id, end_user, tags):
            entity.spend += cost
        return Decision(True, tuple((e.kind, e.id) for e in checked))

    # --- the reset job ----------------------------------------------------------------------
    def _due(self, reset_at: datetime | None, now: datetime) -> bool:
        if reset_at is None:
            return False
        return reset_at <= now if self.options.reset_when == "due" else reset_at < now

    def run_reset(self, now: datetime) -> set[tuple[str, str]]:
        """The reset job at `now`: zero exactly the entities whose period has ended, move their
        budget_reset_at (or their tier's) to the next boundary. Returns the (kind, id) zeroed."""
        zeroed: set[tuple[str, str]] = set()
        due_tiers = {e.id for e in self.entities.values()
                     if e.kind == "budget" and e.budget_duration and self._due(e.budget_reset_at, now)}
        for entity in self.entities.values():
            if entity.kind == "budget" or entity.kind not in self.options.reset_kinds:
                continue
            _, duration, reset_at = self.limits(entity)
            uses_tier = reset_at is not None and entity.budget_reset_at is None and "budget" in entity.links
            if uses_tier:
                if entity.links["budget"] in due_tiers:
                    entity.spend = 0.0
                    zeroed.add((entity.kind, entity.id))
            elif duration and self._due(entity.budget_reset_at, now):
                entity.spend = 0.0
                entity.budget_reset_at = next_reset(duration, now, self.options)
                zeroed.add((entity.kind, entity.id))
        for tier_id in due_tiers:
            tier = self.get("budget", tier_id)
            tier.budget_reset_at = next_reset(tier.budget_duration, now, self.options)
        return zeroed
