"""The CLI's `run` on real proxies: a proxy that cannot start gives an `error` verdict with its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BROKEN = """
name: broken_proxy
proxy:
  litellm_settings: {callbacks: ["no_such_module.handler"]}
steps:
  - create_key: {name: k1}
"""


@pytest.mark.slow
def test_proxy_start_failure_is_an_error_verdict_with_the_proxy_log(tmp_path: Path) -> None:
    scenario = tmp_path / "broken_proxy.yaml"
    scenario.write_text(BROKEN)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--litellm", "1.85.0"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR broken_proxy on litellm 1.85.0" in proc.stdout
    assert "proxy exited with code" in proc.stdout and "during start-up; last log lines:" in proc.stdout
    assert "Could not import handler from no_such_module" in proc.stdout


@pytest.mark.slow
def test_at_moves_now_and_the_report_says_so(tmp_path: Path) -> None:
    """`--at` on a calendar edge (28 February 23:50, non-leap): the freeze lands there, the
    reset after `advance_clock: 1d2h` (2 March 01:50) is the next midnight, 3 March."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "scenarios/reset_job/key_budget_reset.yaml", "--litellm", "1.85.0",
         "--at", "2027-02-28T23:50:00Z", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED key_budget_reset on litellm 1.85.0 at 2027-02-28T23:50:00+00:00" in proc.stdout
    report = json.loads((tmp_path / "key_budget_reset-1.85.0.json").read_text())
    assert report["environment"]["at"] == "2027-02-28T23:50:00+00:00"
    messages = {s["source"]: s["message"] for s in report["steps"]}
    assert messages["- freeze_clock: now"] == "clock frozen at 2027-02-28T23:50:00+00:00 (now = --at)"
    last_state = [s["message"] for s in report["steps"] if s["source"].startswith("- expect_state")][-1]
    assert "budget_reset_at=2027-03-03T00:00:00+00:00" in last_state, last_state


@pytest.mark.slow
def test_end_user_reset_minutes_before_tokyo_midnight(tmp_path: Path) -> None:
    """Five minutes before the reset time, an end user's in-memory spend counter (10 minutes from
    its first write) outlives the reset. #24675's scenario asks for its request past that life, so
    it holds then too (with a 1s margin it failed on 1.85.0 from 14:50 to 14:59 UTC, Tokyo's last
    10 minutes of the day); #39726's scenario, the counter left in place, reproduces there."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "scenarios/reset_job/default_end_user_budget_reset.yaml",
         "scenarios/reset_job/end_user_reset_stale_counter.yaml", "--litellm", "1.85.0",
         "--at", "2026-12-03T14:55:00Z", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED default_end_user_budget_reset on litellm 1.85.0 at 2026-12-03T14:55:00+00:00" in proc.stdout
    assert "REPRODUCED end_user_reset_stale_counter on litellm 1.85.0" in proc.stdout
    assert "counter spend:end_user:customer-1=0.1" in proc.stdout


OPERATOR_CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-prod, api_key: azure-secret-0123456789, api_base: https://corp.example}
router_settings: {routing_strategy: simple-shuffle}
litellm_settings: {drop_params: true}
general_settings: {master_key: sk-operator-master-0123456789, user_api_key_cache_ttl: 60}
"""


@pytest.mark.slow
def test_proxy_config_keeps_the_operators_settings_states_replacements_and_leaks_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "ops.yaml"
    config.write_text(OPERATOR_CONFIG)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "scenarios/reset_job/key_budget_reset.yaml", "--litellm", "1.85.0",
         "--proxy-config", str(config), "--report-dir", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report_text = (tmp_path / "r" / "key_budget_reset-1.85.0.json").read_text()
    notes = json.loads(report_text)["environment"]["proxy_config"]
    assert "model gpt-4o (azure/gpt-4o-prod): provider replaced by the harness's spend model's" in notes
    assert "general_settings.master_key: the harness's own value is used" in notes
    for secret in ("azure-secret-0123456789", "sk-operator-master-0123456789"):
        assert secret not in proc.stdout + proc.stderr and secret not in report_text
