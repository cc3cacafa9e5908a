"""docs/catalogue.md lists every catalogue scenario and its report (regenerate it with
scripts/catalogue.py when a scenario is added), and the script's pure logic."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from harness.reports import check as ck
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "catalogue.md"
REGENERATE = ("regenerate with: python scripts/catalogue.py --report benchmarks/results/catalogue.json "
              "--report <a matrix.json or check.json with the new scenario>")

spec = importlib.util.spec_from_file_location("catalogue_script", ROOT / "scripts" / "catalogue.py")
catalogue_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(catalogue_script)

CATALOGUE = ck.catalogue(load(p) for p in ck.catalogue_files([str(ROOT / "scenarios")]))


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[s.name for s in CATALOGUE])
def test_the_doc_lists_every_catalogue_scenario_and_its_report(scenario) -> None:
    text = DOC.read_text()
    assert f"]({scenario.meta.issue})" in text, f"{scenario.path}: {scenario.meta.issue} is not in {DOC.name}; {REGENERATE}"
    assert f"`{scenario.name}`" in text, f"{scenario.path}: {scenario.name} is not in {DOC.name}; {REGENERATE}"


def test_the_doc_and_its_json_agree() -> None:
    doc = json.loads((ROOT / "benchmarks" / "results" / "catalogue.json").read_text())
    assert doc["command"] in DOC.read_text()
    assert all(f"]({bug['issue']})" in DOC.read_text() for bug in doc["bugs"])


def test_every_catalogue_layer_has_a_heading() -> None:
    """A scenarios/ subdirectory with catalogue scenarios gets a section title in LAYERS, not its bare name."""
    layers = {Path(s.path).parent.name for s in CATALOGUE}
    missing = sorted(layers - set(catalogue_script.LAYERS))
    assert not missing, f"scenarios/{missing[0]}/ has catalogue scenarios but no heading in scripts/catalogue.py LAYERS"


@pytest.mark.parametrize("affects, fixed", [
    ("<1.85.0", "1.85.0"),
    (">=1.83.0,<1.95.0", "1.95.0"),
    (">=1.84.0", "not fixed as of 1.100.0"),
    ("<1.83.3 || >=1.84.0,<1.84.2", "1.83.3, 1.84.2"),
    ("<=1.84.10", "after 1.84.10"),
    ("<1.83.3 || >=1.84.0", "not fixed as of 1.100.0"),
    (None, "-"),
])
def test_first_fixed_release_from_affects(affects, fixed) -> None:
    assert catalogue_script.first_fixed(affects, "1.100.0") == fixed


def _report(tmp_path: Path, name: str, cells: list[dict]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"cells": cells}))
    return str(path)


def test_reports_combine_scenarios_of_one_issue_and_later_reports_win(tmp_path: Path) -> None:
    org, rows = (s for s in CATALOGUE if s.meta.issue.endswith("/25495"))
    first = _report(tmp_path, "a.json", [
        {"scenario": org.name, "litellm": "1.84.10", "verdict": "passed"},
        {"scenario": rows.name, "litellm": "1.84.10", "verdict": "reproduced"},
        {"scenario": org.name, "litellm": "1.85.0", "verdict": "error"},
        {"scenario": "key_budget_reset", "litellm": "1.85.0", "verdict": "passed"},  # a control: left out
    ])
    later = _report(tmp_path, "b.json", [{"scenario": org.name, "litellm": "1.85.0", "verdict": "passed"}])
    doc = catalogue_script.build([org, rows], catalogue_script.read_cells([first, later]))
    bug, = doc["bugs"]
    assert bug["statuses"] == {"1.84.10": "present", "1.85.0": "absent"}
    assert bug["layer"] == "reset_job" and bug["first_fixed"] == "1.85.0" and doc["releases"] == ["1.84.10", "1.85.0"]
    assert len(doc["cells"]) == 3
    md = catalogue_script.markdown(doc, "cmd")
    assert "| [#25495](https://github.com/BerriAI/litellm/issues/25495) |" in md and "🐞 present | ✅ absent |" in md


def _generate(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    """The script run with `args` and outputs in tmp_path: its exit code and what it printed to stderr."""
    code = catalogue_script.main([*args, "--out", str(tmp_path / "c.md"), "--json", str(tmp_path / "c.json")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"),
    ('{"bugs": []}', "no `cells` list"),
    ('{"cells": [{"scenario": "x"}]}', "a cell without scenario/litellm/verdict"),
    ('{"cells": [{"scenario": "x", "litellm": "1", "verdict": "maybe"}]}', "a cell without"),
])
def test_a_bad_report_is_one_line_and_exit_2(tmp_path: Path, capsys, content: str, message: str) -> None:
    bad = tmp_path / "r.json"
    bad.write_text(content)
    code, err = _generate(tmp_path, capsys, "--report", str(bad))
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "c.md").exists()


def test_no_report_or_a_missing_one_is_exit_2(tmp_path: Path, capsys) -> None:
    assert catalogue_script.main(["--out", str(tmp_path / "c.md")]) == 2
    assert catalogue_script.main(["--report", str(tmp_path / "none.json"), "--out", str(tmp_path / "c.md")]) == 2
    assert "--report" in capsys.readouterr().err


def test_the_left_out_rows_are_in_the_doc_and_not_in_the_catalogue() -> None:
    rows = catalogue_script.read_left_out(catalogue_script.LEFT_OUT)
    assert rows, "docs/catalogue-left-out.yaml lists no row"
    text = DOC.read_text()
    catalogue_issues = {s.meta.issue for s in CATALOGUE}
    for row in rows:
        assert f"]({row['issue']})" in text.split("## Left out", 1)[-1], f"{row['issue']} is not in the Left out section; {REGENERATE}"
        assert row["issue"] not in catalogue_issues, f"{row['issue']} is both in the catalogue and left out"


@pytest.mark.parametrize("content, message", [
    ("{a: 1}", "expected a list"),
    ("- {issue: x, title: y}", "entry 1 needs issue, title and reason"),
    ("[: bad", "not YAML"),
])
def test_a_bad_left_out_file_is_one_line_and_exit_2(tmp_path: Path, capsys, content: str, message: str) -> None:
    bad = tmp_path / "left.yaml"
    bad.write_text(content)
    report = tmp_path / "m.json"
    report.write_text(json.dumps({"cells": []}))
    code, err = _generate(tmp_path, capsys, "--report", str(report), "--left-out", str(bad))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
