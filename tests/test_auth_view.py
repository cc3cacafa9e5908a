"""expect_state on what the auth path reads: counters, cached objects, windows; three readings side by side."""

from __future__ import annotations

from pathlib import Path

import fakes

from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.proxy.entities import EntityState, token_hash
from harness.scenario import load

SECRET = "sk-key-under-test-000000001"
HASH = token_hash(SECRET)


Resp = fakes.Resp


class Target:
    def __init__(self, entries, has_counters=True):
        self.entries, self.has_counters = entries, has_counters
        self.control = ProxyControl.of("a", self._agent)

    def api(self, method, path, **kwargs):
        if path == "/key/generate":
            return Resp(200, {"key": SECRET})
        if path == "/key/info":
            return Resp(200, {"info": {"spend": 0.0, "budget_reset_at": None}})
        return Resp(200, {})

    def _agent(self, op, body):
        if op == "auth-view":
            assert HASH in body["ids"]
            return {"entries": self.entries, "has_spend_counter_cache": self.has_counters}
        return {"now": "2026-03-02T10:00:00+00:00", "still_running": []}


class Db:
    def state(self, entity):
        return EntityState(0.0, None)

    def row(self, entity):
        return {"spend": 0.0}


def _run(tmp_path: Path, expect: str, target: Target):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nsteps:\n  - create_key: {{name: k1}}\n  - expect_state: {{entity: k1, {expect}}}\n")
    results, error = ScenarioRun(load(path), target, Db()).run()
    assert error is None
    return results[1]


def test_a_stale_counter_fails_with_database_api_and_counter_side_by_side(tmp_path: Path) -> None:
    entries = {"spend_counter_cache": {f"spend:key:{HASH}": 0.25, f"spend:key:{HASH}:window:1d": 0.25}}
    result = _run(tmp_path, "spend: 0, counter: 0", Target(entries))
    assert result.status == "failed"
    assert f"the spend counter spend:key:{HASH} reads 0.25, expected 0" in result.message
    readings = result.message.split("| readings: ", 1)[1]
    assert "db spend=0.0" in readings and "api spend=0.0" in readings and f"counter spend:key:{HASH}=0.25" in readings


def test_no_counter_means_the_auth_path_reads_the_database(tmp_path: Path) -> None:
    result = _run(tmp_path, "counter: 0", Target({}))
    assert result.status == "passed" and "counter: none" in result.message


def test_window_usage_and_cached_object(tmp_path: Path) -> None:
    entries = {
        "spend_counter_cache": {f"spend:key:{HASH}:window:1d": 0.1},
        "user_api_key_cache": {HASH: {"token": HASH, "spend": 0.3}},
    }
    assert _run(tmp_path, "window_spend: {1d: 0.1}, cached_spend: 0.3", Target(entries)).status == "passed"
    failed = _run(tmp_path, "window_spend: {1d: 0}", Target(entries))
    assert failed.status == "failed" and "the 1d budget_limits window counter reads 0.1, expected 0" in failed.message


def test_a_release_without_counters_is_unsupported(tmp_path: Path) -> None:
    result = _run(tmp_path, "counter: 0", Target({}, has_counters=False))
    assert result.status == "unsupported" and "no in-memory spend counters" in result.message


class BlockingTarget(Target):
    def chat(self, key, end_user=None, **kwargs):
        return Resp(429, {"error": {"type": "budget_exceeded", "message": "Budget has been exceeded! Current cost: 0.25"}})


def test_a_wrong_budget_rejection_shows_the_key_readings_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - create_key: {name: k1}\n  - expect_request: {key: k1, outcome: accepted}\n")
    entries = {"spend_counter_cache": {f"spend:key:{HASH}": 0.25}}
    results, error = ScenarioRun(load(path), BlockingTarget(entries), Db()).run()
    assert results[1].status == "failed"
    readings = results[1].message.split("| readings: ", 1)[1]
    assert readings.startswith("key k1: db spend=0.0; api spend=0.0; counter spend:key:") and "=0.25" in readings
