"""What one `expect_state` asks the proxy for: a plain spend expectation reads the database only
(explore makes hundreds of them), the auth path's view joins a failing one's message, and the
clock is read where budget_reset_at is bounded by it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from harness.proxy.control import ProxyControl
from harness.proxy.entities import Entity, EntityState
from harness.steps.base import Expectation
from harness.steps.expectations import ExpectState

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _ctx(state: EntityState):
    ops: list[str] = []

    def call(op, body):
        ops.append(op)
        if op == "auth-view":
            return {"entries": {"user_api_key_cache": {"k": {"spend": 0.2}}}, "has_spend_counter_cache": False}
        return {"now": NOW.isoformat()}

    entity = Entity("key", "k1", "hash1", secret="sk-x")
    ctx = SimpleNamespace(
        entity=lambda name: entity,
        db=SimpleNamespace(state=lambda e: state),
        target=SimpleNamespace(control=ProxyControl.of("a", call), redis=None),
        before_reset={}, reset_job_ran=False, scenario=SimpleNamespace(proxy=SimpleNamespace(litellm_settings={})),
    )
    return ctx, ops


def test_a_spend_expectation_that_holds_asks_the_proxy_nothing():
    ctx, ops = _ctx(EntityState(0.1, None))
    ExpectState(entity="k1", spend=0.1, source="db").run(ctx)
    assert ops == []


def test_a_failing_spend_expectation_shows_the_auth_paths_view_beside_the_database():
    ctx, ops = _ctx(EntityState(0.1, None))
    with pytest.raises(Expectation) as failed:
        ExpectState(entity="k1", spend=0.0, source="db").run(ctx)
    assert ops == ["auth-view"]
    assert "spend is 0.1, expected 0.0" in str(failed.value) and "readings:" in str(failed.value)


def test_budget_reset_within_reads_the_clock_and_holds_it_to_the_bound():
    ctx, ops = _ctx(EntityState(0.0, datetime(2026, 3, 2, 12, tzinfo=UTC)))
    ExpectState(entity="k1", budget_reset_within="2h", source="db").run(ctx)
    assert ops == ["clock"]
    ctx, ops = _ctx(EntityState(0.0, datetime(2026, 3, 2, 13, tzinfo=UTC)))
    with pytest.raises(Expectation, match="not within 2h"):
        ExpectState(entity="k1", budget_reset_within="2h", source="db").run(ctx)
