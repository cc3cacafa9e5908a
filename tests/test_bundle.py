"""Bug-report bundles: contents, and that no secret the run knew survives in any file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.reports import bundle as bundle_mod
from harness.reports.bundle import scan_for_secrets, write_bundle
from harness.errors import HarnessError
from harness.execution.results import ScenarioResult, StepResult
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent

MASTER = "sk-harness-Zq9vJt3mWm0a8s7d6f5g4h3j2k1l0p9o"
CONTROL = "q8Vb2nM4xZ7cL1kJ9hG3fD5sA0pO6iU"  # control tokens are not sk-... shaped
DB_PASSWORD = "61eb4d17aab816c0946db06a1dee66cc"
VIRTUAL = "sk-7Hh2Kk9Ll0Zz1Xx2Cc3Vv4Bb"  # a virtual key the run never listed as a secret
SECRETS = [MASTER, CONTROL, DB_PASSWORD]


def leaky_result(tmp_path: Path) -> ScenarioResult:
    # the scenario file itself carries a key in a comment (people paste them)
    text = (ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml").read_text()
    path = tmp_path / "org_budget_reset.yaml"
    path.write_text(f"# tried with {VIRTUAL} and master {MASTER}\n" + text)
    scenario = load(path)
    url = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:5432/lh_c_run"
    steps = [
        StepResult(0, 14, "- create_organization: {name: acme}", "create_organization", "passed", 0.061,
                   f"created through /organization/new as {MASTER}"),
        StepResult(1, 28, "- expect_request: {key: k1, outcome: accepted}", "expect_request", "failed", 0.025,
                   f"rejected for key {VIRTUAL}: Budget has been exceeded! Organization=o1",
                   expected="accepted", actual=f"rejected ({CONTROL})",
                   rows={"acme": {"spend": 0.6, "note": f"url {url}"}}),
    ]
    return ScenarioResult(
        scenario=scenario, version="1.82.3", verdict="reproduced",
        reason=f"line 28: rejected for {VIRTUAL} (DATABASE_URL={url})", steps=steps, seconds=9.9,
        environment={"litellm": "1.82.3", "postgres": "embedded 16.14", "prisma": "0.11.0",
                     "litellm_proxy_extras": "0.4.61", "prisma_engine": "prisma wasm query engine 5.22.0",
                     "database_url": url},
        log_tail="\n".join([
            f"LITELLM_MASTER_KEY={MASTER}",
            f"X-Harness-Token: {CONTROL}",
            f"Authorization: Bearer {VIRTUAL}",
            f"prisma: cannot connect to {url}",
            f"password={DB_PASSWORD}",
        ]),
        secrets=[MASTER, CONTROL, DB_PASSWORD],
    )


def all_text(root: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in root.rglob("*") if p.is_file()}


def test_bundle_holds_what_a_bug_report_needs(tmp_path):
    result = leaky_result(tmp_path)
    result.database_rows = {"LiteLLM_OrganizationTable": [{"organization_id": "o1", "spend": 0.6}],
                            "LiteLLM_BudgetTable": [{"budget_reset_at": "2026-12-01T00:00:00"}]}
    b = write_bundle(tmp_path / "bundle", [result], command="python -m harness run x --litellm 1.82.3")
    names = sorted(str(p.relative_to(b.path)) for p in b.files)
    assert names == ["README.md", "bundle.json", "logs/org_budget_reset@1.82.3.log", "scenarios/org_budget_reset.yaml"]
    readme = (b.path / "README.md").read_text()
    for needle in ("python -m harness run x --litellm 1.82.3", "prisma: 0.11.0", "litellm_proxy_extras: 0.4.61",
                   "prisma wasm query engine", "postgres: embedded 16.14", "| 28 | `expect_request: {key: k1, outcome: accepted}` | failed | 0.025 |",
                   "Database rows after the scenario", "LiteLLM_BudgetTable", "Proxy log tail", "python:"):
        assert needle in readme, needle
    doc = json.loads((b.path / "bundle.json").read_text())
    cell = doc["cells"][0]
    assert cell["verdict"] == "reproduced" and cell["steps"][1]["seconds"] == 0.025
    assert cell["database_rows"]["LiteLLM_OrganizationTable"][0]["spend"] == 0.6
    assert cell["environment"]["prisma"] == "0.11.0"
    scenario_copy = (b.path / "scenarios" / "org_budget_reset.yaml").read_text()
    assert "create_organization: {name: acme, max_budget: 0.5, budget_duration: 1d}" in scenario_copy


def test_no_secret_survives_in_any_bundle_file(tmp_path):
    b = write_bundle(tmp_path / "bundle", [leaky_result(tmp_path)])
    files = all_text(b.path)
    assert len(files) == 4
    for path, text in files.items():
        for secret in SECRETS + [VIRTUAL]:
            assert secret not in text, f"{path.name} holds a secret"
        assert not re.search(r"\bsk-(?!\[REDACTED\])[A-Za-z0-9_\-]{6,}", text), path.name
        assert not re.search(r"postgres(?:ql)?://[^:/@\s]+:(?!\[REDACTED\]@)[^@\s]+@", text), path.name
    assert scan_for_secrets(list(files), SECRETS) == []
    log = (b.path / "logs" / "org_budget_reset@1.82.3.log").read_text()
    assert "LITELLM_MASTER_KEY=[REDACTED]" in log and "Bearer sk-[REDACTED]" in log
    assert "postgresql://postgres:[REDACTED]@127.0.0.1" in log


def test_extra_secrets_are_redacted_too(tmp_path):
    result = leaky_result(tmp_path)
    result.log_tail += "\nlicence: LIC-123456789-ABCDEF"
    b = write_bundle(tmp_path / "bundle", [result], extra_secrets=["LIC-123456789-ABCDEF"])
    assert all("LIC-123456789-ABCDEF" not in t for t in all_text(b.path).values())


def test_a_leak_refuses_the_bundle_and_removes_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "redact", lambda text, secrets=(): text)  # a broken redactor
    out = tmp_path / "bundle"
    with pytest.raises(HarnessError, match="still held a secret"):
        write_bundle(out, [leaky_result(tmp_path)])
    left = all_text(out)
    for text in left.values():
        assert MASTER not in text and CONTROL not in text
    # the error names files and kinds of leak, never the secret
    try:
        write_bundle(out, [leaky_result(tmp_path)])
    except HarnessError as exc:
        assert MASTER not in str(exc) and CONTROL not in str(exc)


def test_nothing_to_bundle(tmp_path):
    with pytest.raises(HarnessError, match="nothing to bundle"):
        write_bundle(tmp_path / "b", [])
