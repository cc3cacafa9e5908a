"""Unit tests of `check` (harness.check and the CLI command): the status of a verdict, how the
scenarios of one bug combine, the --from diff, check.json's shape, exit codes and bad input.
Results are synthetic here (pure logic); tests/test_check_e2e.py runs real proxies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.reports import check as ck
from harness import cli
from harness.commands import check as check_command
from harness.execution.engine import Engine
from harness.execution.results import RunOutcome
from harness.execution.results import ScenarioResult
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ck.catalogue(load(p) for p in ck.catalogue_files([str(ROOT / "scenarios")]))
ORG = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"
ORG_ROWS = ROOT / "scenarios" / "reset_job" / "org_budget_reset_db_rows.yaml"
TAG = ROOT / "scenarios" / "reset_job" / "tag_budget_reset.yaml"
CONTROL = ROOT / "scenarios" / "reset_job" / "key_budget_reset.yaml"


def obs(scenario: str, verdict: str, issue: str = "https://x/issues/1", litellm: str = "1.85.0",
        affects: str | None = "<1.85.0", title: str = "t") -> ck.Observation:
    return ck.Observation(scenario=scenario, file=f"{scenario}.yaml", issue=issue, title=title, affects=affects,
                          litellm=litellm, verdict=verdict, reason=f"{scenario} {verdict}")


# -- a verdict's status; several scenarios of one bug ----------------------------------------


@pytest.mark.parametrize("verdict, status", [
    ("reproduced", "present"), ("regression", "present"), ("passed", "absent"), ("unexpected pass", "absent"),
    ("unsupported", "unsupported"), ("uninstallable", "unsupported"), ("error", "error"),
])
def test_status_comes_from_the_measurement(verdict: str, status: str) -> None:
    assert ck.status_of(verdict) == status


def test_an_unknown_verdict_is_refused() -> None:
    with pytest.raises(ValueError):
        ck.status_of("maybe")


@pytest.mark.parametrize("statuses, combined", [
    (["absent", "present"], "present"),
    (["error", "present"], "present"),
    (["error", "absent"], "error"),
    (["unsupported", "error"], "error"),
    (["unsupported", "absent"], "absent"),
    (["unsupported", "unsupported"], "unsupported"),
    (["absent", "absent"], "absent"),
])
def test_statuses_of_one_bug_combine_by_precedence(statuses: list[str], combined: str) -> None:
    assert ck.combine(statuses) == combined


def test_a_bug_of_two_scenarios_names_the_deciding_one_and_mentions_the_other() -> None:
    bug, = ck.bugs_of([obs("a", "passed"), obs("b", "regression"), obs("c", "unsupported")])
    assert (bug.status, bug.scenario) == ("present", "b")
    assert bug.reason == "b regression (also a: absent; c: unsupported)"
    assert [o.scenario for o in bug.observations] == ["a", "b", "c"]


def test_bugs_keep_the_catalogue_order_and_the_first_title() -> None:
    bugs = ck.bugs_of([obs("a", "passed", "https://x/issues/2", title=""), obs("b", "passed", "https://x/issues/1"),
                       obs("c", "passed", "https://x/issues/2", title="second")])
    assert [(b.issue, b.title) for b in bugs] == [("https://x/issues/2", "second"), ("https://x/issues/1", "t")]


def test_bugs_of_refuses_two_releases() -> None:
    with pytest.raises(ValueError):
        ck.bugs_of([obs("a", "passed", litellm="1.84.10"), obs("a", "passed")])


def test_affects_is_not_the_status_but_a_disagreement_is_noted() -> None:
    fixed_early, = ck.bugs_of([obs("a", "unexpected pass", litellm="1.84.10")])  # inside <1.85.0, yet absent
    assert fixed_early.status == "absent"
    assert fixed_early.note == "affects <1.85.0 says present on 1.84.10, measured absent"
    regressed, = ck.bugs_of([obs("a", "regression", litellm="1.85.0")])
    assert regressed.status == "present" and "says absent on 1.85.0, measured present" in regressed.note
    agrees, = ck.bugs_of([obs("a", "reproduced", litellm="1.84.10")])
    assert agrees.note == "" and agrees.affects_says is None
    unknown, = ck.bugs_of([obs("a", "unsupported", litellm="1.84.10")])
    assert unknown.note == ""  # nothing measured, nothing to disagree with


def test_issue_labels() -> None:
    assert ck.issue_label("https://github.com/BerriAI/litellm/issues/25495") == "#25495"
    assert ck.issue_label("https://github.com/BerriAI/litellm/pull/38686") == "PR #38686"
    assert ck.issue_label("https://example.org/report") == "https://example.org/report"


# -- --from: what the upgrade fixes and brings in --------------------------------------------


def _two_releases() -> ck.CheckResult:
    a, b, c, d = ("https://x/issues/" + n for n in ("11", "12", "13", "14"))
    observations = [
        obs("fixed", "reproduced", a, "1.84.10"), obs("fixed", "passed", a, "1.85.0"),
        obs("new", "passed", b, "1.84.10", affects=None), obs("new", "regression", b, "1.85.0", affects=None),
        obs("stays", "reproduced", c, "1.84.10", affects=None), obs("stays", "regression", c, "1.85.0", affects=None),
        obs("cannot", "unsupported", d, "1.84.10"), obs("cannot", "passed", d, "1.85.0"),
    ]
    return ck.check_result(observations, "1.85.0", "1.84.10")


def test_from_lists_fixed_and_introduced_bugs() -> None:
    result = _two_releases()
    assert [b.scenario for b in result.fixed] == ["fixed"]
    assert [b.scenario for b in result.introduced] == ["new"]
    assert [result.change_of(b) for b in result.bugs] == ["fixed", "introduced", "still present", "unknown"]
    assert ck.change(None, "present") == "new in the catalogue"
    assert "Upgrading from 1.84.10 fixes 1 (#11) and brings in 1 (#12)" in ck.headline(result)


def test_check_json_shape_with_from() -> None:
    doc = json.loads(json.dumps(ck.check_json(_two_releases(), seconds=1.0, environment={"1.85.0": {}})))
    assert doc["litellm"] == "1.85.0" and doc["from"] == "1.84.10"
    assert doc["counts"] == {"present": 2, "error": 0, "absent": 2, "unsupported": 0}
    assert doc["fixed"] == ["https://x/issues/11"] and doc["introduced"] == ["https://x/issues/12"]
    for bug in doc["bugs"]:
        assert {"issue", "title", "status", "scenario", "reason", "from_status", "change", "scenarios"} <= set(bug)
    assert {b["status"] for b in doc["from_bugs"]} == {"present", "absent", "unsupported"}
    # every run as a matrix-style cell, both releases (scripts/catalogue.py reads these)
    assert len(doc["cells"]) == 8 and {c["litellm"] for c in doc["cells"]} == {"1.84.10", "1.85.0"}
    assert {"scenario", "file", "litellm", "verdict", "status"} <= set(doc["cells"][0])
    assert doc["seconds"] == 1.0 and "environment" in doc


def test_check_json_and_markdown_of_one_release() -> None:
    result = ck.check_result([obs("a", "reproduced", litellm="1.84.10")], "1.84.10")
    doc = ck.check_json(result)
    assert "from" not in doc and "fixed" not in doc and "change" not in doc["bugs"][0]
    md = ck.check_markdown(result, seconds=3.0)
    assert md.startswith("## Is it safe to upgrade to litellm 1.84.10?")
    assert "| [#1](https://x/issues/1) | t | 🐞 present | `a` | a reproduced |" in md


def test_markdown_with_from_has_both_columns_and_the_lists() -> None:
    md = ck.check_markdown(_two_releases())
    assert "| report | title | `1.84.10` | `1.85.0` | change | scenario | reason |" in md
    assert "Fixed by the upgrade: [#11](https://x/issues/11) t" in md
    assert "| 🐞 present | ✅ absent | fixed |" in md
    assert "**Surprise: affects (none) says absent on 1.85.0, measured present.**" in md


# -- exit codes -------------------------------------------------------------------------------


def test_exit_code_fails_on_present_or_error_unless_no_fail() -> None:
    present = ck.check_result([obs("a", "reproduced")], "1.85.0")
    absent = ck.check_result([obs("a", "passed"), obs("b", "unsupported", "https://x/issues/2")], "1.85.0")
    error = ck.check_result([obs("a", "error")], "1.85.0")
    assert (present.exit_code(), absent.exit_code(), error.exit_code()) == (1, 0, 1)
    assert present.exit_code(no_fail=True) == error.exit_code(no_fail=True) == 0
    from_error = ck.check_result([obs("a", "error", litellm="1.84.10"), obs("a", "passed")], "1.85.0", "1.84.10")
    assert from_error.exit_code() == 1  # the diff cannot be trusted


# -- the catalogue ----------------------------------------------------------------------------


def test_catalogue_is_the_scenarios_with_an_issue_each_with_a_title() -> None:
    assert CATALOGUE and all(s.meta.issue for s in CATALOGUE)
    assert not any(s.meta.issue is None for s in CATALOGUE)
    assert "key_budget_reset" not in {s.name for s in CATALOGUE}  # a control
    for s in CATALOGUE:
        assert s.meta.title, f"{s.path}: a catalogue scenario needs `title:` (the upstream report's short title)"
        assert s.meta.description.strip() and not re.search(r"[.!?]\s+[A-Z]", s.meta.description), \
            f"{s.path}: description is one sentence (what the user sees)"


def test_catalogue_files_walks_directories_once(tmp_path: Path) -> None:
    files = ck.catalogue_files([str(ROOT / "scenarios" / "reset_job"), str(ORG)])
    assert files.count(ORG) == 1 and all(f.suffix == ".yaml" for f in files)
    with pytest.raises(cli.HarnessError, match="no such file"):
        ck.catalogue_files([str(tmp_path / "nope")])
    with pytest.raises(cli.HarnessError, match="no scenario files"):
        ck.catalogue_files([str(tmp_path)])


# -- the command, on synthetic runs -----------------------------------------------------------


ENVIRONMENT = {"postgres": "embedded 16", "prisma": "0.11.0"}


def _result(path: Path, version: str, verdict: str) -> ScenarioResult:
    return ScenarioResult(scenario=load(path), version=version, verdict=verdict, reason=f"{verdict} sk-secretkey123",
                          steps=[], seconds=0.5, environment={"litellm": version, **ENVIRONMENT}, secrets=["hunter2"])


@pytest.fixture()
def fake_run(monkeypatch):
    """`check` with the release runs replaced: `verdicts[(scenario name, version)]`, default passed."""
    verdicts: dict[tuple[str, str], str] = {}
    calls: list[list[str]] = []

    def run(engine, plan):
        calls.append(list(plan.versions))
        results = [_result(Path(s.path), v, verdicts.get((s.name, v), "passed"))
                   for v in plan.versions for s in plan.scenarios]
        return RunOutcome(scenarios=plan.scenarios, versions=plan.versions, results=results, seconds=2.0,
                          release_seconds={v: 1.0 for v in plan.versions})

    monkeypatch.setattr(Engine, "run", run)
    monkeypatch.setattr(check_command, "check_versions", lambda versions: None)
    return verdicts, calls


def test_check_writes_json_and_markdown_and_fails_on_a_present_bug(fake_run, tmp_path: Path) -> None:
    verdicts, calls = fake_run
    verdicts[("org_budget_reset", "1.84.10")] = "reproduced"
    code = cli.main(["check", "--litellm", "1.84.10", "--catalogue", str(ORG), str(ORG_ROWS), str(CONTROL),
                     "--out", str(tmp_path)])
    assert code == 1 and calls == [["1.84.10"]]
    doc = json.loads((tmp_path / "check.json").read_text())
    bug, = doc["bugs"]
    assert (bug["issue"], bug["status"], bug["scenario"]) == ("https://github.com/BerriAI/litellm/issues/25495",
                                                              "present", "org_budget_reset")
    assert bug["title"].startswith("organization budgets never reset")
    assert [s["scenario"] for s in bug["scenarios"]] == ["org_budget_reset", "org_budget_reset_db_rows"]
    assert doc["exit_code"] == 1 and doc["environment"]["1.84.10"]["prisma"] == "0.11.0"
    text = (tmp_path / "check.json").read_text() + (tmp_path / "check.md").read_text()
    assert "hunter2" not in text and "sk-secretkey123" not in text
    assert "🐞 present" in (tmp_path / "check.md").read_text()


def test_check_no_fail_and_absent_exit_0(fake_run, tmp_path: Path) -> None:
    verdicts, _ = fake_run
    verdicts[("org_budget_reset", "1.84.10")] = "reproduced"
    assert cli.main(["check", "--litellm", "1.84.10", "--catalogue", str(ORG), "--no-fail"]) == 0
    assert cli.main(["check", "--litellm", "1.85.0", "--catalogue", str(ORG)]) == 0


def test_check_from_runs_both_releases_and_reports_the_diff(fake_run, tmp_path: Path) -> None:
    verdicts, calls = fake_run
    verdicts[("org_budget_reset", "1.84.10")] = "reproduced"
    verdicts[("tag_budget_reset", "1.85.0")] = "regression"
    code = cli.main(["check", "--litellm", "1.85.0", "--from", "1.84.10", "--catalogue", str(ORG), str(TAG),
                     "--out", str(tmp_path)])
    assert code == 1 and calls == [["1.84.10", "1.85.0"]]
    doc = json.loads((tmp_path / "check.json").read_text())
    assert doc["fixed"] == ["https://github.com/BerriAI/litellm/issues/25495"]
    assert doc["introduced"] == ["https://github.com/BerriAI/litellm/issues/27481"]


def test_check_error_entry_exits_1(fake_run) -> None:
    verdicts, _ = fake_run
    verdicts[("org_budget_reset", "1.85.0")] = "error"
    assert cli.main(["check", "--litellm", "1.85.0", "--catalogue", str(ORG)]) == 1


def test_an_uninstallable_release_is_bad_input(fake_run) -> None:
    verdicts, _ = fake_run
    verdicts[("org_budget_reset", "1.85.0")] = "uninstallable"
    assert cli.main(["check", "--litellm", "1.85.0", "--catalogue", str(ORG)]) == 2


def test_ctrl_c_exits_130(monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "run", interrupted)
    monkeypatch.setattr(check_command, "check_versions", lambda versions: None)
    assert cli.main(["check", "--litellm", "1.85.0", "--catalogue", str(ORG)]) == 130


@pytest.mark.parametrize("argv, message", [
    (["check", "--catalogue", str(ORG)], "one --litellm"),
    (["check", "--litellm", "1.84.10", "--litellm", "1.85.0", "--catalogue", str(ORG)], "one --litellm"),
    (["check", "--litellm", "1.85.0", "--from", "1.85.0", "--catalogue", str(ORG)], "is the release being checked"),
    (["check", "--litellm", "1.85.0", "--catalogue", "/no/such/dir"], "no such file or directory"),
    (["check", "--litellm", "1.85.0", "--catalogue", str(CONTROL)], "only controls"),
    (["check", "--litellm", "one.eight", "--catalogue", str(ORG)], "is not a version number"),
    (["check", "--litellm", "1.85.0", "--from", "latest", "--catalogue", str(ORG)], "is not a version number"),
    (["check", "--litellm", "1.85.0", "--catalogue", str(ORG), "--proxy-config", "/no/such.yaml"], "proxy"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys) -> None:
    assert cli.main(argv) == 2
    out = capsys.readouterr().out
    assert message in out and out.count("\n") == 1


def test_an_invalid_scenario_file_is_exit_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nissue: https://x/issues/1\nsteps: []\n")
    assert cli.main(["check", "--litellm", "1.85.0", "--catalogue", str(tmp_path)]) == 2
    assert "invalid" in capsys.readouterr().out


def test_check_md_names_the_operators_proxy_config(fake_run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(ENVIRONMENT, "proxy_config", "ops.yaml: every setting kept")
    assert cli.main(["check", "--litellm", "1.85.0", "--catalogue", str(ORG), "--out", str(tmp_path)]) == 0
    assert "; proxy config ops.yaml: every setting kept." in (tmp_path / "check.md").read_text()
