"""Run LiteLLM's ResetBudgetJob once against seeded rows, with a RELEASE environment's python.

Usage: DATABASE_URL=postgresql://... [BUDGET_TIMEZONE=Area/City] <release python> reset_budget_job.py
Seeds one key, one user and one team whose budget_reset_at has passed (spend > 0, with a
budget_duration) and one of each whose budget_reset_at is in the future, runs
`ResetBudgetJob(proxy_logging_obj, prisma_client).reset_budget()`, and prints one JSON object:
the seeded values, the rows after the job, the wall-clock window of the job, and any ERROR
records LiteLLM logged (the job swallows its own exceptions). The test decides pass/fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import sys
import time
from typing import Any

SPEND = 7.5
TIMEZONE = os.environ.get("BUDGET_TIMEZONE", "UTC")


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage()[:500])


async def run() -> dict[str, Any]:
    import litellm
    from litellm._logging import verbose_proxy_logger
    from litellm.caching.caching import DualCache
    from litellm.proxy.common_utils.reset_budget_job import ResetBudgetJob
    from litellm.proxy.utils import PrismaClient, ProxyLogging

    errors = _Collect()
    verbose_proxy_logger.addHandler(errors)
    # what `litellm_settings: {timezone: ...}` does at proxy start-up
    litellm.timezone = TIMEZONE

    proxy_logging_obj = ProxyLogging(user_api_key_cache=DualCache())
    prisma_client = PrismaClient(database_url=os.environ["DATABASE_URL"], proxy_logging_obj=proxy_logging_obj)
    await prisma_client.connect()
    db = prisma_client.db
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    past = now - dt.timedelta(hours=1)
    future = now + dt.timedelta(days=10)
    seeded: dict[str, dict[str, Any]] = {}
    try:
        for state, reset_at in (("expired", past), ("current", future)):
            await db.litellm_teamtable.create(
                data={"team_id": f"team-{state}", "spend": SPEND, "max_budget": 100.0,
                      "budget_duration": "30d", "budget_reset_at": reset_at}
            )
            await db.litellm_usertable.create(
                data={"user_id": f"user-{state}", "spend": SPEND, "max_budget": 100.0,
                      "budget_duration": "1d", "budget_reset_at": reset_at}
            )
            await db.litellm_verificationtoken.create(
                data={"token": f"key-{state}", "spend": SPEND, "max_budget": 100.0, "user_id": f"user-{state}",
                      "team_id": f"team-{state}", "budget_duration": "7d", "budget_reset_at": reset_at}
            )
            for kind in ("team", "user", "key"):
                seeded[f"{kind}-{state}"] = {"spend": SPEND, "budget_reset_at": _iso(reset_at)}

        started = dt.datetime.now(dt.timezone.utc)
        t0 = time.perf_counter()
        await ResetBudgetJob(proxy_logging_obj, prisma_client).reset_budget()
        elapsed = time.perf_counter() - t0
        finished = dt.datetime.now(dt.timezone.utc)
        # LiteLLM's own calendar rule for this release, at both ends of the job's run: the
        # new budget_reset_at must be one of these (the test never uses the wall clock itself)
        rule = {
            duration: sorted({_iso(_next_reset(duration, moment)) for moment in (started, finished)})
            for duration in ("1d", "7d", "30d")
        }
        await asyncio.sleep(0.2)  # let the job's fire-and-forget logging tasks finish

        def row(obj: Any) -> dict[str, Any]:
            return {"spend": obj.spend, "budget_reset_at": _iso(obj.budget_reset_at),
                    "budget_duration": obj.budget_duration}

        after: dict[str, dict[str, Any]] = {}
        for t in await db.litellm_teamtable.find_many(where={"team_id": {"startswith": "team-"}}):
            after[t.team_id] = row(t)
        for u in await db.litellm_usertable.find_many(where={"user_id": {"startswith": "user-"}}):
            after[u.user_id] = row(u)
        for k in await db.litellm_verificationtoken.find_many(where={"token": {"startswith": "key-"}}):
            after[k.token] = row(k)
    finally:
        await prisma_client.disconnect()
        verbose_proxy_logger.removeHandler(errors)
    return {
        "seeded": seeded,
        "after": after,
        "job_started_at": _iso(started),
        "job_finished_at": _iso(finished),
        "timing_reset_s": round(elapsed, 3),
        "litellm_rule": rule,
        "errors_logged": errors.records,
    }


def _next_reset(duration: str, moment: dt.datetime) -> dt.datetime:
    """The release's own next-reset rule in the configured `litellm_settings.timezone`."""
    try:
        from litellm.litellm_core_utils.duration_parser import get_next_standardized_reset_time
    except ImportError:  # older releases: a plain offset from now
        from litellm.litellm_core_utils.duration_parser import duration_in_seconds

        return moment + dt.timedelta(seconds=duration_in_seconds(duration))
    return get_next_standardized_reset_time(duration, moment, TIMEZONE)


def main() -> int:
    result = asyncio.run(run())
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
