"""The loader: valid files load, each bad file gives its one-line `file:line:` error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import json_schema, load

ROOT = Path(__file__).resolve().parents[1]
BAD = sorted((ROOT / "tests" / "data" / "bad_scenarios").glob("*.yaml"))
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_scenario_gives_one_line_error_with_file_and_line(path: Path) -> None:
    expected = path.read_text().splitlines()[0].split("expect: ", 1)[1]
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path.parent) + "/")
    assert expected in message


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_are_valid(path: Path) -> None:
    scenario = load(path)
    assert scenario.steps and scenario.name
    # every step remembers its own source line
    text = path.read_text().splitlines()
    for placed in scenario.steps:
        assert text[placed.line - 1].strip() == placed.source


def test_seed_scenario_shape() -> None:
    scenario = load(ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml")
    assert scenario.meta.affects == "<1.85.0"
    assert scenario.expected_to_fail_on("1.82.3") and scenario.expected_to_fail_on("1.84.10")
    assert not scenario.expected_to_fail_on("1.85.0")
    actions = [p.step.action for p in scenario.steps]
    assert actions.index("run_reset_job") > actions.index("advance_clock") > actions.index("spend")


def test_timestamps_stay_text_and_shorthands_expand(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - freeze_clock: 2026-03-02T10:00:00Z\n  - advance_clock: 90\n  - run_reset_job\n")
    scenario = load(path)
    freeze, advance, job = (p.step for p in scenario.steps)
    assert freeze.at == "2026-03-02T10:00:00Z"
    assert advance.delta.total_seconds() == 90
    assert job.action == "run_reset_job"


def test_published_json_schema_is_current() -> None:
    published = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert published == json_schema(), "regenerate with: python -m harness schema -o scenarios/scenario.schema.json"


def test_cli_validate_reports_every_bad_file_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(SCENARIOS[0]), str(BAD[0]), str(BAD[1])],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert f"valid {SCENARIOS[0]}" in proc.stdout
    assert proc.stdout.count("invalid ") == 2


def test_cli_run_starts_nothing_for_an_invalid_file() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(BAD[0]), "--litellm", "1.82.3", "--db", "url", "--db-url",
         "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "invalid" in proc.stdout and "PostgreSQL" not in proc.stdout
