"""`matrix --shard I/N` and `merge`: the split (properties, with Hypothesis), the checks of merge,
and its outputs against those of one unsharded run. The unit tests drive the real CLI and the real
report writers with synthetic cells (a fake `run_release`: this is pure harness logic); the slow
test at the end runs two shards and an unsharded matrix on a real proxy."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import cli
from harness.commands import matrix as matrix_command
from harness.execution import shards as shard
from harness.execution.engine import Engine
from harness.errors import HarnessError
from harness.execution.results import ScenarioResult, StepResult
from harness.scenario import load
from harness.execution.shards import CellKey, Shard, parse_shard, split

ROOT = Path(__file__).resolve().parent.parent
FILES = [f"scenarios/reset_job/{name}.yaml" for name in (
    "org_budget_reset", "key_budget_reset", "team_budget_reset", "default_end_user_budget_reset", "user_budget_reset")]
RELEASES = ["1.82.3", "1.84.10", "1.85.0"]


# -- parsing ---------------------------------------------------------------------------------


def test_parse_shard():
    assert parse_shard("2/4") == Shard(2, 4) and str(parse_shard(" 1 / 1 ")) == "1/1"


@pytest.mark.parametrize("text, message", [
    ("0/3", "I must be between 1 and N (3)"), ("4/3", "I must be between 1 and N (3)"),
    ("a/b", "expected I/N"), ("1/0", "N must be at least 1"), ("2", "expected I/N"), ("-1/3", "expected I/N"),
])
def test_bad_shard_is_one_line_and_exit_2(text, message, capsys, monkeypatch):
    with pytest.raises(HarnessError, match=re.escape(message)):
        parse_shard(text)
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    assert cli.main(["matrix", FILES[0], "--litellm", "1.85.0", f"--shard={text}"]) == cli.EXIT_BAD_INPUT
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and out.startswith("error: --shard") and message in out


# -- the split -------------------------------------------------------------------------------

versions = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 120), st.integers(0, 15)), min_size=0, max_size=8,
                    unique=True).map(lambda vs: [".".join(map(str, v)) for v in vs])
scenario_files = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["g1", "g2", "g3"])), max_size=8,
                          unique_by=lambda t: t[0])


def cells_of(releases, scenarios) -> list[CellKey]:
    return [CellKey(v, group, f"scenarios/{name}.yaml") for v in releases for name, group in scenarios]


@settings(max_examples=300, deadline=None)
@given(versions, scenario_files, st.integers(1, 12), st.randoms(use_true_random=False))
def test_split_is_disjoint_complete_balanced_and_order_independent(releases, scenarios, count, rnd):
    cells = cells_of(releases, scenarios)
    shards = split(cells, count)
    assert len(shards) == count
    flat = [c for s in shards for c in s]
    assert len(flat) == len(set(flat)) and set(flat) == set(cells)  # disjoint, complete
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1  # balanced to one cell
    shuffled = list(cells)
    rnd.shuffle(shuffled)
    assert split(shuffled + shuffled[:3], count) == shards  # argument order and repeats change nothing
    # a release is cut at most at the N-1 boundaries; each cut one release
    split_releases = [v for v in releases if sum(1 for s in shards if any(c.version == v for c in s)) > 1]
    assert len(split_releases) <= count - 1


@settings(max_examples=200, deadline=None)
@given(versions, scenario_files, st.integers(1, 8))
def test_releases_stay_whole_when_the_balance_allows_it(releases, scenarios, count):
    per = len(releases) // count
    if not scenarios or per == 0:
        return
    releases = releases[: per * count]  # a whole number of releases per shard
    shards = split(cells_of(releases, scenarios), count)
    for v in releases:
        assert sum(1 for s in shards if any(c.version == v for c in s)) == 1, v


def test_boundaries_prefer_releases_then_settings_groups():
    # 3 releases x 2 scenarios = 6 cells in 4 shards of 2, 2, 1, 1: two boundaries fall between
    # releases (one release must be cut); of the equally cheap splits, the larger shards come first
    cells = cells_of(["1.82.3", "1.84.10", "1.85.0"], [("a", "g1"), ("b", "g1")])
    assert [[c.version for c in s] for s in split(cells, 4)] == [["1.82.3", "1.82.3"], ["1.84.10", "1.84.10"], ["1.85.0"], ["1.85.0"]]
    # one release, a group of 2 and a group of 1, in 2 shards of 2 and 1: cut between the groups
    cells = cells_of(["1.85.0"], [("a", "g1"), ("b", "g2"), ("c", "g1")])
    assert [[c.path for c in s] for s in split(cells, 2)] == [["scenarios/a.yaml", "scenarios/c.yaml"],
                                                            ["scenarios/b.yaml"]]
    # ... also when that puts the larger shard last (a cut between groups beats the tie rule)
    cells = cells_of(["1.85.0"], [("a", "g1"), ("b", "g2"), ("c", "g2")])
    assert [[c.path for c in s] for s in split(cells, 2)] == [["scenarios/a.yaml"],
                                                            ["scenarios/b.yaml", "scenarios/c.yaml"]]


def test_more_shards_than_cells_leaves_some_empty():
    shards = split(cells_of(["1.85.0"], [("a", "g1")]), 3)
    assert [len(s) for s in shards] == [1, 0, 0]


def test_shard_cells_and_identity_of_real_scenarios(monkeypatch):
    monkeypatch.chdir(ROOT)
    scenarios = [load(f) for f in FILES]
    parts = [shard.shard_cells(scenarios, RELEASES, Shard(i, 4)) for i in range(1, 5)]
    assert set().union(*parts) == {(s.path, v) for s in scenarios for v in RELEASES}
    assert sum(map(len, parts)) == 15
    one = shard.identity(scenarios, RELEASES, "real time")
    assert one == shard.identity(scenarios[::-1], RELEASES[::-1], "real time") | {"scenarios": one["scenarios"]}
    assert one["releases"] == RELEASES and one["cells"] == 15
    assert shard.identity(scenarios, RELEASES[:2], "real time")["fingerprint"] != one["fingerprint"]
    assert shard.identity(scenarios[:4], RELEASES, "real time")["fingerprint"] != one["fingerprint"]
    assert shard.identity(scenarios, RELEASES, "at 2027-01-01")["fingerprint"] != one["fingerprint"]


# -- the CLI with synthetic cells --------------------------------------------------------------


@pytest.fixture()
def fake_matrix(monkeypatch, tmp_path, fake_pg_server):
    """`run(argv, verdicts)`: the real `matrix` command, each cell's verdict from ``verdicts``
    ((scenario name, release) -> verdict; default passed) instead of a proxy."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    monkeypatch.setattr(matrix_command, "check_versions", lambda versions: None)
    ran: list[tuple[str, str]] = []

    def run(argv, verdicts=None):
        def fake_run_release(engine, version, scenarios):
            results = []
            for s in scenarios:
                ran.append((s.path, version))
                verdict = (verdicts or {}).get((s.name, version), "passed")
                step = StepResult(0, 7, "- expect_request: {key: k1}", "expect_request",
                                  "passed" if verdict == "passed" else "failed", 0.25, f"{verdict} here", "accepted", "x")
                result = ScenarioResult(s, version, verdict, f"line 7: {verdict} (master key sk-harness-abcdef123456)",
                                        [step], 1.5, {"litellm": version}, "log line\n", ["pw-123456"])
                engine.hooks.after_scenario(result)
                results.append(result)
            return results

        monkeypatch.setattr(Engine, "run_release", fake_run_release)
        return cli.main(argv)

    run.ran = ran
    return run


def matrix_args(out, files=FILES, releases=RELEASES, shard_text=None):
    argv = ["matrix", *files]
    for v in releases:
        argv += ["--litellm", v]
    argv += ["--out", str(out)]
    return argv + (["--shard", shard_text] if shard_text else [])


def run_shards(fake_matrix, tmp_path, count, verdicts=None, files=FILES, releases=RELEASES, name="s"):
    codes = []
    for i in range(1, count + 1):
        codes.append(fake_matrix(matrix_args(tmp_path / f"{name}{i}", files, releases, f"{i}/{count}"), verdicts))
    return [str(tmp_path / f"{name}{i}" / "matrix.json") for i in range(1, count + 1)], codes


def comparable(doc):
    """A report without what differs between a run and a merge by nature (command, times)."""
    drop = {"command", "seconds", "release_seconds", "shard"}
    return {k: v for k, v in doc.items() if k not in drop}


VERDICTS = {("org_budget_reset", "1.82.3"): "reproduced", ("key_budget_reset", "1.84.10"): "regression",
            ("team_budget_reset", "1.85.0"): "uninstallable"}


def test_shards_run_disjoint_parts_and_merge_gives_the_single_runs_outputs(fake_matrix, tmp_path, capsys):
    assert fake_matrix(matrix_args(tmp_path / "whole"), VERDICTS) == 1
    whole_ran = list(fake_matrix.ran)
    fake_matrix.ran.clear()
    reports, codes = run_shards(fake_matrix, tmp_path, 3, VERDICTS)
    assert sorted(fake_matrix.ran) == sorted(whole_ran) and len(set(fake_matrix.ran)) == 15  # each cell once
    docs = [json.loads(Path(r).read_text()) for r in reports]
    assert [d["shard"] for d in docs] == [{"index": i, "count": 3, "cells": 5} for i in (1, 2, 3)]
    assert len({d["matrix"]["fingerprint"] for d in docs}) == 1 and docs[0]["matrix"]["releases"] == RELEASES
    assert codes == [d["exit_code"] for d in docs] and 1 in codes
    capsys.readouterr()

    code = cli.main(["merge", *reversed(reports), "--out", str(tmp_path / "merged")])
    printed = capsys.readouterr().out
    assert code == 1 and "15 cells from 3 shards" in printed and "regression" in printed
    merged = json.loads((tmp_path / "merged" / "matrix.json").read_text())
    whole = json.loads((tmp_path / "whole" / "matrix.json").read_text())
    assert comparable(merged) == comparable(whole)
    assert merged["exit_code"] == whole["exit_code"] == 1
    assert [m["shard"] for m in merged["shard"]["merged"]] == ["1/3", "2/3", "3/3"]
    assert "sk-harness-abcdef123456" not in json.dumps(merged)
    md_whole = (tmp_path / "whole" / "matrix.md").read_text().split("\n", 3)
    md_merged = (tmp_path / "merged" / "matrix.md").read_text().split("\n", 3)
    assert md_merged[0] == md_whole[0] and md_merged[3] == md_whole[3]  # all but the cells-in-seconds line
    junit_whole, junit_merged = (ET.fromstring((tmp_path / d / "junit.xml").read_bytes()) for d in ("whole", "merged"))
    for attr in ("tests", "failures", "errors", "skipped"):
        assert junit_merged.get(attr) == junit_whole.get(attr)
    assert ([(c.get("classname"), c.get("name")) for c in junit_merged.iter("testcase")]
            == [(c.get("classname"), c.get("name")) for c in junit_whole.iter("testcase")])
    # the merged report is itself a complete matrix: merging it alone gives it back
    assert cli.main(["merge", str(tmp_path / "merged")]) == 1


def test_argument_order_does_not_change_the_shards(fake_matrix, tmp_path):
    reports, _ = run_shards(fake_matrix, tmp_path, 2, name="a")
    other, _ = run_shards(fake_matrix, tmp_path, 2, files=FILES[::-1], releases=RELEASES[::-1], name="b")
    for mine, theirs in zip(reports, other):
        a, b = (json.loads(Path(p).read_text()) for p in (mine, theirs))
        assert {(c["file"], c["litellm"]) for c in a["cells"]} == {(c["file"], c["litellm"]) for c in b["cells"]}
        assert a["matrix"]["fingerprint"] == b["matrix"]["fingerprint"]
    assert cli.main(["merge", reports[0], other[1]]) == 0  # shards of one matrix, whoever ran them


def merge_error(reports, capsys) -> str:
    assert cli.main(["merge", *reports]) == cli.EXIT_BAD_INPUT
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and out.startswith("error: "), out
    return out


def test_missing_duplicate_and_foreign_shards_are_named(fake_matrix, tmp_path, capsys):
    reports, _ = run_shards(fake_matrix, tmp_path, 3)
    capsys.readouterr()
    assert "shard 2/3 missing" in merge_error([reports[0], reports[2]], capsys)
    assert "shards 2/3, 3/3 missing" in merge_error([reports[0]], capsys)
    assert f"shard 2/3 given twice: {reports[1]} and {reports[1]}" in merge_error([*reports, reports[1]], capsys)

    other_releases, _ = run_shards(fake_matrix, tmp_path, 3, releases=["1.82.3", "1.85.0"], name="r")
    capsys.readouterr()
    out = merge_error([reports[0], other_releases[1], reports[2]], capsys)
    assert f"report {other_releases[1]} is from another matrix: its releases (1.82.3, 1.85.0)" in out
    assert "pin the releases with --litellm" in out
    other_files, _ = run_shards(fake_matrix, tmp_path, 3, files=FILES[:4], name="f")
    capsys.readouterr()
    assert f"report {other_files[0]} is from another matrix (fingerprint" in merge_error(
        [other_files[0], reports[1], reports[2]], capsys)
    two, _ = run_shards(fake_matrix, tmp_path, 2, name="t")
    capsys.readouterr()
    assert "different shard counts" in merge_error([reports[0], two[1], reports[2]], capsys)


def test_cells_must_be_the_matrix_each_once(fake_matrix, tmp_path, capsys):
    reports, _ = run_shards(fake_matrix, tmp_path, 2)
    capsys.readouterr()
    docs = [json.loads(Path(r).read_text()) for r in reports]
    moved = docs[0]["cells"].pop()  # as if the shards had split differently: a cell twice, then none
    docs[1]["cells"].append(moved)
    docs[1]["cells"].append(moved)
    Path(reports[1]).write_text(json.dumps(docs[1]))
    Path(reports[0]).write_text(json.dumps(docs[0]))
    name = f"{Path(moved['file']).name} on {moved['litellm']}"
    assert f"cell {name} is in both {reports[1]} and {reports[1]}" in merge_error(reports, capsys)
    docs[1]["cells"].pop()
    Path(reports[1]).write_text(json.dumps(docs[1]))
    assert cli.main(["merge", *reports]) == 0
    capsys.readouterr()
    docs[1]["cells"].pop()
    Path(reports[1]).write_text(json.dumps(docs[1]))
    assert f"1 cells of the matrix are in no report ({name})" in merge_error(reports, capsys)
    docs[1]["cells"].append(dict(moved, litellm="9.9.9"))
    Path(reports[1]).write_text(json.dumps(docs[1]))
    assert "has a cell outside its matrix" in merge_error(reports, capsys)


def test_reports_that_are_not_shard_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"format": 1, "cells": []}))
    (tmp_path / "list.json").write_text("[]")
    assert "no such report" in merge_error([str(tmp_path / "nowhere.json")], capsys)
    assert "not JSON" in merge_error([str(tmp_path / "bad.json")], capsys)
    assert "not a matrix report" in merge_error([str(tmp_path / "list.json")], capsys)
    assert "without its shard and matrix identity" in merge_error([str(tmp_path / "other.json")], capsys)


def test_exit_codes_of_shards_and_merge(fake_matrix, tmp_path, capsys):
    # every cell of shard 1 uninstallable: the shard is not a failure by itself, the matrix passes
    files = FILES[:2]
    verdicts = {(n, "1.82.3"): "uninstallable" for n in ("org_budget_reset", "key_budget_reset")}
    reports, codes = run_shards(fake_matrix, tmp_path, 3, verdicts, files=files)
    assert codes == [0, 0, 0]
    assert cli.main(["merge", *reports]) == 0
    # nothing in the whole matrix earned a verdict: every shard exits 0, merge exits 1 as a single run would
    nothing = {(n, v): "unsupported" for n in ("org_budget_reset", "key_budget_reset") for v in RELEASES}
    reports, codes = run_shards(fake_matrix, tmp_path, 3, nothing, files=files, name="n")
    assert codes == [0, 0, 0]
    capsys.readouterr()
    assert cli.main(["merge", *reports, "--out", str(tmp_path / "m")]) == 1
    assert "no cell earned a verdict" in capsys.readouterr().out
    assert fake_matrix(matrix_args(tmp_path / "w", files), nothing) == 1
    # an empty shard (more shards than cells) is a report too
    reports, codes = run_shards(fake_matrix, tmp_path, 4, files=FILES[:1], releases=["1.85.0"], name="e")
    assert codes == [0, 0, 0, 0] and json.loads(Path(reports[3]).read_text())["cells"] == []
    assert cli.main(["merge", *reports]) == 0


def test_the_workflow_shards_then_merges():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "budget-matrix.yml").read_text())
    jobs = flow["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert jobs["shard"]["strategy"]["fail-fast"] is False
    run = next(s["run"] for s in jobs["shard"]["steps"] if s.get("name") == "Run the shard")
    assert "--shard" in run and "${{ matrix.shard }}/${{ strategy.job-total }}" in run and "--out" in run
    upload = next(s for s in jobs["shard"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert "${{ matrix.shard }}" in upload["with"]["name"] and upload["if"] == "always()"
    merge = jobs["merge"]
    assert merge["needs"] == "shard" and "!cancelled()" in merge["if"]  # after failing shards too
    steps = {s.get("name"): s for s in merge["steps"]}
    download = next(s for s in merge["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact"))
    assert download["with"]["pattern"].endswith("-*")
    assert "python -m harness merge" in steps["Merge the shards"]["run"]
    assert "GITHUB_STEP_SUMMARY" in steps["Job summary"]["run"]
    assert sorted(shards) == list(range(1, len(shards) + 1)) and len(shards) >= 2
    junit = [s for s in merge["steps"] if "junit" in json.dumps(s.get("with", {})).lower()]
    assert len(junit) == 1  # one JUnit file published, from the merge


# -- end to end, on a real proxy ---------------------------------------------------------------


@pytest.mark.slow
def test_two_shards_on_a_real_proxy_merge_to_the_unsharded_verdicts(tmp_path, monkeypatch, capsys):
    """key_budget_reset and team_budget_reset on 1.85.0: two shards (one cell each), then merge,
    against one unsharded run. Three embedded PostgreSQL servers and three proxy starts."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    files = ["scenarios/reset_job/key_budget_reset.yaml", "scenarios/reset_job/team_budget_reset.yaml"]
    base = ["matrix", *files, "--litellm", "1.85.0", "--db", "embedded"]
    whole_code = cli.main([*base, "--out", str(tmp_path / "whole")])
    codes = [cli.main([*base, "--shard", f"{i}/2", "--out", str(tmp_path / f"shard{i}")]) for i in (1, 2)]
    capsys.readouterr()
    shards = [json.loads((tmp_path / f"shard{i}" / "matrix.json").read_text()) for i in (1, 2)]
    assert [len(d["cells"]) for d in shards] == [1, 1]
    assert {c["file"] for d in shards for c in d["cells"]} == set(files)
    merge_code = cli.main(["merge", str(tmp_path / "shard2"), str(tmp_path / "shard1"), "--out", str(tmp_path / "merged")])
    printed = capsys.readouterr().out
    merged = json.loads((tmp_path / "merged" / "matrix.json").read_text())
    whole = json.loads((tmp_path / "whole" / "matrix.json").read_text())

    def verdicts(doc):
        return [(c["file"], c["litellm"], c["verdict"]) for c in doc["cells"]]

    assert verdicts(merged) == verdicts(whole), printed
    assert {v for _, _, v in verdicts(whole)} == {"passed"}, [c["reason"] for c in whole["cells"]]
    assert merge_code == whole_code == merged["exit_code"] == 0 and codes == [0, 0]
    assert merged["counts"] == whole["counts"] and merged["matrix"] == whole["matrix"]
    assert all(c["steps"] and c["environment"]["prisma_engine"] for c in merged["cells"])
    junit = ET.fromstring((tmp_path / "merged" / "junit.xml").read_bytes())
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("2", "0", "0")
