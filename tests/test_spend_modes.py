"""spend: `amount` lands on an exact amount from the measured cost per call; `concurrency` is bounded and counted."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.scenario import load


class Resp:
    def __init__(self, status, cost=0.0, body=None):
        self.status_code, self.ok = status, 200 <= status < 300
        self.headers = {"x-litellm-response-cost": str(cost)}
        self._body = body or {}
        self.text = str(self._body)

    def json(self):
        return self._body


class Target:
    unit_model = "harness-unit"
    base_url = "http://127.0.0.1:4000"

    def __init__(self, cost: float, budget_calls: int | None = None):
        self.cost, self.budget_calls, self.calls, self.models = cost, budget_calls, 0, []
        self.lock = threading.Lock()

    def api(self, method, path, **kwargs):
        return Resp(200, body={"key": "sk-test-000000000001"})

    def chat(self, key, end_user=None, *, tags=None, model=None, fresh_connection=False):
        with self.lock:
            self.calls += 1
            self.models.append(model)
            if self.budget_calls is not None and self.calls > self.budget_calls:
                return Resp(429, body={"error": {"type": "budget_exceeded", "message": "Budget has been exceeded!"}})
        return Resp(200, self.cost)

    control = ProxyControl.of("a", lambda op, body: {"still_running": [], "now": "2026-03-02T10:00:00+00:00"})


class Db:
    def row(self, entity):
        return {"spend": 0.0}


def _run(tmp_path: Path, spend: str, target: Target):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nsteps:\n  - create_key: {{name: k1}}\n  - spend: {{key: k1, {spend}}}\n")
    results, error = ScenarioRun(load(path), target, Db()).run()
    return results[1]


def test_amount_is_a_whole_number_of_calibrated_calls_on_the_unit_model(tmp_path: Path) -> None:
    target = Target(cost=0.01)
    result = _run(tmp_path, "amount: 0.1", target)
    assert result.status == "passed" and target.calls == 10 and set(target.models) == {"harness-unit"}
    assert "calibrated on this release: 0.01 per call" in result.message
    assert f"{sum([0.01] * 10)!r} spent" in result.message  # the float sum (0.09999999999999999), unrounded


def test_amount_shows_the_sum_a_proxy_would_store_not_a_rounded_one(tmp_path: Path) -> None:
    result = _run(tmp_path, "amount: 0.1", Target(cost=0.010000000000010001))  # 1.85.0's measured cost
    assert "0.10000000000010001 spent" in result.message


def test_an_amount_the_measured_cost_cannot_reach_is_unsupported_with_the_figure(tmp_path: Path) -> None:
    result = _run(tmp_path, "amount: 0.1", Target(cost=0.03))
    assert result.status == "unsupported" and "0.03 per call" in result.message


def test_concurrency_counts_accepted_and_rejected_and_bounds_acceptance(tmp_path: Path) -> None:
    ok = _run(tmp_path, "requests: 6, concurrency: 3", Target(cost=0.05))
    assert ok.status == "passed" and "6 accepted" in ok.message
    rejected = _run(tmp_path, "requests: 6, concurrency: 6", Target(cost=0.05, budget_calls=2))
    assert rejected.status == "failed" and "2 accepted" in rejected.message and "4 rejected" in rejected.message
    allowed = _run(tmp_path, "requests: 6, concurrency: 6, allow_rejections: true, max_accepted: 1", Target(0.05, 2))
    assert allowed.status == "failed" and "more than max_accepted=1" in allowed.message


def test_concurrency_is_bounded_by_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - create_key: {name: k1}\n  - spend: {key: k1, requests: 500, concurrency: 500}\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:4: `concurrency`: Input should be less than or equal to 64"):
        load(path)


def test_concurrency_only_goes_to_a_loopback_proxy(tmp_path: Path) -> None:
    target = Target(cost=0.05)
    target.base_url = "http://proxy.example.com:4000"
    result = _run(tmp_path, "requests: 4, concurrency: 4", target)
    assert result.status == "error" and "only to a proxy on loopback" in result.message and target.calls == 0
