"""Comparisons a scenario's expectations make, kept free of I/O so they are unit-tested alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .durations import parse_span

BUDGET_ERROR_TYPE = "budget_exceeded"
#: what LiteLLM's licence refusals say: its `CommonProxyErrors.not_premium_user` text ("You must be
#: a LiteLLM Enterprise user ... set `LITELLM_LICENSE`"), and the prefixes some endpoints put
#: before it ("... is an Enterprise feature", "only available for premium users"). The status is
#: no guide: 1.108.7 refuses with 403 (/organization/*, key tags), 400 (team admins) and 500
#: (/key/{key}/regenerate, model_max_budget), and a 401/403 without this text is a real refusal.
LICENCE_MARKS = ("litellm_license", "litellm enterprise", "enterprise feature", "enterprise license",
                 "premium user", "premium feature")


@dataclass(frozen=True)
class Outcome:
    """A `/chat/completions` answer, reduced to what expectations compare."""

    status: int
    type: str | None
    message: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_budget_error(self) -> bool:
        return self.type == BUDGET_ERROR_TYPE or "budget has been exceeded" in self.message.lower()

    @property
    def is_licence_refusal(self) -> bool:
        """The release refused for want of an enterprise licence (never a budget rejection)."""
        text = self.message.lower()
        return not self.accepted and not self.is_budget_error and any(m in text for m in LICENCE_MARKS)

    def summary(self) -> str:
        if self.accepted:
            return f"accepted ({self.status})"
        return f"rejected ({self.status}, type={self.type}): {self.message[:200]}"


def classify(resp: Any) -> Outcome:
    """LiteLLM errors are `{"error": {"message", "type", ...}}`; older paths use `detail`."""
    try:
        body = resp.json()
    except (ValueError, json.JSONDecodeError):
        return Outcome(resp.status_code, None, resp.text[:2000] if not resp.ok else "")
    if not isinstance(body, dict):
        return Outcome(resp.status_code, None, "")
    error = body.get("error")
    if isinstance(error, dict):
        return Outcome(resp.status_code, error.get("type"), str(error.get("message") or ""))
    if "detail" in body and not (200 <= resp.status_code < 300):
        detail = body["detail"]
        if isinstance(detail, dict) and isinstance(detail.get("error"), (str, dict)):
            detail = detail["error"]
        return Outcome(resp.status_code, None, json.dumps(detail) if not isinstance(detail, str) else detail)
    return Outcome(resp.status_code, None, "" if 200 <= resp.status_code < 300 else json.dumps(body)[:2000])


def response_cost(resp: Any) -> float:
    """The proxy reports each call's cost in `x-litellm-response-cost`."""
    value = resp.headers.get("x-litellm-response-cost")
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def check_request(outcome: Outcome, step: Any, *, entity: Any, fail: type[Exception]) -> None:
    """Raise `fail(message, expected, actual, entity)` unless the outcome is the expected one."""
    if step.outcome == "accepted":
        if not outcome.accepted:
            raise fail(
                f"expected the request to be accepted; it was rejected ({outcome.status}, type={outcome.type}): "
                f"{outcome.message[:300]}",
                "accepted",
                f"rejected: {outcome.message[:300]}",
                entity,
            )
        return
    if outcome.accepted:
        raise fail(f"expected the request to be rejected; it was accepted ({outcome.status})", "rejected", "accepted", entity)
    expected = step.error
    if expected is None:
        return
    problems = []
    if outcome.type != expected.type:
        problems.append(f"error type {outcome.type!r}, expected {expected.type!r}")
    if expected.message is not None and expected.message not in outcome.message:
        problems.append(f"message lacks {expected.message!r}")
    if expected.status is not None and outcome.status != expected.status:
        problems.append(f"status {outcome.status}, expected {expected.status}")
    if problems:
        raise fail(
            f"rejected, but not as expected: {'; '.join(problems)}. Message: {outcome.message[:300]}",
            {"type": expected.type, "message": expected.message, "status": expected.status},
            {"type": outcome.type, "message": outcome.message[:300], "status": outcome.status},
            entity,
        )


def check_state(
    state: Any,
    step: Any,
    *,
    source: str,
    clock: datetime | None,
    before_reset: datetime | None,
    reset_job_ran: bool,
    entity: Any,
    fail: type[Exception],
) -> None:
    """Spend within a tolerance, and where budget_reset_at stands against the last reset run."""
    what = f"{entity.kind} {entity.name} ({source})"
    if step.spend is not None:
        if state.spend is None or abs(state.spend - step.spend) > step.tolerance:
            raise fail(
                f"{what}: spend is {state.spend}, expected {step.spend} (tolerance {step.tolerance})",
                step.spend,
                state.spend,
                entity,
            )
    if step.spend_at_least is not None:
        if state.spend is None or state.spend < step.spend_at_least - step.tolerance:
            raise fail(f"{what}: spend is {state.spend}, expected at least {step.spend_at_least}", f">= {step.spend_at_least}", state.spend, entity)
    current = state.budget_reset_at
    if step.budget_reset_within is not None:
        latest = clock + parse_span(step.budget_reset_within) if clock else None
        if current is None or (clock is not None and not clock < current <= latest):
            raise fail(
                f"{what}: budget_reset_at {_iso(current)} is not within {step.budget_reset_within} after the clock {_iso(clock)}",
                f"in ({_iso(clock)}, {_iso(latest)}]",
                _iso(current),
                entity,
            )
    rule = step.budget_reset_at
    if rule is None:
        return
    if rule == "set" and current is None:
        raise fail(f"{what}: budget_reset_at is not set", "a time", None, entity)
    if rule == "in_future" and (current is None or (clock is not None and current <= clock)):
        raise fail(f"{what}: budget_reset_at {_iso(current)} is not after the clock {_iso(clock)}", f"> {_iso(clock)}", _iso(current), entity)
    if rule in ("moved_forward", "unchanged") and not reset_job_ran:
        raise fail(f"{what}: `budget_reset_at: {rule}` needs a run_reset_job step before it", rule, _iso(current), entity)
    if rule == "moved_forward":
        later_than_before = current is not None and (before_reset is None or current > before_reset)
        later_than_clock = current is not None and (clock is None or current > clock)
        if not (later_than_before and later_than_clock):
            raise fail(
                f"{what}: budget_reset_at {_iso(current)} did not move forward "
                f"(before the reset job: {_iso(before_reset)}, clock: {_iso(clock)})",
                f"> {_iso(before_reset)} and > {_iso(clock)}",
                _iso(current),
                entity,
            )
    if rule == "unchanged" and current != before_reset:
        raise fail(f"{what}: budget_reset_at changed from {_iso(before_reset)} to {_iso(current)}", _iso(before_reset), _iso(current), entity)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "null"
