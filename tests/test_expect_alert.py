"""`expect_alert` against a real loopback sink: one count per alert (webhook posts, Slack only
without them), `at_most`, and `if_none: unsupported` for control steps."""

from __future__ import annotations

import pytest
import requests
from pydantic import ValidationError

from harness.faults.alerts import AlertSink
from harness.steps.base import Expectation, Unsupported
from harness.steps.expectations import ExpectAlert


class Ctx:
    def __init__(self, sink: AlertSink):
        self.sink = sink

    def injector(self, name: str):
        assert name == "alert_sink"
        return self.sink

    def entity(self, name):
        return None


@pytest.fixture
def sink():
    s = AlertSink().start()
    yield s
    s.stop()


def post(sink: AlertSink, channel: str, body: dict) -> None:
    requests.post(sink.url(channel), json=body, timeout=5)


def test_a_slack_batch_beside_the_webhook_posts_is_not_counted_twice(sink):
    post(sink, "webhook", {"event": "soft_budget_crossed", "team_alias": "t1"})
    post(sink, "slack", {"text": "[Num Alerts: 1] Soft Budget Crossed: t1"})
    assert ExpectAlert(type="soft_budget_crossed", count=1, at_most=1, within=0.2).run(Ctx(sink)).startswith("1 ")


def test_at_most_fails_on_alert_spam(sink):
    for _ in range(3):
        post(sink, "webhook", {"event": "soft_budget_crossed"})
    with pytest.raises(Expectation, match="expected 1..1 .* got 3"):
        ExpectAlert(type="soft_budget_crossed", count=1, at_most=1, within=0.2).run(Ctx(sink))


def test_if_none_unsupported_only_when_nothing_of_the_type_arrived(sink):
    step = ExpectAlert(type="projected_limit_exceeded", count=1, within=0.2, if_none="unsupported")
    post(sink, "webhook", {"event": "budget_crossed"})
    with pytest.raises(Unsupported, match="posted no projected_limit_exceeded alert"):
        step.run(Ctx(sink))
    post(sink, "webhook", {"event": "projected_limit_exceeded"})
    assert step.run(Ctx(sink)).startswith("1 ")
    with pytest.raises(Expectation):  # some arrived, too few: a failure, not unsupported
        ExpectAlert(type="projected_limit_exceeded", count=2, within=0.2, if_none="unsupported").run(Ctx(sink))


def test_if_none_unsupported_needs_a_count():
    with pytest.raises(ValidationError, match="if_none"):
        ExpectAlert(type="budget_crossed", count=0, at_most=0, if_none="unsupported")
