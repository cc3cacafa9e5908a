"""Scenario files whose expectations come from the reference model (harness/model).

An exploration (issue 18) draws a small world and a list of actions; this turns them into an
ordinary scenario: the actions as steps, and after each one the outcome and spend the model
predicts, as `expect_request` / `expect_state` steps. `python -m harness run` replays the file
as it stands; a failing expectation is a place where the release and the documented behaviour
(under the model options written in the file) disagree.

Every call costs the mock model's fixed 0.05 (README: deterministic cost); the clock is frozen
at a fixed instant the caller chooses, so a file replays the same on any day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from ..durations import parse_span
from ..model import ModelOptions, World

COST = 0.05


@dataclass(frozen=True)
class Budget:
    max_budget: float | None
    budget_duration: str | None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in (("max_budget", self.max_budget), ("budget_duration", self.budget_duration)) if v is not None}


@dataclass(frozen=True)
class Topology:
    """One key, optionally in a team, optionally under an organization (through the team, or the
    key directly when there is no team)."""
    organization: Budget | None
    team: Budget | None
    key: Budget


#: ("request",) | ("advance", "1d2h") | ("reset",)
Action = tuple


def build(topology: Topology, actions: list[Action], start: datetime, *, name: str, options: ModelOptions,
          header: list[str] = (), rules: list[tuple[str, str, str] | None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The scenario mapping and the comment lines above it; the model runs alongside. `rules`,
    when given, receives one entry per step: None for an action, else the (entity kind, step
    family, model rule) the expectation checks."""
    rules = [] if rules is None else rules
    world = World(options)
    now = start
    steps: list[dict[str, Any]] = [{"freeze_clock": start.isoformat().replace("+00:00", "Z")}]
    rules.append(None)
    names: dict[str, str] = {}
    if topology.organization is not None:
        world.create("organization", "org1", now, **_model(topology.organization))
        steps.append({"create_organization": {"name": "org1", **topology.organization.fields()}})
        names["organization"] = "org1"
        rules.append(None)
    if topology.team is not None:
        links = {"organization": "org1"} if topology.organization is not None else {}
        world.create("team", "team1", now, **_model(topology.team), **links)
        steps.append({"create_team": {"name": "team1", **links, **topology.team.fields()}})
        names["team"] = "team1"
        rules.append(None)
    key_links = {"team": "team1"} if topology.team is not None else (
        {"organization": "org1"} if topology.organization is not None else {})
    world.create("key", "key1", now, **_model(topology.key), **key_links)
    steps.append({"create_key": {"name": "key1", **key_links, **topology.key.fields()}})
    names["key"] = "key1"
    rules.append(None)
    watched = [(kind, ident) for kind, ident in names.items() if kind != "key"] + [("key", "key1")]
    for action in actions:
        if action[0] == "request":
            decision = world.request("key1", COST)
            blocker = decision.blocked_by[0] if decision.blocked_by else "none"
            steps.append({"expect_request": {"key": "key1", "outcome": "accepted" if decision.admitted else "rejected"}})
            rules.append((blocker, "request", "admitted unless a budget it meets is spent"
                          if decision.admitted else f"rejected by the {blocker} budget"))
            steps.append("flush_spend")
        elif action[0] == "advance":
            now += parse_span(action[1])
            steps.append({"advance_clock": action[1]})
            rules.append(None)
            continue
        elif action[0] == "reset":
            zeroed = world.run_reset(now)
            steps.append("run_reset_job")
        else:
            raise ValueError(f"unknown action {action!r}")
        rules.append(None)
        for kind, ident in watched:
            spend = round(world.get(kind, ident).spend, 10)
            steps.append({"expect_state": {"entity": ident, "spend": spend, "tolerance": 1e-6, "source": "db"}})
            if action[0] == "request":
                rules.append((kind, "request", "an admitted request's cost accrues to every entity it spends through"))
            else:
                rules.append((kind, "reset", "the reset job zeroes exactly the entities whose period ended"
                              if (kind, ident) in zeroed else "the reset job leaves an entity whose period has not ended"))
    lines = [*header, "model options: " + _describe(options)]
    return {"name": name, "title": f"reference model: {name}", "tags": ["explore"], "steps": steps}, lines


def render(scenario: dict[str, Any], lines: list[str]) -> str:
    head = "".join(f"# {line}\n" for line in lines)
    return head + yaml.safe_dump(scenario, sort_keys=False, default_flow_style=None, width=110)


def _model(budget: Budget) -> dict[str, Any]:
    return {"max_budget": budget.max_budget, "budget_duration": budget.budget_duration}


def _describe(options: ModelOptions) -> str:
    default = ModelOptions()
    changed = {k: getattr(options, k) for k in options.__dataclass_fields__ if getattr(options, k) != getattr(default, k)}
    return "defaults (docs/model.md)" + (f" except {changed}" if changed else "")

