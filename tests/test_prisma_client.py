"""LiteLLM's own PrismaClient on a real PostgreSQL through the wasm engine bridge (litellm 1.82.3).

The scripts in tests/release_scripts/ run with the RELEASE environment's python (never this
one): they print one JSON object and these tests assert every value. Fixtures `release_1823`
(harness.releases.ReleaseEnv) and `database_1823` (a fresh harness.db.Database clone with
1.82.3's schema) come from the top-level conftest.py.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).resolve().parent / "release_scripts"
BRIDGE_BANNER = "prisma wasm query engine 5.22.0 (harness bridge"
BIG = 2**53 + 1
BIGGER = 2**62 + 7


def run_release_script(release, database, name: str, timeout: float = 300, **env_vars: str) -> tuple[dict[str, Any], str]:
    env = release.env()
    env["DATABASE_URL"] = database.url
    env.update(env_vars)
    proc = subprocess.run(
        [str(release.python), str(SCRIPTS / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(SCRIPTS),
    )
    assert proc.returncode == 0, f"{name} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"{name} printed nothing; stderr:\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1]), proc.stderr


def _int(value: int) -> Any:
    """How prisma_ops.py reports an integer (exact ones above 2^53 as {"int": "..."})."""
    return value if abs(value) <= 2**53 else {"int": str(value)}


META = {"nested": {"list": [1, 2.5, None, True, "x"], "big": 12345678901234}, "unicode": "é✓ \"quoted\"", "empty": {}}
WHEN = "2030-01-02T03:04:05.678000+00:00"

EXPECTED_OPS: dict[str, Any] = {
    "create_budget": {"budget_id": "ops-budget", "max_budget": 10.0},
    "create_user": {
        "user_id": "ops-user",
        "models": ["gpt-4o", "claude-3"],
        "metadata": META,
        "tpm_limit": _int(BIG),
        "rpm_limit": _int(BIGGER),
        "budget_reset_at": WHEN,
    },
    "find_unique": {
        "token": "ops-key-0",
        "spend": 1.5,
        "metadata": {"i": 0},
        "tpm_limit": _int(BIG),
        "models": ["gpt-4o"],
        "budget_id": "ops-budget",
    },
    "find_unique_missing": None,
    "find_first": "ops-key-2",
    "find_many_desc_take2": ["ops-key-2", "ops-key-1"],
    "find_many_in": ["ops-key-0", "ops-key-2"],
    "find_many_has": ["ops-key-0"],
    "find_bigint_exact": ["ops-key-0"],
    "find_bigint_neighbour": [],
    "find_datetime_eq": ["ops-user"],
    "roundtrip_user": {
        "metadata": META,
        "models": ["gpt-4o", "claude-3"],
        "tpm_limit": _int(BIG),
        "rpm_limit": _int(BIGGER),
        "tpm_limit_type": "int",
        "budget_reset_at": WHEN,
        "created_at_is_datetime": True,
    },
    "update": {"spend": 2.0, "metadata": {"replaced": [1, {"deep": None}]}, "models": ["a", "b"]},
    "update_missing": None,  # prisma-client-py returns None when the engine answers P2025
    "update_many_count": 3,
    "update_many_blocked": ["ops-key-0", "ops-key-1", "ops-key-2"],
    "upsert": [5.0, 6.0],
    "increment": 2.25,
    "concurrent_increment_total": 10.0,
    "bigint_update": {"tpm_limit": _int(BIG + 2), "rpm_limit": _int(BIGGER + 1)},
    "delete": "ops-key-upsert",
    "delete_missing": None,
    "delete_many_count": 0,
    "include": {"budget_id": "ops-budget", "max_budget": 10.0},
    "include_nested_args": ["ops-key-2", "ops-key-0"],
    "count": 3,
    "count_all": 3,
    "group_by": [
        {"budget_id": "ops-budget", "_sum": {"spend": 5.5}, "_count": {"_all": 2}},
        {"budget_id": None, "_sum": {"spend": 10.0}, "_count": {"_all": 1}},
    ],
    "query_raw": [
        {"token": "ops-key-0", "spend": 2.25, "tpm_limit": _int(BIG), "models": ["a", "b"],
         "metadata": {"replaced": [1, {"deep": None}]}, "blocked": True},
        {"token": "ops-key-1", "spend": 10.0, "tpm_limit": None, "models": [], "metadata": {"i": 1}, "blocked": True},
        {"token": "ops-key-2", "spend": 3.25, "tpm_limit": None, "models": [], "metadata": {"i": 2}, "blocked": True},
    ],
    "query_raw_unmapped_types": [{"names": ["a", "b"], "one": "x", "span": "1 day"}],
    "query_first": {"n": 3},
    "execute_raw": 2,
    "raw_error": "RawQueryError",
    "batch": {"ops-batch-a": 11.0, "ops-batch-b": 2.0},
    "batch_error": "UniqueViolationError",
    "batch_rolled_back": True,
    "tx_visible_inside": 2.0,
    "tx_visible_outside_before_commit": False,
    "tx_commit": 2.0,
    "tx_rollback_row_absent": True,
    "tx_rollback_update_undone": 2.25,
    "error_unique": "UniqueViolationError",
    "error_foreign_key": "ForeignKeyViolationError",
    "error_not_found": "RecordNotFoundError",
    "error_not_found_first": "RecordNotFoundError",
    "error_unique_in_tx": "UniqueViolationError",
}


def _strict(value: Any) -> Any:
    """Make 10 != 10.0 and 1 != True visible in comparisons (type-tagged copy)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, (bool, int, float)):
        return (type(value).__name__, value)
    return value


def test_prisma_operations_through_litellm_prisma_client(release_1823, database_1823, record_property):
    result, stderr = run_release_script(release_1823, database_1823, "prisma_ops.py")
    assert BRIDGE_BANNER in stderr, "the wasm bridge did not run (no banner on stderr)"
    timings = {k: v for k, v in result.items() if k.startswith("timing_")}
    for k, v in timings.items():
        record_property(k, v)
    print(f"\nprisma_ops timings: {timings}")
    got = {k: v for k, v in result.items() if not k.startswith("timing_")}
    assert sorted(got) == sorted(EXPECTED_OPS), "result keys differ"
    wrong = {k: {"expected": EXPECTED_OPS[k], "got": got[k]} for k in EXPECTED_OPS if _strict(got[k]) != _strict(EXPECTED_OPS[k])}
    assert not wrong, "mismatches:\n" + json.dumps(wrong, indent=1, sort_keys=True, ensure_ascii=False)


DURATIONS = {"key": "7d", "user": "1d", "team": "30d"}


def _on_calendar(duration: str, reset: dt.datetime, started: dt.datetime, zone: str = "UTC") -> None:
    """LiteLLM's calendar alignment, stated independently of the release, in the budget's time
    zone: 1d resets at the next local midnight, 7d on the next Monday, 30d on the first of the
    next month. Local dates, not spans: a day with a daylight-saving change has 23 or 25 hours."""
    tz = ZoneInfo(zone)
    local, begun = reset.astimezone(tz), started.astimezone(tz)
    assert reset > started and (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0), local
    days = (local.date() - begun.date()).days
    if duration == "1d":
        assert days == 1, local
    elif duration == "7d":
        assert local.weekday() == 0 and 1 <= days <= 7, local
    else:
        nxt = (begun.year + begun.month // 12, begun.month % 12 + 1)
        assert (local.year, local.month, local.day) == (*nxt, 1), local


def test_calendar_oracle_at_edges():
    """The independent oracle above, on calendar edges (no wall clock involved)."""
    utc = dt.timezone.utc
    _on_calendar("30d", dt.datetime(2027, 1, 1, tzinfo=utc), dt.datetime(2026, 12, 1, 19, 32, tzinfo=utc))
    _on_calendar("30d", dt.datetime(2027, 2, 1, tzinfo=utc), dt.datetime(2027, 1, 31, 23, 59, tzinfo=utc))
    _on_calendar("30d", dt.datetime(2027, 3, 1, tzinfo=utc), dt.datetime(2027, 2, 28, 23, 50, tzinfo=utc))
    _on_calendar("7d", dt.datetime(2027, 3, 8, tzinfo=utc), dt.datetime(2027, 3, 7, 23, 59, tzinfo=utc))  # a Sunday
    _on_calendar("1d", dt.datetime(2027, 3, 1, tzinfo=utc), dt.datetime(2027, 2, 28, 23, 50, tzinfo=utc))
    # New York springs forward on 14 March 2027: the next local midnight is 21.5 hours after 01:30 EST
    _on_calendar("1d", dt.datetime(2027, 3, 15, 4, tzinfo=utc), dt.datetime(2027, 3, 14, 6, 30, tzinfo=utc),
                 "America/New_York")
    _on_calendar("1d", dt.datetime(2027, 11, 8, 5, tzinfo=utc), dt.datetime(2027, 11, 7, 5, 30, tzinfo=utc),
                 "America/New_York")  # falls back: 23.5 hours
    for wrong in (("30d", dt.datetime(2027, 1, 31, tzinfo=utc), dt.datetime(2027, 1, 1, tzinfo=utc), "UTC"),
                  ("7d", dt.datetime(2027, 3, 7, tzinfo=utc), dt.datetime(2027, 3, 6, tzinfo=utc), "UTC"),
                  ("1d", dt.datetime(2027, 3, 15, tzinfo=utc), dt.datetime(2027, 3, 14, 6, 30, tzinfo=utc),
                   "America/New_York")):  # UTC midnight is not New York's
        with pytest.raises(AssertionError):
            _on_calendar(*wrong)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_reset_budget_job_resets_exactly_the_expired_rows(release_1823, database_1823, record_property, zone):
    """With `litellm_settings.timezone` at its default and at a zone with daylight saving (the
    calendar-edge step of .ci/run runs this on the days New York changes its clocks)."""
    result, stderr = run_release_script(release_1823, database_1823, "reset_budget_job.py", BUDGET_TIMEZONE=zone)
    assert BRIDGE_BANNER in stderr
    record_property("timing_reset_s", result["timing_reset_s"])
    print(f"\nResetBudgetJob.reset_budget() ran at {result['job_started_at']} ({zone}): {result['timing_reset_s']}s")
    assert result["errors_logged"] == []
    seeded, after = result["seeded"], result["after"]
    assert sorted(after) == sorted(seeded) == sorted(f"{k}-{s}" for k in DURATIONS for s in ("expired", "current"))
    started = dt.datetime.fromisoformat(result["job_started_at"])
    for kind, duration in DURATIONS.items():
        expired, current = after[f"{kind}-expired"], after[f"{kind}-current"]
        # the expired row: spend back to 0, budget_reset_at moved forward past the job's start
        assert expired["spend"] == 0.0 and isinstance(expired["spend"], float), (kind, expired)
        new_reset = dt.datetime.fromisoformat(expired["budget_reset_at"])
        old_reset = dt.datetime.fromisoformat(seeded[f"{kind}-expired"]["budget_reset_at"])
        assert new_reset > started > old_reset, (kind, expired)
        # where it moved to: the release's own rule at the job's run, and the calendar oracle
        assert expired["budget_reset_at"] in result["litellm_rule"][duration], (kind, expired, result["litellm_rule"])
        _on_calendar(duration, new_reset, started, zone)
        assert expired["budget_duration"] == duration
        # the current row: untouched
        assert current["spend"] == 7.5, (kind, current)
        assert current["budget_reset_at"] == seeded[f"{kind}-current"]["budget_reset_at"], (kind, current)
