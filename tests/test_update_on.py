"""`update: {..., on: REPLICA}`: `on` picks the replica, it is not a field of the update request."""

from __future__ import annotations

from pathlib import Path

import fakes

from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.scenario import load


class Target:
    """A proxy whose /key/update takes `key` and `max_budget` only; records the bodies sent."""

    def __init__(self):
        self.bodies: dict[str, dict] = {}
        self.control = ProxyControl.of("a", self._agent)

    def api(self, method, path, json=None, **kwargs):
        self.bodies[path] = json
        return fakes.Resp(200, {"key": "sk-update-test-000000001"})

    def _agent(self, op, body):
        if op == "route":
            return {"exists": True, "path": body["path"], "fields": ["key", "max_budget"]}
        return {"now": "2026-03-02T10:00:00+00:00", "still_running": [], "seconds": 0.0}


class Db:
    def row(self, entity):
        return {"spend": 0.0}


def test_on_is_not_sent_as_a_field_of_the_update(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - create_key: {name: k1}\n  - update: {entity: k1, max_budget: 0.5, on: all}\n")
    target = Target()
    results, error = ScenarioRun(load(path), target, Db()).run()
    assert [r.status for r in results] == ["passed", "passed"], [r.message for r in results]
    assert target.bodies["/key/update"] == {"key": "sk-update-test-000000001", "max_budget": 0.5}
