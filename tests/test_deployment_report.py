"""A deployment's report cell keeps who served each step and the faults, and a merge reads them back."""

from __future__ import annotations

from pathlib import Path

from harness.reports.merge import result_from_cell
from harness.reports.text import result_dict
from harness.execution.results import ScenarioResult, StepResult
from harness.scenario import load

ROOT = Path(__file__).resolve().parents[1]


def test_served_and_faults_survive_the_report_and_merge():
    scenario = load(ROOT / "tests" / "data" / "deployments" / "replica_and_redis_faults.yaml")
    fault = {"target": "replica b pid 1", "fault": "stop_kill", "detail": {}, "started_at": "2026-03-02T10:00:00+00:00",
             "ended_at": "2026-03-02T10:00:02+00:00", "seconds": 2.0, "end": "restarted", "effects": {}}
    step = StepResult(0, 9, "- spend: ...", "spend(key=k1)", status="failed", seconds=0.5, message="m",
                      served=["a", "b", "a"], expected=1.0, actual=2.0, rows={"k1": {"spend": 2.0}})
    result = ScenarioResult(scenario, "1.85.0", "regression", "r", [step], 1.0, faults=[fault])
    cell = result_dict(result)
    assert cell["steps"][0]["served"] == ["a", "b", "a"] and cell["faults"] == [fault]
    back = result_from_cell(cell, scenario)
    again = back.steps[0]
    assert (again.served, again.expected, again.actual, again.rows) == (["a", "b", "a"], 1.0, 2.0, {"k1": {"spend": 2.0}})
    assert back.faults == [fault]
