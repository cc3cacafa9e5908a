"""Expectation logic and verdicts, on hand-made values (no proxy needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from harness.assertions import Outcome, check_request, check_state, classify
from harness.reports.text import redact
from harness.execution.results import StepResult, verdict_for
from harness.proxy.entities import Entity, EntityState
from harness.proxy.settings import ProxySettings
from harness.scenario.model import Metadata, Scenario
from harness.steps.expectations import ExpectedError, ExpectRequest, ExpectState


class Failed(Exception):
    def __init__(self, message, expected=None, actual=None, entity=None):
        super().__init__(message)
        self.expected, self.actual = expected, actual


class FakeResponse:
    def __init__(self, status: int, body):
        self.status_code, self._body, self.ok = status, body, 200 <= status < 300
        self.text, self.headers = str(body), {}

    def json(self):
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


ORG = Entity("organization", "acme", "org-1")
T0 = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
BUDGET_BODY = {"error": {"message": "Budget has been exceeded! Organization=org-1 Current cost: 0.6, Max budget: 0.5", "type": "budget_exceeded"}}


def test_classify_reads_litellm_error_bodies() -> None:
    outcome = classify(FakeResponse(400, BUDGET_BODY))
    assert outcome == Outcome(400, "budget_exceeded", BUDGET_BODY["error"]["message"])
    assert outcome.is_budget_error and not outcome.accepted
    assert classify(FakeResponse(200, {"id": "x"})).accepted
    assert classify(FakeResponse(500, ValueError("not json"))).type is None


def test_rejection_matches_type_and_message_not_status() -> None:
    step = ExpectRequest(key="k1", outcome="rejected", error=ExpectedError(message="Organization="))
    for status in (400, 429, 422):  # releases differ in the status code
        check_request(classify(FakeResponse(status, BUDGET_BODY)), step, entity=ORG, fail=Failed)
    other = {"error": {"message": "Budget has been exceeded! Key=...", "type": "budget_exceeded"}}
    with pytest.raises(Failed, match="message lacks 'Organization='"):
        check_request(classify(FakeResponse(400, other)), step, entity=ORG, fail=Failed)
    with pytest.raises(Failed, match="error type 'auth_error'"):
        check_request(classify(FakeResponse(401, {"error": {"message": "Organization=", "type": "auth_error"}})), step, entity=ORG, fail=Failed)
    with pytest.raises(Failed, match="it was accepted"):
        check_request(classify(FakeResponse(200, {})), step, entity=ORG, fail=Failed)


def test_accepted_expectation_shows_the_rejection() -> None:
    step = ExpectRequest(key="k1", outcome="accepted")
    with pytest.raises(Failed, match="Budget has been exceeded! Organization="):
        check_request(classify(FakeResponse(400, BUDGET_BODY)), step, entity=ORG, fail=Failed)


def _check(state, **kwargs):
    defaults = dict(source="db", clock=T0 + timedelta(days=1, hours=2), before_reset=None, reset_job_ran=True, entity=ORG, fail=Failed)
    check_state(state, ExpectState(entity="acme", **{k: v for k, v in kwargs.items() if k not in defaults}),
                **{**defaults, **{k: v for k, v in kwargs.items() if k in defaults}})


def test_spend_tolerance_and_reset_time_rules() -> None:
    midnight = datetime(2026, 3, 4, tzinfo=timezone.utc)
    _check(EntityState(1e-9, midnight), spend=0)
    with pytest.raises(Failed, match="spend is 0.6, expected 0.0"):
        _check(EntityState(0.6, midnight), spend=0)
    _check(EntityState(0.6, midnight), spend_at_least=0.5)
    _check(EntityState(0.0, midnight), budget_reset_at="moved_forward", before_reset=datetime(2026, 3, 3, tzinfo=timezone.utc))
    with pytest.raises(Failed, match="did not move forward"):
        _check(EntityState(0.0, datetime(2026, 3, 3, tzinfo=timezone.utc)), budget_reset_at="moved_forward",
               before_reset=datetime(2026, 3, 3, tzinfo=timezone.utc))
    with pytest.raises(Failed, match="needs a run_reset_job step"):
        _check(EntityState(0.0, midnight), budget_reset_at="moved_forward", reset_job_ran=False)


def _scenario(affects):
    return Scenario(path="s.yaml", meta=Metadata(name="s", affects=affects), proxy=ProxySettings(), steps=())


def _steps(*statuses):
    return [StepResult(i, i + 1, "src", "d", status=s, message=f"m{i}") for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    "affects, version, statuses, error, verdict",
    [
        ("<1.85.0", "1.82.3", ("passed", "failed"), None, "reproduced"),
        ("<1.85.0", "1.85.0", ("passed", "passed"), None, "passed"),
        ("<1.85.0", "1.82.3", ("passed", "passed"), None, "unexpected pass"),
        (None, "1.82.3", ("passed", "failed"), None, "regression"),
        ("<1.85.0", "1.82.3", ("passed", "error"), "line 2: boom", "error"),
        ("<1.85.0", "1.82.3", ("passed", "unsupported"), None, "unsupported"),
    ],
)
def test_verdicts(affects, version, statuses, error, verdict) -> None:
    assert verdict_for(_scenario(affects), version, _steps(*statuses), error)[0] == verdict


def test_redaction_hides_keys_and_passwords() -> None:
    text = "key sk-abcdefghijk master sk-harness-XYZ123456 url postgresql://u:s3cret@h:5/db token tok123"
    out = redact(text, ["tok123"])
    assert "sk-abcdefghijk" not in out and "sk-harness-XYZ123456" not in out
    assert "s3cret" not in out and "tok123" not in out
    assert "postgresql://u:[REDACTED]@h:5/db" in out
