"""Unit tests of the execution engine's matrix side (release selection, install errors, exit codes,
worker plumbing) and of the matrix reports in harness.reports.matrix (JUnit XML, Markdown, JSON)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.version import Version

from harness import cli
from harness.errors import HarnessError, ReleaseUnavailable
from harness.execution import engine as eng
from harness.execution import plan as matrix
from harness.execution.engine import Engine
from harness.execution.hooks import Hooks
from harness.execution.plan import Plan
from harness.execution.session import snapshot_rows
from harness.verdicts import Verdict, exit_code
from harness.reports.matrix import junit_xml, matrix_json, matrix_markdown, matrix_table
from harness.execution.results import ScenarioResult, StepResult
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent
ORG = load(ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml")
KEY = load(ROOT / "scenarios" / "reset_job" / "key_budget_reset.yaml")

PUBLISHED = [Version(v) for v in (
    "1.80.0", "1.82.3", "1.82.4", "1.83.0", "1.84.0", "1.84.10", "1.85.0", "1.86.0", "1.107.0", "1.108.7",
    "1.110.2",
)]
DENY = {"1.107.0": "a compromised release"}


# -- which releases ------------------------------------------------------------------------


def test_range_is_resolved_in_version_order():
    sel = matrix.select_releases([], ">=1.82,<1.86", cap=10, published=PUBLISHED, denylist=DENY)
    assert sel.versions == ["1.82.3", "1.82.4", "1.83.0", "1.84.0", "1.84.10", "1.85.0"]
    assert "6 published final releases" in sel.note and "thinned" not in sel.note


def test_cap_thins_evenly_keeping_oldest_and_newest():
    sel = matrix.select_releases([], ">=1.82,<1.86", cap=3, published=PUBLISHED, denylist=DENY)
    assert len(sel.versions) == 3
    assert sel.versions[0] == "1.82.3" and sel.versions[-1] == "1.85.0"
    assert "thinned to 3 by --cap 3" in sel.note


def test_cap_does_not_limit_explicit_releases():
    sel = matrix.select_releases(["1.80.0", "1.110.2"], ">=1.84,<1.86", cap=1, published=PUBLISHED, denylist=DENY)
    assert sel.versions == ["1.80.0", "1.85.0", "1.110.2"]


def test_deny_listed_releases_in_a_range_are_listed_not_dropped():
    sel = matrix.select_releases([], ">=1.100", cap=8, published=PUBLISHED, denylist=DENY)
    assert sel.versions == ["1.107.0", "1.108.7", "1.110.2"]
    assert sel.refused == {"1.107.0": "litellm 1.107.0 is refused: a compromised release"}
    assert "deny-listed in range: 1.107.0" in sel.note


def test_bare_version_range_and_bad_input():
    assert matrix.select_releases([], "1.84.10", cap=8, published=PUBLISHED, denylist=DENY).versions == ["1.84.10"]
    with pytest.raises(HarnessError, match="not a version range"):
        matrix.select_releases([], "newest please", cap=8, published=PUBLISHED, denylist=DENY)
    with pytest.raises(HarnessError, match="cap must be at least 1"):
        matrix.select_releases([], ">=1.82", cap=0, published=PUBLISHED, denylist=DENY)
    with pytest.raises(HarnessError, match="no published version matches"):
        matrix.select_releases([], ">=9", cap=8, published=PUBLISHED, denylist=DENY)
    with pytest.raises(HarnessError, match="say which releases"):
        matrix.select_releases([], None, cap=8, published=PUBLISHED, denylist=DENY)


@pytest.mark.parametrize(
    "error, verdict",
    [
        (ReleaseUnavailable("litellm 1.108.12 cannot be installed: Because there is no version of "
                            "litellm-enterprise==0.1.79.post2 ..."), Verdict.UNINSTALLABLE),
        (ReleaseUnavailable("litellm 1.107.0 is refused: a compromised release"), Verdict.UNINSTALLABLE),
        (ReleaseUnavailable("no published prisma matches litellm 1.2.3's range >=9"), Verdict.UNINSTALLABLE),
        # the same words in a plain HarnessError are the harness's trouble, not the release's
        (HarnessError("litellm 1.0.0 cannot be installed: the build lock timed out"), Verdict.ERROR),
        (HarnessError("cannot reach the package index https://pypi.org/simple: ConnectionError"), Verdict.ERROR),
        (HarnessError("timed out waiting for the build lock of /x"), Verdict.ERROR),
    ],
)
def test_install_failures_are_uninstallable_only_when_about_the_release(error, verdict):
    assert eng.install_failure_verdict(error) == verdict


# -- exit codes ----------------------------------------------------------------------------


def cell(scenario, version, verdict, reason="", seconds=1.0, steps=None, secrets=(), log_tail=""):
    return ScenarioResult(scenario=scenario, version=version, verdict=verdict, reason=reason or verdict,
                          steps=steps or [], seconds=seconds, environment={"litellm": version},
                          log_tail=log_tail, secrets=list(secrets))


@pytest.mark.parametrize(
    "verdicts, code",
    [
        (["passed", "reproduced"], 0),
        (["passed", "unsupported", "uninstallable"], 0),
        (["reproduced", "regression"], 1),
        (["passed", "unexpected pass"], 1),
        (["passed", "error"], 1),
        (["unsupported", "uninstallable"], 1),  # nothing earned a verdict
        ([], 0),
    ],
)
def test_exit_code(verdicts, code):
    assert exit_code(verdicts) == code


# -- running -------------------------------------------------------------------------------


def test_refused_releases_start_nothing(monkeypatch):
    def no_server(*a, **k):
        raise AssertionError("no database server for a release that is never installed")

    monkeypatch.setattr("harness.db.start_server", no_server)
    sel = matrix.Selection(versions=["1.107.0"], refused={"1.107.0": "litellm 1.107.0 is refused: compromised"})
    for jobs in (1, 2):
        with Engine(jobs=jobs) as engine:
            run = engine.run(Plan([ORG, KEY], sel))
        assert [(r.scenario.name, r.verdict) for r in run.results] == [
            ("org_budget_reset", "uninstallable"), ("key_budget_reset", "uninstallable")]
        assert run.results[0].reason == "litellm 1.107.0 is refused: compromised" and run.results[0].steps == []
        assert run.exit_code() == 1


class FakeSession:
    """A ReleaseSession that passes every scenario without starting anything."""

    opened: list[str] = []

    def __init__(self, version, server, progress=None, **_kwargs):
        self.version = version
        FakeSession.opened.append(version)

    def run(self, scenario, on_step=None, readings=False):
        return cell(scenario, self.version, "passed")

    def close(self):
        pass


def test_serial_matrix_marks_uninstallable_releases_and_keeps_order(monkeypatch, fake_pg_server):
    def fake_ensure_release(version, progress=None):
        if version == "1.108.12":
            raise ReleaseUnavailable("litellm 1.108.12 cannot be installed: no litellm-enterprise")

    monkeypatch.setattr("harness.releases.ensure_release", fake_ensure_release)
    monkeypatch.setattr(eng, "ReleaseSession", FakeSession)
    FakeSession.opened = []
    sel = matrix.Selection(versions=["1.82.3", "1.108.12", "1.85.0"])
    with Engine() as engine:
        run = engine.run(Plan([KEY, ORG], sel))
    assert FakeSession.opened == ["1.82.3", "1.85.0"]
    assert [(r.version, r.scenario.name) for r in run.results] == [
        ("1.82.3", "key_budget_reset"), ("1.82.3", "org_budget_reset"),
        ("1.85.0", "key_budget_reset"), ("1.85.0", "org_budget_reset"),
        ("1.108.12", "key_budget_reset"), ("1.108.12", "org_budget_reset"),
    ]
    assert run.secrets == ["pw-123456"]
    assert run.cell(ORG.path, "1.108.12").verdict == "uninstallable"


def test_worker_processes_send_their_cells_back():
    # real spawned workers; versions that fail before anything is installed or started
    sel = matrix.Selection(versions=["0.0.0.dev0+bad", "not-a-version"])
    lines = []
    with Engine(Lines(lines), jobs=2) as engine:
        run = engine.run(Plan([ORG, KEY], sel))
    assert run.jobs == 2 and len(run.results) == 4
    bad = [r for r in run.results if r.version == "not-a-version"]
    assert [r.verdict for r in bad] == ["error", "error"] and "not a version number" in bad[0].reason
    assert any(line.startswith("[not-a-version] litellm not-a-version: error:") for line in lines)
    assert run.exit_code() == 1


class Lines(Hooks):
    def __init__(self, lines):
        self.lines = lines

    def progress(self, message, version=None):
        self.lines.append(f"[{version}] {message}" if version else message)


def dying_worker(share, version, scenarios, db_kind, db_url, wants_rows, wants_readings, out, config=None):  # runs in a spawned process
    import os

    if version == "1.0.0":
        out.put(("progress", version, "about to die"))
        out.close()
        out.join_thread()  # delivered before the process dies
        os._exit(3)
    if version == "2.0.0":
        raise SystemExit(0)  # exits "cleanly" without reporting
    out.put(("failed", version, "RuntimeError: boom\ntraceback ..."))


def test_a_worker_that_dies_or_fails_gives_error_cells_for_its_release():
    cells, lines, seconds = [], [], {}
    versions = ["1.0.0", "2.0.0", "3.0.0"]
    plan = Plan.of([ORG, KEY], versions)
    eng._run_in_workers(Engine(Lines(lines)), plan, eng.release_work(plan, versions, 2), 2, cells.append, seconds,
                        worker=dying_worker)
    verdicts = {(r.version, r.scenario.name): (r.verdict, r.reason) for r in cells}
    assert len(verdicts) == 6 and {v for v, _ in verdicts.values()} == {"error"}
    assert "exited with code 3 without reporting" in verdicts[("1.0.0", "org_budget_reset")][1]
    assert "exited with code 0 without reporting" in verdicts[("2.0.0", "key_budget_reset")][1]
    assert verdicts[("3.0.0", "org_budget_reset")][1] == "the worker process for litellm 3.0.0 failed: RuntimeError: boom"
    assert "[1.0.0] about to die" in lines and set(seconds) == {"1.0.0", "2.0.0", "3.0.0"}


def test_snapshot_rows_reads_budget_tables(tmp_path):
    class Cursor:
        def __init__(self):
            self.queries = []
            self.result = []

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def execute(self, sql, params=None):
            self.queries.append(sql)
            if "information_schema" in sql:
                self.result = [{"table_name": "LiteLLM_OrganizationTable", "column_name": c}
                               for c in ("organization_id", "spend", "token_not_listed")]
            elif "LiteLLM_OrganizationTable" in sql:
                self.result = [{"organization_id": "o1", "spend": __import__("decimal").Decimal("0.6")}]
            elif "SpendLogs" in sql:
                self.result = [{"count": 12, "coalesce": 0.6}]
            else:
                self.result = []

        def fetchall(self):
            return self.result

        def fetchone(self):
            return self.result[0]

    class Conn:
        def __init__(self):
            self.cur = Cursor()

        def cursor(self):
            return self.cur

    conn = Conn()
    rows = snapshot_rows(conn)
    assert rows["LiteLLM_OrganizationTable"] == [{"organization_id": "o1", "spend": 0.6}]
    assert rows["LiteLLM_SpendLogs (summary)"] == {"rows": 12, "total_spend": 0.6}
    assert not any("token_not_listed" in q for q in conn.cur.queries)


# -- reports -------------------------------------------------------------------------------

SECRET = "sk-harness-abcdefSECRETKEY123"
CONTROL = "ctl-token-0123456789abcdef"


def every_verdict() -> list[ScenarioResult]:
    failed = StepResult(1, 28, "- expect_request: {key: k1, outcome: accepted}", "expect_request", "failed", 0.02,
                        "rejected: Budget has been exceeded! Organization=o1", "accepted", "rejected")
    return [
        cell(ORG, "1.82.3", "reproduced", "line 28: rejected", steps=[failed], secrets=[SECRET, CONTROL]),
        cell(ORG, "1.85.0", "passed", "every step passed"),
        cell(ORG, "1.108.7", "unsupported", "line 29: /organization/info answered 403: Enterprise only"),
        cell(ORG, "1.108.12", "uninstallable", "litellm 1.108.12 cannot be installed: no litellm-enterprise"),
        cell(KEY, "1.82.3", "regression", f"line 12: boom with {SECRET}", steps=[failed], secrets=[SECRET, CONTROL],
             log_tail=f"master key {SECRET} token {CONTROL} db postgresql://u:dbpw@h/x"),
        cell(KEY, "1.85.0", "unexpected pass", "every step passed, but ..."),
        cell(KEY, "1.108.7", "error", "line 3: the proxy did not answer <&> \x1b[31mred\x1b[0m \x07"),
    ]


def test_every_verdict_says_what_it_means_everywhere():
    assert {str(v) for v in Verdict} == {"passed", "reproduced", "regression", "unexpected pass", "error",
                                         "unsupported", "uninstallable"}
    assert {v for v in Verdict if v.failing} == {Verdict.REGRESSION, Verdict.UNEXPECTED_PASS, Verdict.ERROR}
    assert {v for v in Verdict if not v.earned} == {Verdict.UNSUPPORTED, Verdict.UNINSTALLABLE}
    for v in Verdict:
        assert v.meaning and v.style and v.markdown.endswith(str(v)) and v.ci_outcome in ("pass", "fail", "skip")


def test_junit_one_testcase_per_cell_with_the_right_outcome():
    text = junit_xml(every_verdict())
    root = ET.fromstring(text.encode())
    assert root.get("tests") == "7" and root.get("failures") == "2" and root.get("errors") == "1"
    assert root.get("skipped") == "2"
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert len(cases) == 7

    def case(s, v):
        return cases[(f"scenarios.{s}", f"litellm=={v}")]

    reproduced = case("org_budget_reset", "1.82.3")
    assert reproduced.find("failure") is None and reproduced.find("skipped") is None
    props = {p.get("name"): p.get("value") for p in reproduced.iter("property")}
    assert props["verdict"] == "reproduced" and "known bug" in props["note"]
    assert "reproduced" in reproduced.find("system-out").text
    assert case("org_budget_reset", "1.85.0").find("*[@type]") is None
    assert "403" in case("org_budget_reset", "1.108.7").find("skipped").get("message")
    assert case("org_budget_reset", "1.108.12").find("skipped").get("message").startswith("uninstallable:")
    assert case("key_budget_reset", "1.82.3").find("failure").get("type") == "regression"
    assert case("key_budget_reset", "1.85.0").find("failure").get("type") == "unexpected pass"
    assert case("key_budget_reset", "1.108.7").find("error").get("type") == "error"
    assert SECRET not in text and CONTROL not in text and "dbpw" not in text
    assert "\x1b" not in text and "\x07" not in text


def test_markdown_table_notes_and_failure_details():
    md = matrix_markdown(every_verdict(), note="--range '>=1.82'", seconds=42)
    assert "**3 failing**" in md and "(7 cells in 42s)" in md
    assert "| scenario | `1.82.3` | `1.85.0` | `1.108.7` | `1.108.12` |" in md  # version order
    assert "| `org_budget_reset` (affects `<1.85.0`) | 🐞 reproduced <sup>1</sup> | ✅ passed |" in md
    assert "unsupported**: line 29: /organization/info answered 403" in md
    assert "<summary>key_budget_reset on 1.82.3: regression</summary>" in md
    assert "<summary>org_budget_reset on 1.82.3" not in md  # reproduced is not a failure
    assert SECRET not in md and CONTROL not in md and "dbpw" not in md


def test_json_cells_and_counts():
    doc = matrix_json(every_verdict(), command="python -m harness matrix ...", exit_code=1)
    assert doc["releases"] == ["1.82.3", "1.85.0", "1.108.7", "1.108.12"]
    assert doc["counts"]["reproduced"] == 1 and doc["exit_code"] == 1
    assert {(c["litellm"], c["verdict"], c["ci"]) for c in doc["cells"] if c["scenario"] == "org_budget_reset"} == {
        ("1.82.3", "reproduced", "pass"), ("1.85.0", "passed", "pass"), ("1.108.7", "unsupported", "skip"),
        ("1.108.12", "uninstallable", "skip")}
    text = json.dumps(doc)
    assert SECRET not in text and CONTROL not in text and "dbpw" not in text


def test_terminal_table_has_version_columns():
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(matrix_table(every_verdict()))
    out = console.export_text()
    assert out.index("1.85.0") < out.index("1.108.7") < out.index("1.108.12")
    assert "uninstallable (" in out and "reproduced (" in out and "<1.85.0" in out


def test_terminal_table_is_not_squeezed_into_80_columns_in_a_log(tmp_path):
    from rich.console import Console

    from harness.reports.matrix import print_matrix

    with open(tmp_path / "log", "w") as fh:
        print_matrix(Console(file=fh, width=80, soft_wrap=True), every_verdict())
    text = (tmp_path / "log").read_text()
    assert "org_budget_reset" in text and "uninstallable (" in text and "…" not in text
    assert "boom with [REDACTED]" in text  # a bracket in a reason is text, not rich markup
    assert "\x1b" not in text


def test_unsupported_note_says_how_far_the_scenario_got():
    from harness.reports.matrix import cell_notes

    steps = [StepResult(i, 10 + i, f"- step {i}", "x", "passed", 0.1) for i in range(10)]
    steps.append(StepResult(10, 29, "- expect_state", "x", "unsupported", 0.0, "/organization/info answered 403"))
    r = cell(ORG, "1.108.7", "unsupported", "line 29: /organization/info answered 403", steps=steps)
    [(_, note)] = cell_notes([r])
    assert note.endswith("(before it, 10 of 11 steps ran: all held)")


# -- command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["matrix", "scenarios/reset_job/org_budget_reset.yaml"], "say which releases"),
        (["matrix", "scenarios/reset_job/org_budget_reset.yaml", "--range", "latest"], "not a version range"),
        (["matrix", "scenarios/reset_job/org_budget_reset.yaml", "--litellm", "1.82.3", "-j", "0"], "-j must be at least 1"),
        (["matrix", "tests/data/bad_scenarios/does-not-exist.yaml", "--litellm", "1.82.3"], ""),
    ],
)
def test_bad_input_exits_2(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)  # leave pytest's handlers alone
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().out


# -- sampling a wide range -------------------------------------------------------------------

WIDE = [Version(v) for v in (
    "1.60.0", "1.60.2", "1.60.5", "1.61.0", "1.63.0", "1.63.7", "1.63.14", "1.107.0", "1.107.1", "1.107.3",
    "1.108.0", "1.108.7",
)]


def test_minor_ends_takes_the_first_and_last_patch_of_each_minor_line():
    sel = matrix.select_releases([], ">=1.60,<=1.108.7", published=WIDE, denylist=DENY, sample="minor-ends")
    # 1.61 has one patch; 1.63.7 sits inside its line; deny-listed 1.107.0 leaves 1.107.1 first
    assert sel.versions == ["1.60.0", "1.60.5", "1.61.0", "1.63.0", "1.63.14", "1.107.1", "1.107.3", "1.108.0", "1.108.7"]
    assert sel.refused == {}
    assert "12 published final releases" not in sel.note and "9 by --sample minor-ends" in sel.note


def test_a_sample_is_not_capped_unless_asked_and_the_cap_then_keeps_both_ends():
    sel = matrix.select_releases([], ">=1.60", published=WIDE, denylist=DENY, sample="minor-ends", cap=3)
    assert sel.versions == ["1.60.0", "1.63.14", "1.108.7"]
    assert "thinned to 3 by --cap 3" in sel.note
    # without --sample the default cap applies, as before
    assert len(matrix.select_releases([], ">=1.60", published=WIDE, denylist=DENY).versions) == matrix.DEFAULT_CAP + 1


def test_sampling_respects_version_order_not_text_order():
    from harness.releases.index import sample_versions

    got = sample_versions([Version("1.63.14"), Version("1.63.2"), Version("1.63.10")], "minor-ends")
    assert got == [Version("1.63.2"), Version("1.63.14")]
    with pytest.raises(HarnessError, match="unknown sample"):
        sample_versions(WIDE, "every-other")


def test_an_unknown_sample_on_the_command_line_is_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["matrix", str(ROOT / "scenarios" / "reset_job" / "key_budget_reset.yaml"), "--range", ">=1.80", "--sample", "odd"])
    assert caught.value.code == 2
    assert "invalid choice: 'odd'" in capsys.readouterr().err.strip().splitlines()[-1]


class _Fake:
    def __init__(self, path: str, key: str):
        self.path, self.key = path, key


def test_deployment_pieces_keep_deployments_together_heaviest_first_in_the_runs_order():
    scenarios = [_Fake(f"s{i}", k) for i, k in enumerate("aabbbcdd")]
    pieces = matrix.deployment_pieces(scenarios, 2, lambda s: s.key)
    assert [[s.path for s in p] for p in pieces] == [["s2", "s3", "s4"], ["s0", "s1"], ["s6", "s7"], ["s5"]]
    assert matrix.deployment_pieces([], 2, lambda s: s.key) == []


def test_deployment_pieces_cut_only_a_group_larger_than_a_fair_share():
    scenarios = [_Fake(f"s{i}", "big" if i < 7 else "x") for i in range(8)]
    pieces = matrix.deployment_pieces(scenarios, 2, lambda s: s.key)
    assert [len(p) for p in pieces] == [4, 3, 1] and [s.key for s in pieces[-1]] == ["x"]
    weight = lambda s: 10.0 if s.path == "s7" else 1.0  # noqa: E731 - the fair share is 8.5: "big" stays whole
    assert [len(p) for p in matrix.deployment_pieces(scenarios, 2, lambda s: s.key, weight)] == [1, 7]


def test_release_work_splits_a_release_only_when_there_are_more_jobs_than_releases(monkeypatch):
    monkeypatch.setattr(eng, "MIN_SHARE", 1)
    other = load(ROOT / "scenarios" / "deployments" / "key_budget_multiplied_by_replicas.yaml")
    plan = Plan.of([ORG, KEY, other], ["1.85.0"])
    one = eng.release_work(plan, ["1.85.0"], 1)
    assert one.workers == {"1.85.0": 1}
    assert [[s.name for s in p.scenarios] for p in one.pieces] == [[ORG.name, KEY.name, other.name]]
    two = eng.release_work(plan, ["1.85.0"], 2)
    assert two.workers == {"1.85.0": 2} and sorted(s.name for p in two.pieces for s in p.scenarios) == sorted(
        [ORG.name, KEY.name, other.name])
    assert two.pieces[0].scenarios == [other]  # the two-replica deployment is the heaviest estimate
    plan2 = Plan.of([ORG, KEY], ["1.82.3", "1.85.0"])
    both = eng.release_work(plan2, ["1.82.3", "1.85.0"], 2)
    assert both.workers == {"1.82.3": 1, "1.85.0": 1} and [p.version for p in both.pieces] == ["1.82.3", "1.85.0"]
    timed = eng.release_work(plan, ["1.85.0"], 3, weight=lambda s, v: 50.0 if (s is KEY and v == "1.85.0") else 1.0)
    assert timed.pieces[0].scenarios[0] is KEY  # the release's own seconds order the pieces
    monkeypatch.setattr(eng, "MIN_SHARE", 2)
    assert eng.release_work(plan, ["1.85.0"], 2).workers == {"1.85.0": 1}  # too few scenarios to pay for a split


def _piece(version, name, key):
    return eng.Piece(version, [_Fake(name, key)], key)


def test_work_hands_a_free_worker_its_own_deployment_first_then_the_heaviest_left():
    work = eng.Work([_piece("1", "a1", "A"), _piece("1", "b1", "B"), _piece("1", "a2", "A"), _piece("2", "c", "C")],
                    {"1": 2, "2": 1})
    assert work.next_new({}).scenarios[0].path == "a1"
    assert work.next_new({"1": 1}).scenarios[0].path == "b1"
    assert work.next_new({"1": 2}).scenarios[0].path == "c"  # release 1 has all the workers it may have
    assert work.next_new({"1": 2, "2": 1}) is None
    share = eng.Share("1 worker 2/2", "1", keys={"B"})
    assert work.next_for(share).scenarios[0].path == "a2"  # nothing of B left: the next one
    assert work.next_for(share) is None and work.pieces == []
    work = eng.Work([_piece("1", "a1", "A"), _piece("1", "b1", "B"), _piece("1", "b2", "B")], {"1": 2})
    assert work.next_for(eng.Share("w", "1", keys={"B"})).scenarios[0].path == "b1"  # its proxies are up already
    assert [p.scenarios[0].path for p in work.drop("1")] == ["a1", "b2"] and work.pieces == []


def share_worker(share, version, scenarios, db_kind, db_url, wants_rows, wants_readings, out, config=None,
                 inbox=None):  # spawned
    from harness.execution.engine import no_run_result
    from harness.verdicts import Verdict

    if share.endswith("worker 2/2"):
        out.put(("result", share, no_run_result(scenarios[0], version, Verdict.UNSUPPORTED, "ran in worker two")))
        out.put(("failed", share, "RuntimeError: worker two broke"))
        return
    while scenarios:
        for scenario in scenarios:
            out.put(("result", share, no_run_result(scenario, version, Verdict.UNSUPPORTED, "ran in worker one")))
        out.put(("idle", share, None))
        scenarios = inbox.get()
    out.put(("done", share, None))


def test_a_split_release_reports_once_and_a_failed_worker_errors_only_what_it_was_given(monkeypatch):
    class Releases(Lines):
        def __init__(self, lines):
            super().__init__(lines)
            self.released = []

        def after_release(self, version, results, seconds):
            self.released.append((version, sorted(r.scenario.name for r in results)))

    other = load(ROOT / "scenarios" / "deployments" / "key_budget_multiplied_by_replicas.yaml")
    cells, lines, seconds = [], [], {}
    hooks = Releases(lines)
    plan = Plan.of([ORG, KEY, other], ["1.85.0"])
    monkeypatch.setattr(eng, "MIN_SHARE", 1)
    # two pieces per worker: worker two runs one cell of its two, then fails
    slow = lambda s, v: 9.0 if s is other else 1.0  # noqa: E731
    work = eng.release_work(plan, ["1.85.0"], 2, weight=slow)
    work.pieces = [eng.Piece("1.85.0", [other], "x"), eng.Piece("1.85.0", [ORG, KEY], "y")]
    eng._run_in_workers(Engine(hooks), plan, work, 2, cells.append, seconds, worker=share_worker)
    by_name = {r.scenario.name: r for r in cells}
    assert len(cells) == 3 and len(by_name) == 3
    assert by_name[other.name].reason == "ran in worker one"
    assert by_name[ORG.name].reason == "ran in worker two"
    assert by_name[KEY.name].verdict == Verdict.ERROR
    assert "litellm 1.85.0 worker 2/2 failed: RuntimeError: worker two broke" in by_name[KEY.name].reason
    assert hooks.released == [("1.85.0", sorted(by_name))] and set(seconds) == {"1.85.0"}
    assert any("1 release in 2 worker processes (one release in 2 pieces by deployment" in line for line in lines)
    assert any(line.startswith("[1.85.0] 1.85.0 worker 1/2: 1 scenarios (1 deployment) in ") for line in lines)


def test_a_free_worker_takes_the_pieces_a_busy_one_has_not_reached(monkeypatch):
    cells, lines, seconds = [], [], {}
    pieces = [eng.Piece("1.85.0", [s], s.name) for s in (ORG, KEY)]
    extra = load(ROOT / "scenarios" / "deployments" / "key_budget_multiplied_by_replicas.yaml")
    work = eng.Work([*pieces, eng.Piece("1.85.0", [extra], "z")], {"1.85.0": 2})
    plan = Plan.of([ORG, KEY, extra], ["1.85.0"])
    eng._run_in_workers(Engine(Lines(lines)), plan, work, 2, cells.append, seconds, worker=slow_worker)
    ran = {r.scenario.name: r.reason for r in cells}
    # worker 1 sleeps on its first piece; worker 2 takes both others meanwhile
    assert ran == {ORG.name: "1.85.0 worker 1/2", KEY.name: "1.85.0 worker 2/2", extra.name: "1.85.0 worker 2/2"}


def slow_worker(share, version, scenarios, db_kind, db_url, wants_rows, wants_readings, out, config=None,
                inbox=None):  # spawned
    import time

    from harness.execution.engine import no_run_result
    from harness.verdicts import Verdict

    while scenarios:
        if share.endswith("1/2"):
            time.sleep(3)
        for scenario in scenarios:
            out.put(("result", share, no_run_result(scenario, version, Verdict.UNSUPPORTED, share)))
        out.put(("idle", share, None))
        scenarios = inbox.get()
    out.put(("done", share, None))


def test_timings_remember_seconds_estimate_the_unknown_and_survive_a_bad_file(tmp_path):
    from harness.execution.results import StepResult
    from harness.execution.timings import DEPLOYMENT_S, ONE_PROXY_S, Timings

    other = load(ROOT / "scenarios" / "deployments" / "key_budget_multiplied_by_replicas.yaml")
    path = tmp_path / "timings.json"
    timings = Timings(path)
    assert timings.weight(ORG) == ONE_PROXY_S and timings.weight(other) == DEPLOYMENT_S
    step = StepResult(index=0, line=1, source="- spend", description="spend")
    ran = ScenarioResult(scenario=ORG, version="1.85.0", verdict=Verdict.PASSED, reason="", steps=[step], seconds=3.25)
    broken = ScenarioResult(scenario=KEY, version="1.85.0", verdict=Verdict.ERROR, reason="x", steps=[step], seconds=9.0)
    timings.record([ran, broken])
    again = Timings(path)
    assert again.weight(ORG) == 3.25 and again.weight(KEY) == ONE_PROXY_S  # an error measured nothing
    other_run = Timings(path)  # another checkout's run writes meanwhile; both figures stay
    other_run.record([ScenarioResult(scenario=KEY, version="1.108.7", verdict=Verdict.PASSED, reason="", steps=[step],
                                     seconds=20.0)])
    again.record([ScenarioResult(scenario=ORG, version="1.108.7", verdict=Verdict.PASSED, reason="", steps=[step],
                                 seconds=1.5)])
    last = Timings(path)
    assert last.weight(ORG, "1.85.0") == 3.25 and last.weight(ORG, "1.108.7") == 1.5 and last.weight(ORG) == 1.5
    assert last.weight(KEY, "1.108.7") == 20.0 and last.weight(KEY, "1.82.3") == 20.0  # any release's, else
    path.write_text("{not json")
    assert Timings(path).weight(ORG) == ONE_PROXY_S


def test_pieces_by_weight_put_the_heavy_deployments_first():
    scenarios = [_Fake(f"s{i}", "one") for i in range(6)] + [_Fake(f"h{i}", f"dep{i}") for i in range(4)]
    weight = lambda s: 10.0 if s.path.startswith("h") else 1.0  # noqa: E731
    pieces = matrix.deployment_pieces(scenarios, 2, lambda s: s.key, weight)
    assert [p[0].path for p in pieces] == ["h0", "h1", "h2", "h3", "s0"]  # the one-proxy group kept whole, last
