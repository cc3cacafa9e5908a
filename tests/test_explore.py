"""`explore`: bad input is one line and exit 2; a small seeded exploration on the real 1.85.0
proxy runs to the end and writes findings.json whose findings replay (slow: a real release)."""

from __future__ import annotations

import json

import pytest

from harness import cli


@pytest.mark.parametrize("argv, text", [
    (["explore", "--litellm", "1.85.0", "--kinds", "planet"], "unknown kinds planet"),
    (["explore", "--litellm", "1.85.0", "--examples", "0"], "--examples must be at least 1"),
    (["explore"], "one --litellm VERSION"),
    (["explore", "--litellm", "1.85.0", "--deployment", "{replicas: [a, b], redis: bogus}"], "--deployment"),
    (["explore", "--litellm", "1.85.0", "--deployment", "[1"], "not YAML"),
])
def test_bad_input_is_one_line_and_exit_2(argv, text, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr()
    assert text in err.out + err.err and "Traceback" not in err.out + err.err


@pytest.mark.slow
def test_a_seeded_exploration_on_1_85_0_runs_to_the_end(tmp_path, capsys, request):
    examples = request.config.getoption("explore_examples")
    if examples < 1:
        pytest.skip("--explore-examples 0: the seeded exploration is off")
    code = cli.main(["explore", "--litellm", "1.85.0", "--seed", "1", "--examples", str(examples), "--time-budget", "45",
                     "--out", str(tmp_path)])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "findings.json").read_text())
    assert doc["litellm"] == "1.85.0" and doc["seed"] == 1 and doc["examples"] >= 1, out
    assert code == (1 if doc["findings"] else 0), out
    for finding in doc["findings"]:
        assert set(finding) >= {"id", "rule", "known", "scenario", "summary"}, finding
    if doc["findings"]:  # each one replays to a failing verdict (one `run`, so one proxy start)
        reports = tmp_path / "replay"
        assert cli.main(["run", *(f["scenario"] for f in doc["findings"]), "--litellm", "1.85.0",
                         "--report-dir", str(reports)]) == 1
        verdicts = {json.loads(p.read_text())["scenario"]: json.loads(p.read_text())["verdict"]
                    for p in reports.glob("*.json")}
        assert len(verdicts) == len(doc["findings"]) and set(verdicts.values()) <= {"regression", "reproduced"}, verdicts
