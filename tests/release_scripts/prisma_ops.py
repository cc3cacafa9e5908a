"""Prisma operations through LiteLLM's own PrismaClient, run with a RELEASE environment's python.

Usage: DATABASE_URL=postgresql://... <release python> prisma_ops.py
(plus the engine env: PRISMA_QUERY_ENGINE_BINARY etc., see harness.engine.EngineInfo.env()).

Prints one JSON object of named results on stdout (last line). It decides nothing beyond raising
on an unexpected failure: tests/test_prisma_client.py asserts every value.
The database must have the release's schema and no rows in the tables touched here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from typing import Any

BIG = 2**53 + 1  # 9007199254740993: not representable as a double
BIGGER = 2**62 + 7
WHEN = dt.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
META = {"nested": {"list": [1, 2.5, None, True, "x"], "big": 12345678901234}, "unicode": "é✓ \"quoted\"", "empty": {}}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        # exact integers travel as strings when a double could not hold them
        return value if abs(value) <= 2**53 else {"int": str(value)}
    return value


async def _expect_error(awaitable) -> str:
    """Run it; return the class name of the exception it raised ("none" if it did not)."""
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001 - the class is the result
        return type(exc).__name__
    return "none"


async def run() -> dict[str, Any]:
    from litellm.caching.caching import DualCache
    from litellm.proxy.utils import PrismaClient, ProxyLogging
    from prisma import Json

    r: dict[str, Any] = {}
    proxy_logging_obj = ProxyLogging(user_api_key_cache=DualCache())
    client = PrismaClient(database_url=os.environ["DATABASE_URL"], proxy_logging_obj=proxy_logging_obj)
    t0 = time.perf_counter()
    await client.connect()
    r["timing_connect_s"] = round(time.perf_counter() - t0, 3)
    db = client.db
    try:
        keys = db.litellm_verificationtoken
        # --- create (+ Json, DateTime, BigInt, String[] on the way in) ---------------------
        budget = await db.litellm_budgettable.create(
            data={"budget_id": "ops-budget", "max_budget": 10.0, "created_by": "ops", "updated_by": "ops"}
        )
        r["create_budget"] = {"budget_id": budget.budget_id, "max_budget": budget.max_budget}
        user = await db.litellm_usertable.create(
            data={
                "user_id": "ops-user",
                "spend": 0.0,
                "models": ["gpt-4o", "claude-3"],
                "metadata": Json(META),
                "tpm_limit": BIG,
                "rpm_limit": BIGGER,
                "budget_reset_at": WHEN,
            }
        )
        r["create_user"] = {
            "user_id": user.user_id,
            "models": user.models,
            "metadata": user.metadata,
            "tpm_limit": _jsonable(user.tpm_limit),
            "rpm_limit": _jsonable(user.rpm_limit),
            "budget_reset_at": _jsonable(user.budget_reset_at),
        }
        for i, spend in enumerate([1.5, 0.0, 3.25]):
            await keys.create(
                data={
                    "token": f"ops-key-{i}",
                    "user_id": "ops-user",
                    "spend": spend,
                    "budget_id": "ops-budget" if i != 1 else None,
                    "models": ["gpt-4o"] if i == 0 else [],
                    "metadata": Json({"i": i}),
                    "tpm_limit": BIG if i == 0 else None,
                }
            )

        # --- reads -------------------------------------------------------------------------
        t0 = time.perf_counter()
        found = await keys.find_unique(where={"token": "ops-key-0"})
        r["timing_find_unique_s"] = round(time.perf_counter() - t0, 4)
        assert found is not None
        r["find_unique"] = {
            "token": found.token,
            "spend": found.spend,
            "metadata": found.metadata,
            "tpm_limit": _jsonable(found.tpm_limit),
            "models": found.models,
            "budget_id": found.budget_id,
        }
        samples = []
        for _ in range(20):
            t0 = time.perf_counter()
            await keys.find_unique(where={"token": "ops-key-0"})
            samples.append(time.perf_counter() - t0)
        r["timing_find_unique_median_s"] = round(sorted(samples)[len(samples) // 2], 4)
        r["find_unique_missing"] = await keys.find_unique(where={"token": "nope"})
        first = await keys.find_first(where={"user_id": "ops-user", "spend": {"gt": 2}})
        r["find_first"] = first.token if first else None
        many = await keys.find_many(where={"user_id": "ops-user"}, order={"token": "desc"}, take=2)
        r["find_many_desc_take2"] = [k.token for k in many]
        r["find_many_in"] = sorted(
            k.token for k in await keys.find_many(where={"token": {"in": ["ops-key-0", "ops-key-2", "zzz"]}})
        )
        r["find_many_has"] = [k.token for k in await keys.find_many(where={"models": {"has": "gpt-4o"}})]
        r["find_bigint_exact"] = [k.token for k in await keys.find_many(where={"tpm_limit": BIG})]
        r["find_bigint_neighbour"] = [k.token for k in await keys.find_many(where={"tpm_limit": BIG - 1})]
        r["find_datetime_eq"] = [u.user_id for u in await db.litellm_usertable.find_many(where={"budget_reset_at": WHEN})]
        user_back = await db.litellm_usertable.find_unique(where={"user_id": "ops-user"})
        assert user_back is not None
        r["roundtrip_user"] = {
            "metadata": user_back.metadata,
            "models": user_back.models,
            "tpm_limit": _jsonable(user_back.tpm_limit),
            "rpm_limit": _jsonable(user_back.rpm_limit),
            "tpm_limit_type": type(user_back.tpm_limit).__name__,
            "budget_reset_at": _jsonable(user_back.budget_reset_at),
            "created_at_is_datetime": isinstance(user_back.created_at, dt.datetime),
        }

        # --- writes ------------------------------------------------------------------------
        updated = await keys.update(
            where={"token": "ops-key-0"},
            data={"spend": 2.0, "metadata": Json({"replaced": [1, {"deep": None}]}), "models": {"set": ["a", "b"]}},
        )
        assert updated is not None
        r["update"] = {"spend": updated.spend, "metadata": updated.metadata, "models": updated.models}
        r["update_missing"] = await keys.update(where={"token": "nope"}, data={"spend": 1.0})
        r["update_many_count"] = await keys.update_many(where={"user_id": "ops-user"}, data={"blocked": True})
        r["update_many_blocked"] = sorted(k.token for k in await keys.find_many(where={"blocked": True}))
        up1 = await keys.upsert(
            where={"token": "ops-key-upsert"},
            data={"create": {"token": "ops-key-upsert", "spend": 5.0}, "update": {"spend": 6.0}},
        )
        up2 = await keys.upsert(
            where={"token": "ops-key-upsert"},
            data={"create": {"token": "ops-key-upsert", "spend": 5.0}, "update": {"spend": 6.0}},
        )
        r["upsert"] = [up1.spend, up2.spend]
        inc = await keys.update(where={"token": "ops-key-0"}, data={"spend": {"increment": 0.25}})
        r["increment"] = inc.spend if inc else None
        # atomicity: 20 concurrent increments of 0.5 on one row
        await asyncio.gather(
            *[keys.update(where={"token": "ops-key-1"}, data={"spend": {"increment": 0.5}}) for _ in range(20)]
        )
        k1 = await keys.find_unique(where={"token": "ops-key-1"})
        r["concurrent_increment_total"] = k1.spend if k1 else None
        bigupd = await db.litellm_usertable.update(
            where={"user_id": "ops-user"}, data={"tpm_limit": {"increment": 2}, "rpm_limit": BIGGER + 1}
        )
        r["bigint_update"] = {
            "tpm_limit": _jsonable(bigupd.tpm_limit) if bigupd else None,
            "rpm_limit": _jsonable(bigupd.rpm_limit) if bigupd else None,
        }
        deleted = await keys.delete(where={"token": "ops-key-upsert"})
        r["delete"] = deleted.token if deleted else None
        r["delete_missing"] = await keys.delete(where={"token": "ops-key-upsert"})
        r["delete_many_count"] = await keys.delete_many(where={"token": {"startswith": "nothing-"}})

        # --- include / count / group_by ----------------------------------------------------
        with_budget = await keys.find_unique(where={"token": "ops-key-0"}, include={"litellm_budget_table": True})
        r["include"] = (
            {"budget_id": with_budget.litellm_budget_table.budget_id, "max_budget": with_budget.litellm_budget_table.max_budget}
            if with_budget and with_budget.litellm_budget_table
            else None
        )
        budget_keys = await db.litellm_budgettable.find_unique(
            where={"budget_id": "ops-budget"},
            include={"keys": {"where": {"spend": {"gt": 1}}, "order_by": {"token": "desc"}}},
        )
        r["include_nested_args"] = [k.token for k in (budget_keys.keys or [])] if budget_keys else None
        r["count"] = await keys.count(where={"user_id": "ops-user"})
        r["count_all"] = await keys.count()
        groups = await keys.group_by(
            by=["budget_id"], sum={"spend": True}, count=True, where={"user_id": "ops-user"}, order={"budget_id": "asc"}
        )
        r["group_by"] = _jsonable(groups)

        # --- raw ---------------------------------------------------------------------------
        rows = await db.query_raw(
            'SELECT token, spend, tpm_limit, models, metadata, blocked FROM "LiteLLM_VerificationToken" '
            "WHERE user_id = $1 ORDER BY token",
            "ops-user",
        )
        r["query_raw"] = _jsonable(rows)
        r["query_raw_unmapped_types"] = _jsonable(
            await db.query_raw("SELECT ARRAY['a','b']::name[] AS names, 'x'::name AS one, interval '1 day' AS span")
        )
        first_raw = await db.query_first('SELECT count(*) AS n FROM "LiteLLM_VerificationToken"')
        r["query_first"] = _jsonable(first_raw)
        r["execute_raw"] = await db.execute_raw(
            'UPDATE "LiteLLM_VerificationToken" SET spend = spend + $1 WHERE user_id = $2 AND token <> $3',
            1.0,
            "ops-user",
            "ops-key-0",
        )
        r["raw_error"] = await _expect_error(db.query_raw("SELECT * FROM no_such_table"))

        # --- batch -------------------------------------------------------------------------
        async with db.batch_() as batcher:
            batcher.litellm_verificationtoken.create(data={"token": "ops-batch-a", "spend": 1.0})
            batcher.litellm_verificationtoken.create(data={"token": "ops-batch-b", "spend": 2.0})
            batcher.litellm_verificationtoken.update(where={"token": "ops-batch-a"}, data={"spend": {"increment": 10}})
        r["batch"] = {k.token: k.spend for k in await keys.find_many(where={"token": {"startswith": "ops-batch-"}})}

        async def failing_batch() -> None:
            async with db.batch_() as b:
                b.litellm_verificationtoken.create(data={"token": "ops-batch-c", "spend": 1.0})
                b.litellm_verificationtoken.create(data={"token": "ops-batch-a", "spend": 1.0})  # duplicate

        r["batch_error"] = await _expect_error(failing_batch())
        r["batch_rolled_back"] = await keys.find_unique(where={"token": "ops-batch-c"}) is None

        # --- interactive transactions ------------------------------------------------------
        async with db.tx() as tx:
            await tx.litellm_verificationtoken.create(data={"token": "ops-tx-commit", "spend": 1.0})
            await tx.litellm_verificationtoken.update(where={"token": "ops-tx-commit"}, data={"spend": {"increment": 1}})
            inside = await tx.litellm_verificationtoken.find_unique(where={"token": "ops-tx-commit"})
            outside = await keys.find_unique(where={"token": "ops-tx-commit"})
            r["tx_visible_inside"] = inside.spend if inside else None
            r["tx_visible_outside_before_commit"] = outside is not None
        after = await keys.find_unique(where={"token": "ops-tx-commit"})
        r["tx_commit"] = after.spend if after else None

        class Abort(Exception):
            pass

        try:
            async with db.tx() as tx:
                await tx.litellm_verificationtoken.create(data={"token": "ops-tx-rollback", "spend": 1.0})
                await tx.litellm_verificationtoken.update(where={"token": "ops-key-0"}, data={"spend": 999.0})
                raise Abort()
        except Abort:
            pass
        r["tx_rollback_row_absent"] = await keys.find_unique(where={"token": "ops-tx-rollback"}) is None
        k0 = await keys.find_unique(where={"token": "ops-key-0"})
        r["tx_rollback_update_undone"] = k0.spend if k0 else None

        # --- errors ------------------------------------------------------------------------
        r["error_unique"] = await _expect_error(keys.create(data={"token": "ops-key-0"}))
        r["error_foreign_key"] = await _expect_error(keys.create(data={"token": "ops-key-fk", "budget_id": "no-such-budget"}))
        r["error_not_found"] = await _expect_error(keys.find_unique_or_raise(where={"token": "nope"}))
        r["error_not_found_first"] = await _expect_error(keys.find_first_or_raise(where={"token": "nope"}))
        r["error_unique_in_tx"] = await _expect_error(_unique_in_tx(db))
    finally:
        await client.disconnect()
    return r


async def _unique_in_tx(db) -> None:
    async with db.tx() as tx:
        await tx.litellm_verificationtoken.create(data={"token": "ops-key-0"})


def main() -> int:
    result = asyncio.run(run())
    sys.stdout.write(json.dumps(_jsonable(result), sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
