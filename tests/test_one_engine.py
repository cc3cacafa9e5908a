"""One rule for each outcome: the same cell gets the same verdict from run, matrix, check, bisect
and the pytest plugin, because they all run cells through `harness.execution.engine.Engine`.

The releases are fakes (no environment is built, no proxy starts): what each release does is
decided by the table below, and the verdict comes from the real `verdict_for` and the real
engine (install failures, secrets, hooks).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli, pytest_plugin
from harness.commands import bisect as bisect_command
from harness.commands import check as check_command
from harness.commands import matrix as matrix_command
from harness.commands import run as run_command
from harness.errors import HarnessError, ReleaseUnavailable
from harness.execution import engine as engine_module
from harness.execution.results import ScenarioResult, StepResult, verdict_for
from harness.scenario import load
from harness.verdicts import StepStatus, Verdict

ROOT = Path(__file__).resolve().parent.parent
ORG_FILE = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"  # affects <1.85.0

#: release -> what happens there
BEHAVIOUR = {
    "1.84.10": "fails",  # an expectation fails inside `affects`: reproduced
    "1.85.0": "holds",  # every step passes outside `affects`: passed
    "1.86.0": "fails",  # outside `affects`: regression
    "1.90.0": "uninstallable",
    "1.91.0": "index down",
}
EXPECTED = {"1.84.10": Verdict.REPRODUCED, "1.85.0": Verdict.PASSED, "1.86.0": Verdict.REGRESSION,
            "1.90.0": Verdict.UNINSTALLABLE, "1.91.0": Verdict.ERROR}


class FakeSession:
    def __init__(self, version, server, progress=None, **_kwargs):
        self.version = version

    def run(self, scenario, on_step=None, readings=False):
        status = StepStatus.FAILED if BEHAVIOUR[self.version] == "fails" else StepStatus.PASSED
        step = StepResult(0, 29, "- expect_request: {key: k1, outcome: accepted}", "expect_request", status, 0.1,
                          "rejected" if status == StepStatus.FAILED else "")
        if on_step:
            on_step(step)
        verdict, reason = verdict_for(scenario, self.version, [step], None)
        return ScenarioResult(scenario, self.version, verdict, reason, [step], 0.5, {"litellm": self.version})

    def rows_after(self, scenario):
        return {}

    def close(self):
        pass


def fake_ensure_release(version, progress=None):
    if BEHAVIOUR[version] == "uninstallable":
        raise ReleaseUnavailable(f"litellm {version} cannot be installed: no litellm-enterprise")
    if BEHAVIOUR[version] == "index down":
        raise HarnessError("cannot reach the package index: ConnectionError")


@pytest.fixture()
def fake_releases(monkeypatch, fake_pg_server):
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)  # keep pytest's own handlers
    monkeypatch.setattr("harness.releases.ensure_release", fake_ensure_release)
    monkeypatch.setattr(engine_module, "ReleaseSession", FakeSession)
    for module in (run_command, matrix_command, check_command, bisect_command):
        monkeypatch.setattr(module, "check_versions", lambda versions: None)


def _releases() -> list[str]:
    args = []
    for version in BEHAVIOUR:
        args += ["--litellm", version]
    return args


def test_run_and_matrix_give_every_cell_the_same_verdict(fake_releases, tmp_path):
    cli.main(["run", str(ORG_FILE), *_releases(), "--report-dir", str(tmp_path / "run")])
    by_run = {json.loads(p.read_text())["litellm"]: json.loads(p.read_text())["verdict"]
              for p in (tmp_path / "run").glob("*.json")}
    cli.main(["matrix", str(ORG_FILE), *_releases(), "--out", str(tmp_path / "matrix")])
    by_matrix = {c["litellm"]: c["verdict"] for c in json.loads((tmp_path / "matrix" / "matrix.json").read_text())["cells"]}
    assert by_run == by_matrix == {v: str(e) for v, e in EXPECTED.items()}


@pytest.mark.parametrize("version", [v for v in BEHAVIOUR if v != "1.90.0"])  # uninstallable: check refuses it
def test_check_reports_the_status_of_the_same_verdict(fake_releases, tmp_path, version):
    cli.main(["check", "--litellm", version, "--catalogue", str(ORG_FILE), "--out", str(tmp_path), "--no-fail"])
    bug, = json.loads((tmp_path / "check.json").read_text())["bugs"]
    assert bug["status"] == EXPECTED[version].check_status


def test_bisect_probes_get_the_same_verdicts(fake_releases, monkeypatch, tmp_path):
    from packaging.version import Version

    monkeypatch.setattr("harness.releases.index.published_versions", lambda *a, **k: [Version("1.84.10"), Version("1.85.0")])
    assert cli.main(["bisect", str(ORG_FILE), "--good", "1.85.0", "--bad", "1.84.10", "--out", str(tmp_path)]) == 0
    probes = {p["version"]: p["verdict"] for p in json.loads((tmp_path / "bisect.json").read_text())["probes"]}
    assert probes == {"1.84.10": EXPECTED["1.84.10"], "1.85.0": EXPECTED["1.85.0"]}


class _Config:
    """What the plugin's engine reads of pytest's config."""

    def __init__(self):
        self.pluginmanager = type("PM", (), {"get_plugin": staticmethod(lambda name: None)})()

    def getoption(self, name):
        return 0 if name == "verbose" else None


def test_the_pytest_plugin_gets_the_same_verdicts(fake_releases):
    engine = pytest_plugin._Engine(_Config())
    scenario = load(ORG_FILE)
    try:
        assert {v: engine.cell(scenario, v).verdict for v in BEHAVIOUR} == EXPECTED
    finally:
        engine.close()
