"""The pytest plugin on real proxies: a strict expected failure that passes fails the run, and a
regression shows the failing step, expected versus actual, the database row and the log tail."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

UNEXPECTED_PASS = """
name: claims_key_bug
affects: ">=1.85.0"
tags: [key]
steps:
  - create_key: {name: k1, max_budget: 10}
  - expect_request: {key: k1, outcome: accepted}
"""

REGRESSION = """
name: wrong_spend
tags: [key]
steps:
  - create_key: {name: k1}
  - spend: {key: k1, requests: 2}
  - flush_spend
  - expect_state: {entity: k1, spend: 0.5, source: db}
"""


def test_unexpected_pass_and_regression_fail_the_run_with_details(pytester: pytest.Pytester) -> None:
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "claims_key_bug.yaml").write_text(UNEXPECTED_PASS)
    (scenarios / "wrong_spend.yaml").write_text(REGRESSION)
    result = pytester.runpytest_subprocess("scenarios", "--litellm-version", "1.85.0", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # strict xfail: the pass is a failure that says the bug did not reproduce
    assert "XPASS(strict)" in out and "did not reproduce" in out
    # the regression: verdict, the step's source line, expected/actual, the row, the log tail
    assert "wrong_spend on litellm 1.85.0: REGRESSION" in out
    assert "wrong_spend.yaml:8: - expect_state: {entity: k1, spend: 0.5, source: db}" in out
    assert "expected: 0.5" in out and "actual:   0.1" in out
    assert "database row of k1:" in out and '"key_alias": "k1"' in out
    assert "proxy log (last" in out
    assert "sk-harness-" not in out  # the master key never shows


def test_selection_by_tag_and_name_works(pytester: pytest.Pytester) -> None:
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "claims_key_bug.yaml").write_text(UNEXPECTED_PASS)
    (scenarios / "wrong_spend.yaml").write_text(REGRESSION.replace("tags: [key]", "tags: [spend]"))
    result = pytester.runpytest_subprocess("scenarios", "--litellm-version", "1.85.0", "--litellm-version", "1.82.3",
                                           "--collect-only", "-q", "-m", "spend")
    out = result.stdout.str()
    assert "wrong_spend[1.85.0]" in out and "wrong_spend[1.82.3]" in out and "claims_key_bug" not in out
    result = pytester.runpytest_subprocess("scenarios", "--litellm-version", "1.85.0", "--collect-only", "-q", "-k", "claims")
    assert "claims_key_bug[1.85.0]" in result.stdout.str() and "wrong_spend" not in result.stdout.str()


def test_invalid_scenario_is_a_collection_error_with_file_and_line(pytester: pytest.Pytester) -> None:
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "bad.yaml").write_text("name: bad\nsteps:\n  - create_key: {name: k1, colour: red}\n")
    result = pytester.runpytest_subprocess("scenarios", "--collect-only")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*bad.yaml:3: unknown key `colour`; allowed:*"])


def test_a_long_scenario_is_skipped_saying_why_unless_asked_for(pytester: pytest.Pytester) -> None:
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "slow_one.yaml").write_text(REGRESSION.replace("tags: [key]", "tags: [key, long]"))
    result = pytester.runpytest_subprocess("scenarios", "--litellm-version", "1.85.0", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*tagged `long` (minutes per release): run with --long-scenarios*"])
    # asked for: not skipped (--setup-only stops before the proxy; a skip mark would still show)
    result = pytester.runpytest_subprocess("scenarios", "--litellm-version", "1.85.0", "-p", "no:cacheprovider",
                                           "--long-scenarios", "--setup-only", "-rs")
    assert "skipped" not in result.stdout.str().splitlines()[-1] and "tagged `long`" not in result.stdout.str()
