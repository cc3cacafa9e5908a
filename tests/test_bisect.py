"""Unit tests of harness.bisect: the search is a pure function over fake verdicts."""

from __future__ import annotations

import math

import pytest
from packaging.version import Version

from harness.reports.bisect import (
    FAILS,
    HOLDS,
    bisect_releases,
    candidates_between,
    describe,
    markdown,
    outcome_of,
)

# litellm's published finals from 1.82.3 to 1.85.0 (1.85.0 was uploaded BEFORE 1.84.10)
REAL = [
    "1.82.3", "1.82.4", "1.82.5", "1.82.6", "1.83.0", "1.83.1", "1.83.2", "1.83.3", "1.83.4", "1.83.5",
    "1.83.6", "1.83.7", "1.83.8", "1.83.9", "1.83.10", "1.83.11", "1.83.12", "1.83.13", "1.83.14",
    "1.84.0", "1.84.1", "1.84.2", "1.84.3", "1.84.4", "1.84.5", "1.84.6", "1.84.7", "1.84.8", "1.84.9",
    "1.84.10", "1.85.0",
]


class Fake:
    """verdict_of(version) from a rule; counts calls and refuses to run a release twice."""

    def __init__(self, rule, untestable: dict[str, str] | None = None):
        self.rule = rule
        self.untestable = untestable or {}
        self.calls: list[str] = []

    def __call__(self, version: str) -> str:
        assert version not in self.calls, f"{version} run twice"
        self.calls.append(version)
        if version in self.untestable:
            return self.untestable[version]
        return self.rule(Version(version))


def org_reset(v: Version) -> str:
    """org_budget_reset: affects <1.85.0, fixed in 1.85.0."""
    return "reproduced" if v < Version("1.85.0") else "passed"


def test_outcomes():
    assert outcome_of("passed") == HOLDS and outcome_of("unexpected pass") == HOLDS
    assert outcome_of("reproduced") == FAILS and outcome_of("regression") == FAILS
    for verdict in ("error", "unsupported", "uninstallable"):
        assert outcome_of(verdict) is None


def test_candidates_are_in_version_order_not_upload_order():
    published = [Version(v) for v in reversed(REAL)] + [Version("1.84.0rc1"), Version("1.90.0"), Version("1.80.0")]
    got = candidates_between(published, "1.82.3", "1.85.0")
    assert got == REAL  # 1.84.10 before 1.85.0; no pre-release; nothing outside
    assert candidates_between(published, "1.85.0", "1.82.3") == list(reversed(REAL))
    with pytest.raises(ValueError):
        candidates_between(published, "1.83.0", "1.83.0")


def test_candidates_keep_endpoints_even_when_not_published():
    assert candidates_between([Version("1.2.0")], "1.1.0rc1", "1.3.0") == ["1.1.0rc1", "1.2.0", "1.3.0"]


def test_the_org_reset_fix_is_found_in_binary_search_runs():
    fake = Fake(org_reset)
    result = bisect_releases(REAL, fake)
    assert (result.last_old, result.first_new) == ("1.84.10", "1.85.0")
    assert result.exact and result.kind == "fix"
    assert result.interior == 29 and result.probe_budget == 5
    assert result.runs == len(fake.calls) == 2 + 5
    assert fake.calls[:2] == ["1.82.3", "1.85.0"]  # the endpoints are confirmed first
    assert [p.role for p in result.probes[:2]] == ["endpoint", "endpoint"]
    text = "\n".join(describe(result))
    assert "1.84.10" in text and "1.85.0" in text and "7 runs" in text
    assert "| 7 |" in markdown(result)


def test_reverse_direction_reports_the_same_pair():
    # --good 1.85.0 --bad 1.82.3: the reference is the fixed release
    fake = Fake(org_reset)
    result = bisect_releases(list(reversed(REAL)), fake)
    assert (result.last_old, result.first_new) == ("1.85.0", "1.84.10")
    assert result.ordered_pair == ("1.84.10", "1.85.0")
    assert result.kind == "fix"  # named in version order, whichever end is the reference
    assert "in version order, the fix landed in 1.85.0 (1.84.10 is the release before it" in "\n".join(describe(result))
    assert result.runs <= 2 + result.probe_budget


def test_a_regression_holds_then_fails():
    cands = [f"2.0.{i}" for i in range(40)]
    fake = Fake(lambda v: "passed" if v < Version("2.0.17") else "regression")
    result = bisect_releases(cands, fake)
    assert (result.last_old, result.first_new) == ("2.0.16", "2.0.17")
    assert result.kind == "regression"
    assert result.runs <= 2 + math.ceil(math.log2(39)) == 2 + result.probe_budget


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 17, 31, 64])
def test_every_boundary_position_within_the_binary_search_budget(n):
    cands = [f"3.{i}.0" for i in range(n)]
    for k in range(1, n):  # first new release at index k
        fake = Fake(lambda v, k=k: "reproduced" if v < Version(f"3.{k}.0") else "passed")
        result = bisect_releases(cands, fake)
        assert (result.last_old, result.first_new) == (cands[k - 1], cands[k])
        assert result.runs <= 2 + math.ceil(math.log2(n - 1)) if n > 2 else result.runs == 2


def test_an_uninstallable_midpoint_is_skipped_for_a_neighbour():
    # the first probe of REAL is index 15 (1.83.11)
    fake = Fake(org_reset, untestable={"1.83.11": "uninstallable"})
    result = bisect_releases(REAL, fake)
    assert (result.last_old, result.first_new) == ("1.84.10", "1.85.0") and result.exact
    skipped = [p for p in result.probes if p.outcome is None]
    assert [p.version for p in skipped] == ["1.83.11"]
    neighbour = result.probes[result.probes.index(skipped[0]) + 1]
    assert neighbour.role == "neighbour" and neighbour.version == "1.83.12"
    assert "trying its neighbour" in neighbour.note
    assert result.runs <= 2 + result.probe_budget + 1  # one extra run per untestable release
    assert "untestable: 1.83.11" in "\n".join(describe(result))


def test_untestable_releases_next_to_the_boundary_leave_a_span():
    untestable = {v: "uninstallable" for v in ("1.84.8", "1.84.9", "1.84.10")}
    untestable["1.84.7"] = "unsupported"
    fake = Fake(org_reset, untestable=untestable)
    result = bisect_releases(REAL, fake)
    assert result.found and not result.exact
    assert (result.last_old, result.first_new) == ("1.84.6", "1.85.0")
    assert result.untested_between == ["1.84.7", "1.84.8", "1.84.9", "1.84.10"]
    assert "could not be tested" in "\n".join(describe(result))
    assert len(set(fake.calls)) == len(fake.calls)


def test_errors_are_skipped_like_uninstallable_releases():
    fake = Fake(org_reset, untestable={"1.83.11": "error", "1.83.12": "uninstallable"})
    result = bisect_releases(REAL, fake)
    assert (result.last_old, result.first_new) == ("1.84.10", "1.85.0")
    assert [p.version for p in result.probes if p.role == "neighbour"][:2] == ["1.83.12", "1.83.10"]


def test_same_outcome_at_both_ends_is_no_boundary():
    fake = Fake(lambda v: "passed")
    result = bisect_releases(REAL, fake)
    assert not result.found and "behave the same" in result.problem
    assert result.runs == 2
    assert describe(result)[0].startswith("no boundary")


def test_an_untestable_endpoint_is_no_boundary():
    fake = Fake(org_reset, untestable={"1.85.0": "uninstallable"})
    result = bisect_releases(REAL, fake)
    assert not result.found and "endpoint 1.85.0 gave no outcome (uninstallable)" in result.problem
    assert result.runs == 2


def test_adjacent_endpoints_need_no_probe():
    fake = Fake(org_reset)
    result = bisect_releases(["1.84.10", "1.85.0"], fake)
    assert result.exact and result.runs == 2 and result.probe_budget == 0


def test_on_probe_sees_every_run_in_order():
    seen = []
    fake = Fake(org_reset)
    result = bisect_releases(REAL, fake, on_probe=seen.append)
    assert seen == result.probes
    assert {p.side for p in seen[2:]} <= {"old", "new"}
