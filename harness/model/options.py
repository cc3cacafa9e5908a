"""The choices the reference model makes where LiteLLM's documentation is silent or releases differ.

Each field names one such choice; docs/model.md gives its source. The defaults follow the
documentation where it speaks, and otherwise the behaviour the shared notes measured on the
released wheels, so a discrepancy under the defaults is worth a look rather than a known quirk.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

KINDS = ("key", "user", "team", "team_member", "organization", "end_user", "tag", "budget")
#: the kinds that hold spend of their own (a budget tier only lends its limits to others)
SPENDING_KINDS = tuple(k for k in KINDS if k != "budget")

#: `at_limit`: a request is rejected once spend >= max_budget; `over_limit`: only once spend > max_budget
COMPARISONS = ("at_limit", "over_limit")


def _default_comparison() -> dict[str, str]:
    # docs silent; keys and organizations block at the limit, users, teams, end users and tags
    # above it (shared notes, measured on 1.82.3 and 1.85.0); team members at the limit
    # (`explore --litellm 1.82.3 --seed 1`: "User=... in Team=... Current cost: 0.1, Max budget: 0.1")
    return {"key": "at_limit", "organization": "at_limit", "user": "over_limit", "team": "over_limit",
            "team_member": "at_limit", "end_user": "over_limit", "tag": "over_limit"}


@dataclass(frozen=True)
class ModelOptions:
    #: litellm_settings.timezone: the zone calendar resets align in (docs: UTC when unset)
    timezone: str = "UTC"
    #: per kind, when a budget blocks (see COMPARISONS)
    comparison: dict[str, str] = field(default_factory=_default_comparison)
    #: a key in a team meets its owner's personal budget too (docs/proxy/users: it does not)
    team_key_meets_user_budget: bool = False
    #: a request naming an end user meets the key's chain of budgets as well as the end user's
    #: (`all`) or the end user's alone (`end_user_only`); docs/proxy/customers are silent
    end_user_request_meets: str = "all"
    #: day counts other than 1/7/30: `midnight` = midnight N local days ahead (docs: "all budgets
    #: reset at midnight"), `span` = exactly N*24 h from now
    other_days_alignment: str = "midnight"
    #: `Nmo`: `first_of_month` = 00:00 on the 1st, N months ahead (docs: monthly resets on the 1st),
    #: `span` = N*30 days from now
    month_alignment: str = "first_of_month"
    #: the reset job takes an entity whose budget_reset_at is `due` (<= now) or `past` (< now)
    reset_when: str = "due"
    #: an update giving budget_duration (a new value or the same) moves budget_reset_at to its next boundary
    duration_update_moves_reset_at: bool = True
    #: the kinds the reset job covers (docs: every budget with a budget_duration resets)
    reset_kinds: tuple[str, ...] = SPENDING_KINDS

    def with_(self, **changes) -> ModelOptions:
        return replace(self, **changes)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.comparison.items() if k not in SPENDING_KINDS or v not in COMPARISONS}
        if bad:
            raise ValueError(f"model option comparison: bad entries {bad}; kinds {SPENDING_KINDS}, values {COMPARISONS}")
        for name, allowed in (("end_user_request_meets", ("all", "end_user_only")),
                              ("other_days_alignment", ("midnight", "span")),
                              ("month_alignment", ("first_of_month", "span")),
                              ("reset_when", ("due", "past"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"model option {name}: {getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        unknown = set(self.reset_kinds) - set(SPENDING_KINDS)
        if unknown:
            raise ValueError(f"model option reset_kinds: unknown kinds {sorted(unknown)}")
