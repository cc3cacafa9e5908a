"""Which catalogue report an exploration finding is: its signature against the catalogue's failures.

A generated scenario's failing expectation has a signature (entity kind, step family, model
rule; harness/scenario/generate.py). Each entry below is the signature a catalogue scenario's
failing expectation has when the same expectation is generated: the entity kind it asserts on,
what that entity went through last (the scenario's steps before the failing one) and what it
asserts. The issue link and measured range are read from the catalogue scenario itself, so the
label follows the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import generate as g

#: signature -> the catalogue scenario (its `name:`) that fails the same way
KNOWN: dict[tuple[str, str, str], str] = {
    # an organization over budget, the reset job past its day: spend stays (#25495)
    ("organization", "reset", g.ZEROED): "org_budget_reset",
    # the same with the period given by /organization/update: no org handler in the job either way
    ("organization", "reset_after_duration_update", g.ZEROED): "org_budget_reset",
    # a tag over budget, the reset job past its day: spend stays (#27481); the same job skipping
    # tags shows as a budget_reset_at that does not move when the tag had no spend to zero, and
    # whether the period came with /tag/new or /tag/update
    ("tag", "reset", g.ZEROED): "tag_budget_reset",
    ("tag", "reset", g.MOVED): "tag_budget_reset",
    ("tag", "reset_after_duration_update", g.ZEROED): "tag_budget_reset",
    ("tag", "reset_after_duration_update", g.MOVED): "tag_budget_reset",
    ("organization", "reset", g.MOVED): "org_budget_reset",
    ("organization", "reset_after_duration_update", g.MOVED): "org_budget_reset",
    # blocked by its max_budget, /customer/update raises it: still blocked (#31838)
    ("end_user", "update_max_budget", g.ADMITTED_AGAIN): "end_user_budget_raised",
    # blocked by its max_budget, /tag/update raises it: still blocked (#35538)
    ("tag", "update_max_budget", g.ADMITTED_AGAIN): "tag_budget_raised",
    # blocked by max_budget_in_team, /team/member_update raises it: still blocked (PR #37971)
    ("team_member", "update_max_budget", g.ADMITTED_AGAIN): "team_member_budget_raised",
    # blocked by its organization, /organization/update raises it: still blocked (PR #27631)
    ("organization", "update_max_budget", g.ADMITTED_AGAIN): "org_budget_raised",
    # budget_duration given by /team/member_update: the member never resets (#25509)
    ("team_member", "reset_after_duration_update", g.ZEROED): "team_member_update_budget_duration",
    # budget_duration given by /customer/update: the end user never resets (#33941); the same drop
    # shows first as a budget_reset_at the update did not set (generate.RAW_UPDATES sends the field)
    ("end_user", "reset_after_duration_update", g.ZEROED): "end_user_update_budget_duration",
    ("end_user", "update_budget_duration", g.SET_AT_CREATE): "end_user_update_budget_duration",
    # /key/{key}/reset_spend or /key/update spend 0 on a blocked key: still blocked (#30002)
    ("key", "reset_spend", g.ADMITTED_AGAIN): "key_reset_spend_counter",
    ("key", "update_spend", g.ADMITTED_AGAIN): "key_spend_updated",
    # /user/update spend 0 on a blocked user: still blocked (PR #30785)
    ("user", "update_spend", g.ADMITTED_AGAIN): "user_spend_updated",
}


@dataclass(frozen=True)
class Report:
    scenario: str
    issue: str
    affects: str | None


@dataclass(frozen=True)
class Label:
    #: the catalogue report's issue link, or None for a new finding
    issue: str | None
    scenario: str | None = None
    #: whether the catalogue measured the report on this release (False: the signature matches a
    #: report the catalogue says this release does not have: worth a look)
    in_measured_range: bool | None = None


def label(signature: tuple[str, str, str], version: str, catalogue: dict[str, Report]) -> Label:
    """The catalogue report a finding of this signature on `version` is, if any."""
    from .model import affects_contains

    name = KNOWN.get(signature)
    report = catalogue.get(name) if name else None
    if report is None:
        return Label(None)
    return Label(report.issue, report.scenario, affects_contains(report.affects, version))
