"""The loopback alert sink (harness.faults.alerts) and its injector: real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest
import requests

from harness.faults.alerts import AlertSink
from harness.faults.injectors import INJECTORS, Faults, Site


@pytest.fixture
def sink():
    s = AlertSink().start()
    yield s
    s.stop()


def test_webhook_post_is_recorded_with_its_body(sink):
    body = {"event": "soft_budget_crossed", "token": "abc123", "spend": 0.03}
    resp = requests.post(sink.url("webhook"), json=body, timeout=5)
    assert resp.status_code == 200
    [alert] = sink.alerts
    assert (alert.channel, alert.body, alert.event) == ("webhook", body, "soft_budget_crossed")
    assert alert.is_type("soft_budget_crossed") and not alert.is_type("budget_crossed")
    assert alert.mentions("abc123") and not alert.mentions("zzz")


def test_slack_text_matches_the_alert_name(sink):
    requests.post(sink.url("slack"), json={"text": "Soft Budget Crossed: key abc123 spend 0.03"}, timeout=5)
    [alert] = sink.alerts
    assert alert.event is None and alert.is_type("soft_budget_crossed") and not alert.is_type("threshold_crossed")


def test_unknown_path_is_refused_and_not_recorded(sink):
    assert requests.post(f"http://127.0.0.1:{sink.port}/other", data="x", timeout=5).status_code == 404
    assert sink.alerts == []


def test_wait_for_returns_at_the_deadline_with_what_arrived(sink):
    requests.post(sink.url("webhook"), data="not json", timeout=5)
    started = time.monotonic()
    found = sink.wait_for(lambda a: True, count=2, within=0.3)
    assert [a.body for a in found] == ["not json"]
    assert 0.25 <= time.monotonic() - started < 5


def test_wait_for_returns_early_once_enough_arrived(sink):
    requests.post(sink.url("webhook"), data=json.dumps({"event": "budget_crossed"}), timeout=5)
    started = time.monotonic()
    assert len(sink.wait_for(lambda a: a.event == "budget_crossed", count=1, within=30)) == 1
    assert time.monotonic() - started < 5


def test_injector_points_both_webhook_variables_at_the_sink_and_clears_between_scenarios():
    site = Site()
    faults = Faults(site)
    faults.build_front({"alert_sink"})
    try:
        sink = faults.get("alert_sink")
        assert site.environment == {"SLACK_WEBHOOK_URL": sink.url("slack"), "WEBHOOK_URL": sink.url("webhook")}
        assert sink.url("slack").startswith("http://127.0.0.1:")
        requests.post(site.environment["WEBHOOK_URL"], json={"event": "x"}, timeout=5)
        assert len(sink.alerts) == 1
        faults.between_scenarios()
        assert sink.alerts == []
    finally:
        faults.close()
    with pytest.raises(requests.ConnectionError):
        requests.post(sink.url("webhook") if sink._server else f"http://127.0.0.1:{port_of(site)}/webhook", timeout=2)
    assert INJECTORS["alert_sink"].before_start


def port_of(site: Site) -> int:
    return int(site.environment["WEBHOOK_URL"].rsplit(":", 1)[1].split("/")[0])


def test_one_channel_counts_webhook_posts_and_slack_only_without_them(sink):
    from harness.faults.alerts import one_channel

    requests.post(sink.url("slack"), json={"text": "[Num Alerts: 2] Soft Budget Crossed t1 ... Soft Budget Crossed t1"}, timeout=5)
    assert [a.channel for a in one_channel(sink.alerts)] == ["slack"]
    for _ in range(2):
        requests.post(sink.url("webhook"), json={"event": "soft_budget_crossed", "team_alias": "t1"}, timeout=5)
    counted = sink.wait_for(lambda a: a.is_type("soft_budget_crossed"), count=5, within=0.3, pick=one_channel)
    assert [a.channel for a in counted] == ["webhook", "webhook"]
