"""`check` end to end on real proxies and a real PostgreSQL, restricted to the seed scenario
(upstream #25495): present on 1.84.10, absent on 1.85.0, and fixed by that upgrade.

Cost with warm release caches: ~70 s on 2 busy cores (three release runs, one proxy each, -j 1).
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from harness import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEED = "scenarios/reset_job/org_budget_reset.yaml"
ISSUE = "https://github.com/BerriAI/litellm/issues/25495"


def _check(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["check", "--catalogue", SEED, *argv])
    return code, capsys.readouterr().out


def test_check_finds_the_seed_bug_on_1_84_10_and_not_on_1_85_0(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)  # keep pytest's own handlers

    code, printed = _check(["--litellm", "1.84.10", "--out", str(tmp_path / "old")], capsys)
    assert code == 1, printed  # a known bug is present
    doc = json.loads((tmp_path / "old" / "check.json").read_text())
    bug, = doc["bugs"]
    assert (bug["issue"], bug["status"], bug["scenario"]) == (ISSUE, "present", "org_budget_reset"), bug
    assert "Organization=" in bug["reason"] and bug["affects_disagrees"] is None
    assert doc["environment"]["1.84.10"]["prisma_engine"] and doc["exit_code"] == 1
    assert "| [#25495](" in (tmp_path / "old" / "check.md").read_text()

    code, printed = _check(["--litellm", "1.85.0", "--from", "1.84.10", "--out", str(tmp_path / "new")], capsys)
    assert code == 0, printed
    doc = json.loads((tmp_path / "new" / "check.json").read_text())
    bug, = doc["bugs"]
    assert (bug["status"], bug["from_status"], bug["change"]) == ("absent", "present", "fixed"), bug
    assert doc["fixed"] == [ISSUE] and doc["introduced"] == []
    assert "Fixed by the upgrade: [#25495]" in (tmp_path / "new" / "check.md").read_text()
    assert multiprocessing.active_children() == []
