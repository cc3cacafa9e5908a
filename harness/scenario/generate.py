"""Scenario files whose expectations come from the reference model (harness/model).

An exploration (issue 18) draws a small world and a list of actions; this turns them into an
ordinary scenario: the actions as steps, and after each one what the model predicts, as
`expect_request` / `expect_state` steps (request outcomes; database spend of every entity;
budget_reset_at after creation and after the reset job). `python -m harness run` replays the
file as it stands; a failing expectation is a place where the release and the documented
behaviour (under the model options written in the file) disagree.

Every expectation carries a signature (entity kind, step family, model rule) so one bug gives
one finding: the family says what the entity went through last (`create`, `request`, `reset`,
`reset_after_duration_update`, `update_max_budget`, `update_spend`, `reset_spend`), so that a
team member whose budget_duration came from /team/member_update is told apart from one whose
period was set at creation.

Every call costs the spend model's fixed 0.05 (README: deterministic cost); the clock is frozen
at a fixed instant the caller chooses, so a file replays the same on any day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from ..durations import BUDGET_DURATION, parse_span
from ..model import ModelOptions, World, member_id

COST = 0.05
#: the calendar boundary `expect_state: budget_reset_is` checks, per documented duration
CALENDAR = {"1d": "local_midnight", "24h": "local_midnight", "7d": "next_monday", "30d": "first_of_next_month"}
#: scenario names of the entities a topology may hold (one of each kind)
NAMES = {"organization": "org1", "team": "team1", "user": "user1", "team_member": "member1", "key": "key1",
         "end_user": "customer1", "tag": "tag1", "budget": "tier1"}
#: the kinds whose update endpoint takes `spend` (on 1.82.3 /team/, /tag/, /customer/, /budget/update and
#: /team/member_update do not)
SPEND_UPDATES = ("key", "user")
#: updates sent as the raw body (`api_call`), not `update`: the documented field is missing from the
#: endpoint's request model on affected releases, which drop it, and that drop is itself the
#: catalogue's report (#33941: /customer/update drops budget_duration), as the catalogue scenario
#: sends it; `update` would call such a release unsupported and the bug would never show
RAW_UPDATES = {("end_user", "budget_duration"): ("/customer/update", {"user_id": "${%s.id}" % NAMES["end_user"]})}
#: rules (the third part of a signature)
ADMITTED = "admitted unless a budget it meets is spent"
ADMITTED_AGAIN = "admitted again once the budget that blocked it is lifted"
ACCRUES = "an admitted request's cost accrues to every entity it spends through"
ZEROED = "the reset job zeroes exactly the entities whose period ended"
KEPT = "the reset job leaves an entity whose period has not ended"
MOVED = "budget_reset_at moves to the next boundary of budget_duration"
SET_AT_CREATE = "a new budget_duration sets budget_reset_at to its next boundary"
UPDATED = "a management update sets the entity's spend"


def rejected_by(kind: str) -> str:
    return f"rejected by the {kind} budget"


@dataclass(frozen=True)
class Budget:
    max_budget: float | None
    budget_duration: str | None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in (("max_budget", self.max_budget), ("budget_duration", self.budget_duration)) if v is not None}


#: an end user or tag on the budget tier instead of a budget of its own
TIER = "tier"


@dataclass(frozen=True)
class Topology:
    """One key, optionally in a team, optionally under an organization (through the team, or the
    key directly when there is no team), optionally owned by a user (a team member when the key
    is in a team: `member` is its max_budget_in_team), every request optionally naming an end
    user and carrying a tag, each of them optionally on one budget tier (`Budget` or TIER)."""
    organization: Budget | None
    team: Budget | None
    key: Budget
    user: Budget | None = None
    member: float | None = None
    end_user: Budget | str | None = None
    tag: Budget | str | None = None
    tier: Budget | None = None


#: ("request",) | ("advance", "1d2h") | ("reset",) | ("update", kind, field, value) | ("reset_spend", kind)
#: an update or reset_spend of a kind the topology lacks is left out (so shrinking may drop kinds)
Action = tuple


def build(topology: Topology, actions: list[Action], start: datetime, *, name: str, options: ModelOptions,
          header: list[str] = (), rules: list[tuple[str, str, str] | None] | None = None,
          skip: frozenset[tuple[str, str, str]] = frozenset(),
          deployment: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The scenario mapping and the comment lines above it; the model runs alongside. `rules`,
    when given, receives one entry per step: None for an action, else the (entity kind, step
    family, model rule) the expectation checks. Expectations whose signature is in `skip` (a
    discrepancy already reported) are left out, so a known one does not hide the next.
    `deployment` is the scenario's `deployment:` section (replicas, Redis), as it stands."""
    scenario, lines = _Builder(topology, start, options, [] if rules is None else rules, skip).build(actions, name, header)
    if deployment:
        scenario = {**{k: v for k, v in scenario.items() if k != "steps"}, "deployment": deployment, "steps": scenario["steps"]}
    return scenario, lines


class _Builder:
    def __init__(self, topology: Topology, start: datetime, options: ModelOptions, rules: list,
                 skip: frozenset[tuple[str, str, str]]):
        self.top, self.now, self.options, self.rules, self.skip = topology, start, options, rules, skip
        self.world = World(options)
        self.steps: list[dict[str, Any] | str] = []
        #: (kind, id) -> what it went through last (the family of its next expectation)
        self.last: dict[tuple[str, str], str] = {}
        #: (kind, id) -> its budget_duration came from an update
        self.duration_updated: set[tuple[str, str]] = set()
        #: (kind, id) of the entities that block a request as the last one left them
        self.blocking: set[tuple[str, str]] = set()
        #: (kind, id) of the entities that blocked when the last request was checked
        self.blocked_at_last: set[tuple[str, str]] = set()
        #: kinds whose expectations are left out from here on (see `step`)
        self.diverged: set[str] = set()

    # --- steps ------------------------------------------------------------------------------
    def step(self, step, rule: tuple[str, str, str] | None = None) -> bool:
        """Add a step; an expectation already reported, or on an entity the release and the
        model no longer agree on, is left out (False)."""
        if rule is not None and (rule in self.skip or rule[0] in self.diverged):
            if rule[2] not in (SET_AT_CREATE, MOVED):
                # a known spend or outcome discrepancy: from here the model's figures for that
                # entity are not the release's, so its later expectations would only echo it
                self.diverged.add(rule[0])
            return False
        self.steps.append(step)
        self.rules.append(rule)
        return True

    def create(self, kind: str, budget: Budget | str | None, step_fields: dict[str, Any], links: dict[str, str]) -> None:
        ident = NAMES[kind]
        own = budget if isinstance(budget, Budget) else Budget(None, None)
        if budget == TIER and self.top.tier is None:
            own = Budget(None, None)  # shrunk away: no tier to be on
        elif budget == TIER:
            links = {**links, "budget": NAMES["budget"]}
            step_fields = {**step_fields, "budget": NAMES["budget"]}
        self.world.create(kind, ident, self.now, **_model(own), **links)
        action = {"end_user": "create_end_user", "budget": "create_budget"}.get(kind, f"create_{kind}")
        self.step({action: {"name": ident, **step_fields, **own.fields()}})
        self.last[(kind, self.model_id(kind))] = "create"
        self.expect_reset_at(kind, "create", SET_AT_CREATE)

    def model_id(self, kind: str) -> str:
        return member_id(NAMES["user"], NAMES["team"]) if kind == "team_member" else NAMES[kind]

    def watched(self) -> list[tuple[str, str]]:
        """The entities whose database spend is checked: every one but the tier, and a team
        member only with a budget of its own (without one LiteLLM keeps no membership row to
        read; measured on 1.82.3, and the docs track member spend only against a member budget)."""
        found = []
        for kind in NAMES:
            entity = self.world.entities.get((kind, self.model_id(kind)))
            if entity is None or kind == "budget" or (
                    kind == "team_member" and entity.max_budget is None and entity.budget_duration is None):
                continue
            found.append((kind, entity.id))
        return found

    def expect_reset_at(self, kind: str, family: str, rule: str) -> None:
        """budget_reset_at of an entity with a period of its own, where the model fixes it."""
        entity = self.world.get(kind, self.model_id(kind))
        duration = entity.budget_duration
        if not duration or entity.budget_reset_at is None:
            return
        if duration in CALENDAR:
            expect = {"budget_reset_is": CALENDAR[duration]}
        elif BUDGET_DURATION.match(duration).group(1) in ("s", "m", "h") and parse_span(duration).total_seconds() < 86400:
            expect = {"budget_reset_within": duration}
        else:
            return  # other day counts and months: model options, not documented (docs/model.md)
        self.step({"expect_state": {"entity": NAMES[kind], **expect, "source": "db"}}, (kind, family, rule))

    # --- the whole file ---------------------------------------------------------------------
    def build(self, actions: list[Action], name: str, header: list[str]) -> tuple[dict[str, Any], list[str]]:
        top = self.top
        self.step({"freeze_clock": self.now.isoformat().replace("+00:00", "Z")})
        if top.tier is not None:
            self.create("budget", top.tier, {}, {})
        if top.organization is not None:
            self.create("organization", top.organization, {}, {})
        if top.team is not None:
            org = {"organization": NAMES["organization"]} if top.organization is not None else {}
            self.create("team", top.team, org, org)
        if top.user is not None:
            self.create("user", top.user, {}, {})
        key_links = {"team": NAMES["team"]} if top.team is not None else (
            {"organization": NAMES["organization"]} if top.organization is not None else {})
        if top.user is not None and top.team is not None:
            budget = Budget(top.member, None)
            self.world.add_member(NAMES["user"], NAMES["team"], self.now, max_budget=budget.max_budget)
            member_fields = {"team": NAMES["team"], "user": NAMES["user"]}
            if top.member is not None:
                member_fields["max_budget_in_team"] = top.member
            self.step({"add_team_member": {"name": NAMES["team_member"], **member_fields}})
            self.last[("team_member", self.model_id("team_member"))] = "create"
        if top.user is not None:
            key_links = {**key_links, "user": NAMES["user"]}
        self.world.create("key", NAMES["key"], self.now, **_model(top.key), **key_links)
        self.step({"create_key": {"name": NAMES["key"], **key_links, **top.key.fields()}})
        self.last[("key", NAMES["key"])] = "create"
        self.expect_reset_at("key", "create", SET_AT_CREATE)
        if top.end_user is not None:
            self.create("end_user", top.end_user, {}, {})
        if top.tag is not None:
            self.create("tag", top.tag, {}, {})
        for action in actions:
            self.act(action)
        lines = [*header, "model options: " + _describe(self.options)]
        return {"name": name, "title": f"reference model: {name}", "tags": ["explore"], "steps": self.steps}, lines

    def request_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"key": NAMES["key"]}
        if self.top.end_user is not None:
            fields["end_user"] = NAMES["end_user"]
        if self.top.tag is not None:
            fields["tags"] = [NAMES["tag"]]
        return fields

    def act(self, action: Action) -> None:
        world, verb = self.world, action[0]
        if verb == "request":
            self.request()
        elif verb == "advance":
            self.now += parse_span(action[1])
            self.step({"advance_clock": action[1]})
        elif verb == "reset":
            zeroed = world.run_reset(self.now)
            self.step("run_reset_job")
            for kind, ident in self.watched():
                family = "reset_after_duration_update" if (kind, ident) in self.duration_updated else "reset"
                spend = round(world.get(kind, ident).spend, 10)
                self.step({"expect_state": {"entity": NAMES[kind], "spend": spend, "tolerance": 1e-6, "source": "db"}},
                          (kind, family, ZEROED if (kind, ident) in zeroed else KEPT))
                if (kind, ident) in zeroed:
                    self.last[(kind, ident)] = family
                    self.expect_reset_at(kind, family, MOVED)
        elif verb == "update":
            _, kind, field, value = action
            if (kind, self.model_id(kind)) not in world.entities or (field == "spend" and kind not in SPEND_UPDATES):
                return  # not in this topology, or no `spend` field on the kind's update endpoint
            ident = self.model_id(kind)
            world.update(kind, ident, self.now, **{field: value})
            if (kind, field) in RAW_UPDATES:
                path, ids = RAW_UPDATES[(kind, field)]
                self.step({"api_call": {"path": path, "json": {**ids, field: value}}})
            else:
                self.step({"update": {"entity": NAMES[kind], field: value}})
            if field == "budget_duration":
                self.duration_updated.add((kind, ident))
                self.expect_reset_at(kind, "update_budget_duration", SET_AT_CREATE)
            else:
                self.last[(kind, ident)] = f"update_{field}"
            if kind == "budget":
                # the end users and tags on the tier went through it too (their limits are its)
                for other in world.entities.values():
                    if other.links.get("budget") == ident and other.max_budget is None and other.budget_duration is None:
                        self.last[(other.kind, other.id)] = f"tier_update_{field}"
            if field == "spend":
                self.step({"expect_state": {"entity": NAMES[kind], "spend": float(value), "tolerance": 1e-6, "source": "db"}},
                          (kind, "update_spend", UPDATED))
        elif verb == "reset_spend":
            kind = action[1]
            if (kind, self.model_id(kind)) not in world.entities:
                return
            world.reset_spend(kind, self.model_id(kind))
            self.step({"reset_spend": {"entity": NAMES[kind]}})
            self.last[(kind, self.model_id(kind))] = "reset_spend"
        else:
            raise ValueError(f"unknown action {action!r}")

    def family(self, kind: str, ident: str) -> str:
        """The family of a request expectation on this entity: the management event or reset
        that last changed it, or plain `request` when only requests did."""
        last = self.last.get((kind, ident), "create")
        return "request" if last == "create" else last

    def request(self) -> None:
        world = self.world
        end_user = NAMES["end_user"] if self.top.end_user is not None else None
        tags = (NAMES["tag"],) if self.top.tag is not None else ()
        checked = world.applicable(NAMES["key"], end_user, tags)
        blocked_now = {(e.kind, e.id) for e in checked if world.blocks(e)}
        decision = world.request(NAMES["key"], COST, end_user=end_user, tags=tags)
        if decision.admitted:
            # one that blocked before and no longer does: the event that lifted it names the bug
            lifted = [e for e in checked if (e.kind, e.id) in self.blocking]
            if lifted:
                entity = lifted[-1]
                rule = (entity.kind, self.family(entity.kind, entity.id), ADMITTED_AGAIN)
            else:
                rule = ("none", "request", ADMITTED)
        else:
            kind, ident = decision.blocked_by
            # blocked already when the last request was checked: a plain request; else the event
            # that made it block (a budget set or cut by an update) names the bug
            rule = (kind, "request" if (kind, ident) in self.blocked_at_last else self.family(kind, ident), rejected_by(kind))
        # what blocks the next request as this one leaves the world (a request that spends an
        # entity up to its budget blocks the next one): an event that lifts it names the bug. A
        # rejection does not show that the release lifted the others: they stay until an
        # admitted request does (a tier raised while the key still blocked, say)
        now_blocking = {(e.kind, e.id) for e in checked if world.blocks(e)}
        self.blocking = now_blocking if decision.admitted else self.blocking | now_blocking
        self.blocked_at_last = blocked_now
        expected = {"expect_request": {**self.request_fields(), "outcome": "accepted" if decision.admitted else "rejected"}}
        if any(e.kind in self.diverged for e in checked) or not self.step(expected, rule):
            # the outcome is not the model's to predict any more: the request is still made, and
            # every entity it spends through diverges with it
            self.diverged |= {e.kind for e in world.spenders(NAMES["key"], end_user, tags)}
            self.step({"spend": {**self.request_fields(), "requests": 1, "allow_rejections": True}})
        self.step("flush_spend")
        for kind, ident in self.watched():
            spend = round(world.get(kind, ident).spend, 10)
            self.step({"expect_state": {"entity": NAMES[kind], "spend": spend, "tolerance": 1e-6, "source": "db"}},
                      (kind, "request", ACCRUES))


def render(scenario: dict[str, Any], lines: list[str]) -> str:
    head = "".join(f"# {line}\n" for line in lines)
    # libyaml's emitter where PyYAML has it (the same text, several times faster: explore renders
    # every example); the pure-Python one otherwise
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return head + yaml.dump(scenario, Dumper=dumper, sort_keys=False, default_flow_style=None, width=110)


def _model(budget: Budget) -> dict[str, Any]:
    return {"max_budget": budget.max_budget, "budget_duration": budget.budget_duration}


def _describe(options: ModelOptions) -> str:
    default = ModelOptions()
    changed = {k: getattr(options, k) for k in options.__dataclass_fields__ if getattr(options, k) != getattr(default, k)}
    return "defaults (docs/model.md)" + (f" except {changed}" if changed else "")
