"""`${name.field}` references: checked by the loader, filled in by the runner, redacted in reports."""

from __future__ import annotations

from pathlib import Path

import fakes
import pytest

from harness.errors import ScenarioError
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.reports.text import redact
from harness.scenario import load
from harness.steps import references


def _file(tmp_path: Path, steps: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - create_key: {name: k1}\n  - create_team: {name: acme}\n" + steps)
    return path


@pytest.mark.parametrize(
    "step, message",
    [
        ('  - api_call: {path: "/key/${k2.token}/reset_spend"}\n', "s.yaml:5: `${k2.token}` names no entity created by an earlier step; known: acme, k1"),
        ('  - api_call: {path: "/x", json: {a: {b: "${acme.token}"}}}\n', "s.yaml:5: `${acme.token}`: a team has no field `token`; fields: id, name, team_id, organization_id"),
        ('  - api_call: {path: "/x", headers: {X: "${k1}"}}\n', "s.yaml:5: `${k1}` is not a reference: write `${name.field}`"),
        ('  - api_call:\n      path: /x\n      params: {key: "${k1.token"}\n', "s.yaml:7: an unclosed `${`"),
    ],
)
def test_the_loader_rejects_bad_references_with_file_and_line(tmp_path: Path, step: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load(_file(tmp_path, step))
    assert "\n" not in str(info.value)
    assert message in str(info.value)


def test_a_reference_to_a_later_entity_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text('name: s\nsteps:\n  - api_call: {path: "/key/${k1.token}"}\n  - create_key: {name: k1}\n')
    with pytest.raises(ScenarioError, match=r"s.yaml:3: `\$\{k1.token\}` names no entity"):
        load(path)


def test_fill_keeps_whole_values_typed_and_writes_into_text() -> None:
    values = {("t", "id"): "team-1", ("k", "token"): "sk-abc", ("b", "max"): 2.5}
    lookup = lambda name, field: values[(name, field)]  # noqa: E731
    raw = {"path": "/team/${t.id}/x", "json": {"limit": "${b.max}", "keys": ["${k.token}"]}}
    assert references.fill(raw, lookup) == {"path": "/team/team-1/x", "json": {"limit": 2.5, "keys": ["sk-abc"]}}


Resp = fakes.Resp


class Target:
    def __init__(self):
        self.calls = []

    def api(self, method, path, **kwargs):
        self.calls.append((method, path, kwargs))
        if path == "/key/generate":
            return Resp(200, {"key": "sk-secret-of-k1-0123456789"})
        if path == "/team/new":
            return Resp(200, {"team_id": "team-uuid-1"})
        return Resp(200, {})

    control = ProxyControl.of("a", lambda op, body: {"now": "2026-03-02T10:00:00+00:00"})


class Db:
    def row(self, entity):
        return {"budget_id": "b-1"}


def test_the_runner_fills_references_in_path_body_and_headers_and_the_secret_is_redacted(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        '  - api_call:\n      path: "/key/${k1.token}/reset_spend"\n'
        '      json: {team: "${acme.id}", budget: "${k1.budget_id}"}\n'
        '      headers: {Authorization: "Bearer ${k1.token}"}\n',
    )
    scenario = load(path)
    target = Target()
    run = ScenarioRun(scenario, target, Db())
    results, error = run.run()
    assert error is None and [r.status for r in results] == ["passed"] * 3
    method, called, kwargs = target.calls[-1]
    assert called == "/key/sk-secret-of-k1-0123456789/reset_spend"
    assert kwargs["json"] == {"team": "team-uuid-1", "budget": "b-1"}
    assert kwargs["headers"] == {"Authorization": "Bearer sk-secret-of-k1-0123456789"}
    # the step's description keeps the reference, the message is redacted with the run's secrets
    assert "${k1.token}" in results[2].description
    assert "sk-secret-of-k1-0123456789" in run.secrets()
    assert "sk-secret" not in redact(results[2].message, run.secrets())
