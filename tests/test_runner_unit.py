"""ScenarioRun's own logic with a fake target (no proxy): step outcomes and what they lead to."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import fakes

from harness.execution.results import verdict_for
from harness.execution.scenario_run import ScenarioRun
from harness.scenario import load

Resp = partial(fakes.Resp, cost=0.05)  # every fake answer carries the mock's cost


class FakeTarget:
    """Answers /team/new with a 500 and everything else with success."""

    def __init__(self):
        self.calls = []

    def api(self, method, path, **kwargs):
        self.calls.append(path)
        if path == "/team/new":
            return Resp(500, {"error": {"message": "boom", "type": "internal_error"}})
        return Resp(200, {"key": "sk-test-123456789", "user_id": "u"})

    def chat(self, key, end_user=None, **kwargs):
        return Resp(200, {})

    control = fakes.idle_control()


def test_a_proxy_500_on_create_is_a_failure_and_dependent_steps_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nsteps:\n  - create_team: {name: t}\n  - create_key: {name: k, team: t}\n"
        "  - create_key: {name: k2}\n  - expect_request: {key: k2, outcome: accepted}\n"
    )
    scenario = load(path)
    steps, error = ScenarioRun(scenario, FakeTarget(), fakes.Db()).run()
    assert [s.status for s in steps] == ["failed", "skipped", "passed", "passed"]
    assert "answered 500: boom" in steps[0].message
    assert "`t` was not created" in steps[1].message
    assert error is None
    assert verdict_for(scenario, "1.82.3", steps, error)[0] == "regression"
