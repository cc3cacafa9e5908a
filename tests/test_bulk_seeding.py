"""Bulk seeding (harness.db.bulk, harness.proxy.seeding, the seed_entities / expect_seeded steps):
the column checks and ids as pure logic, then COPY and the count on the real embedded PostgreSQL.
(Bad scenario files for these steps are in tests/data/bad_scenarios/seed_*.yaml and
expect_seeded_*.yaml, run by tests/test_scenario_loader.py.)"""

from __future__ import annotations

import psycopg
import pytest

from harness.db import start_server
from harness.db.bulk import Column, copy_rows, missing_columns, table_columns
from harness.proxy.seeding import MAX_SEED, CannotSeed, count_seeded, seed, seed_id
from harness.steps.bulk import ExpectSeeded, SeedEntities

# LiteLLM_EndUserTable's columns as 1.82.3 has them (the release's table is read, never assumed)
END_USER_TABLE = '''CREATE TABLE "LiteLLM_EndUserTable" (
    user_id text PRIMARY KEY, alias text, spend double precision NOT NULL DEFAULT 0.0,
    allowed_model_region text, default_model text, budget_id text, blocked boolean NOT NULL DEFAULT false)'''


def test_missing_columns_names_absent_and_required_ones():
    columns = {
        "user_id": Column("user_id", "text", False, False),
        "spend": Column("spend", "double precision", False, True),
        "tier": Column("tier", "text", False, False),   # NOT NULL, no default: the writer must fill it
        "alias": Column("alias", "text", True, False),
    }
    assert missing_columns(columns, ["user_id", "spend", "tier"]) == []
    assert missing_columns(columns, ["user_id", "spend", "budget_id"]) == [
        "no column budget_id", "column tier (text) is required and the writer does not fill it"]


def test_seed_ids_sort_in_creation_order():
    ids = [seed_id("crowd-", i) for i in (0, 9, 10, 99_999_999)]
    assert ids == ["crowd-00000000", "crowd-00000009", "crowd-00000010", "crowd-99999999"]
    assert ids == sorted(ids)


def test_step_fields_are_bounded():
    assert SeedEntities(count=MAX_SEED, prefix="p").count == MAX_SEED
    for bad in ({"count": 0, "prefix": "p"}, {"count": MAX_SEED + 1, "prefix": "p"}, {"count": 1, "prefix": "a b"},
                {"count": 1, "prefix": "p", "spend": -1}):
        with pytest.raises(ValueError):
            SeedEntities(**bad)
    with pytest.raises(ValueError, match="not both"):
        ExpectSeeded(prefix="p", count=1, spend=0, spend_at_least=1)
    assert SeedEntities(count=3, prefix="p", name="first").created() == [("first", "end_user")]
    assert SeedEntities(count=3, prefix="p").created() == []


@pytest.fixture(scope="module")
def server():
    with start_server("embedded") as srv:
        yield srv


@pytest.fixture()
def conn(server):
    with server.admin() as admin:
        admin.execute('DROP TABLE IF EXISTS "LiteLLM_EndUserTable"')
        admin.execute(END_USER_TABLE)
    with psycopg.connect(server.url(server.maintenance_db), autocommit=True) as connection:
        yield connection


@pytest.mark.slow
def test_seed_writes_every_row_and_the_count_reads_them_back(conn):
    told = []
    seeded = seed(conn, "end_user", "crowd-", 25_000, 0.5, "tier-1", progress=lambda rows, _s: told.append(rows))
    assert seeded.count == 25_000
    assert told == [10_000, 20_000]
    row = conn.execute('SELECT count(*), min(user_id), max(user_id), min(spend), max(spend), count(DISTINCT budget_id) '
                       'FROM "LiteLLM_EndUserTable"').fetchone()
    assert row == (25_000, "crowd-00000000", "crowd-00024999", 0.5, 0.5, 1)

    assert count_seeded(conn, "end_user", "crowd-", 0.5, 1e-6).off == 0
    conn.execute("""UPDATE "LiteLLM_EndUserTable" SET spend = 0 WHERE user_id < 'crowd-00000100'""")
    found = count_seeded(conn, "end_user", "crowd-", 0.5, 1e-6)
    assert (found.rows, found.off, found.off_min, found.off_max) == (25_000, 100, 0.0, 0.0)
    assert count_seeded(conn, "end_user", "crowd-", 0.4, 1e-6, at_least=True).off == 100
    assert count_seeded(conn, "end_user", "crowd-", None, 1e-6).off == 0
    # another prefix is another population
    assert count_seeded(conn, "end_user", "other-", 0.5, 1e-6).rows == 0


@pytest.mark.slow
def test_a_failed_seed_writes_nothing(conn):
    conn.execute("""INSERT INTO "LiteLLM_EndUserTable" (user_id) VALUES ('crowd-00000500')""")
    with pytest.raises(psycopg.errors.UniqueViolation):
        seed(conn, "end_user", "crowd-", 1_000, 1.0, None)
    assert conn.execute('SELECT count(*) FROM "LiteLLM_EndUserTable"').fetchone() == (1,)


@pytest.mark.slow
def test_a_table_that_cannot_take_the_rows_is_told_before_writing(conn):
    conn.execute('ALTER TABLE "LiteLLM_EndUserTable" ADD COLUMN models text NOT NULL')
    with pytest.raises(CannotSeed, match="column models .* is required"):
        seed(conn, "end_user", "crowd-", 10, 0.0, None)
    conn.execute('ALTER TABLE "LiteLLM_EndUserTable" DROP COLUMN models, DROP COLUMN budget_id')
    with pytest.raises(CannotSeed, match="no column budget_id"):
        seed(conn, "end_user", "crowd-", 10, 0.0, "tier-1")
    assert seed(conn, "end_user", "crowd-", 10, 0.0, None).count == 10
    assert set(table_columns(conn, "LiteLLM_EndUserTable")) == {
        "user_id", "alias", "spend", "allowed_model_region", "default_model", "blocked"}
    assert table_columns(conn, "no_such_table") == {}


@pytest.mark.slow
def test_copy_rows_is_all_or_nothing(conn):
    rows = [("a", 1.0), ("b", 2.0), ("a", 3.0)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        copy_rows(conn, "LiteLLM_EndUserTable", ["user_id", "spend"], rows)
    assert conn.execute('SELECT count(*) FROM "LiteLLM_EndUserTable"').fetchone() == (0,)


class _Context:
    """What the two steps read of the StepContext: the database view, the entities, progress."""

    def __init__(self, connection):
        self.db = type("View", (), {"conn": connection})()
        self.entities: dict = {}
        self.told: list[str] = []

    def id_of(self, name):
        return None if name is None else f"id-of-{name}"

    def progress(self, message: str) -> None:
        self.told.append(message)


@pytest.mark.slow
def test_steps_seed_count_and_fail_in_one_line(conn):
    from harness.errors import HarnessError
    from harness.steps.base import Expectation, Unsupported

    ctx = _Context(conn)
    message = SeedEntities(count=12_000, prefix="crowd-", budget="tier", spend=2, name="first").run(ctx)
    assert message.startswith("seeded 12,000 end_user rows in ")
    assert ctx.told == ["seed_entities: 10,000/12,000 end_user rows (" + ctx.told[0].split("(", 1)[1]]
    assert ctx.entities["first"].id == "crowd-00000000" and ctx.entities["first"].kind == "end_user"
    assert conn.execute('SELECT count(*) FROM "LiteLLM_EndUserTable" WHERE budget_id = %s', ("id-of-tier",)).fetchone() == (12_000,)

    assert "12,000 end_user rows, each spend 2" in ExpectSeeded(prefix="crowd-", count=12_000, spend=2).run(ctx)
    assert "each spend >= 1" in ExpectSeeded(prefix="crowd-", count=12_000, spend_at_least=1).run(ctx)
    with pytest.raises(Expectation, match="12,000 of 12,000 seeded end_user rows .* do not have spend 0: their spend lies in 2..2"):
        ExpectSeeded(prefix="crowd-", count=12_000, spend=0).run(ctx)
    with pytest.raises(Expectation, match="12,000 end_user rows have ids starting 'crowd-', expected 12,001"):
        ExpectSeeded(prefix="crowd-", count=12_001).run(ctx)

    # the same ids again: one line naming the database's refusal, nothing written
    with pytest.raises(HarnessError) as info:
        SeedEntities(count=10, prefix="crowd-").run(ctx)
    assert str(info.value).startswith("seed_entities: UniqueViolation: ") and "\n" not in str(info.value)
    # a release whose table lacks the budget column: unsupported, with the reason
    conn.execute('ALTER TABLE "LiteLLM_EndUserTable" DROP COLUMN budget_id')
    with pytest.raises(Unsupported, match="no column budget_id"):
        SeedEntities(count=10, prefix="other-", budget="tier").run(ctx)
