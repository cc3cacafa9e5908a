"""Templates, clones and resets on real PostgreSQL (embedded), plus the schema.prisma parser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.db import clone, ensure_template, reset, start_server, template_name
from harness.db.prisma_schema import parse_schema
from harness.db.template import BUILD_PREFIX, list_migrations, schema_hash
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]

# A small stand-in for LiteLLM's migrations: an enum, @map'ed columns, a folder name with
# spaces, a file that is one CREATE INDEX CONCURRENTLY (must run outside a transaction).
MIGRATIONS = {
    "20240101000000_init": """
        CREATE TYPE "JobStatus" AS ENUM ('ACTIVE', 'INACTIVE');
        CREATE TABLE "LiteLLM_BudgetTable" (
            "budget_id" TEXT NOT NULL PRIMARY KEY,
            "max_budget" DOUBLE PRECISION,
            "budget_reset_at" TIMESTAMP(3)
        );
        CREATE TABLE "LiteLLM_VerificationToken" (
            "token" TEXT NOT NULL PRIMARY KEY,
            "spend" DOUBLE PRECISION NOT NULL DEFAULT 0,
            "budget_id" TEXT REFERENCES "LiteLLM_BudgetTable"("budget_id"),
            "models" TEXT[]
        );
        CREATE TABLE "LiteLLM_CronJob" ("cronjob_id" TEXT PRIMARY KEY, "status" "JobStatus" NOT NULL);
    """,
    "20240201000000_add serial counter": """
        CREATE TABLE "spend_counter" ("id" SERIAL PRIMARY KEY, "key_alias" TEXT);
    """,
    "20240301000000_concurrent_index": """
        CREATE INDEX CONCURRENTLY IF NOT EXISTS "tok_budget_idx" ON "LiteLLM_VerificationToken"("budget_id");
    """,
}

SCHEMA = """
datasource client {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

enum JobStatus {
  ACTIVE
  INACTIVE
}

// Budgets
model LiteLLM_BudgetTable {
  budget_id  String  @id @default(uuid())
  max_budget Float?
  reset_at   DateTime? @map("budget_reset_at") // mapped column
  keys       LiteLLM_VerificationToken[]
}

model LiteLLM_VerificationToken {
  token     String  @id
  spend     Float   @default(0)
  budget_id String?
  models    String[]
  litellm_budget_table LiteLLM_BudgetTable? @relation(fields: [budget_id], references: [budget_id])
}

model LiteLLM_CronJob {
  cronjob_id String @id
  status     JobStatus
}

model Counter {
  id        Int     @id @default(autoincrement())
  alias     String? @map("key_alias")
  @@map("spend_counter")
}
"""


def write_migrations(root: Path, migrations: dict[str, str] = MIGRATIONS) -> Path:
    mdir = root / "migrations"
    for name, sql in migrations.items():
        (mdir / name).mkdir(parents=True, exist_ok=True)
        (mdir / name / "migration.sql").write_text(textwrap.dedent(sql))
    (mdir / "migration_lock.toml").write_text('provider = "postgresql"\n')
    return mdir


@pytest.fixture(scope="module")
def server():
    with start_server("embedded") as srv:
        yield srv


@pytest.fixture()
def schema_files(tmp_path):
    mdir = write_migrations(tmp_path)
    schema = tmp_path / "schema.prisma"
    schema.write_text(SCHEMA)
    return mdir, schema


# --- schema.prisma parser (pure) ------------------------------------------------------------

def test_parser_maps_tables_and_columns_and_skips_relations():
    parsed = parse_schema(SCHEMA)
    assert parsed.enums == {"JobStatus"}
    assert parsed.expected() == {
        "LiteLLM_BudgetTable": ["budget_id", "max_budget", "budget_reset_at"],
        "LiteLLM_VerificationToken": ["token", "spend", "budget_id", "models"],
        "LiteLLM_CronJob": ["cronjob_id", "status"],
        "spend_counter": ["id", "key_alias"],
    }
    token = parsed.models["LiteLLM_VerificationToken"]
    assert [c.is_list for c in token.columns] == [False, False, False, True]


def test_parser_ignores_comments_ignored_fields_models_and_views():
    text = """
    /// doc comment with model Fake { inside }
    model A {
      id    String @id // trailing comment with @map("nope")
      name  String @map(name: "display_name")
      junk  String @ignore
      url   String @default("http://x//y")   // a "//" inside a string is not a comment
      blob  Unsupported("tsvector")?
      other B @relation(fields: [id], references: [id])
      @@map(name: "a_table")
      @@index([name])
    }
    model Hidden {
      id String @id
      @@ignore
    }
    view V {
      id String @unique
    }
    model B { id String @id
      as A[] }
    """
    exp = parse_schema(text).expected()
    assert exp == {"a_table": ["id", "display_name", "url", "blob"], "B": ["id"]}


@pytest.mark.slow
def test_parser_reads_litellm_schema(release_1823):
    exp = parse_schema(release_1823.schema_prisma.read_text()).expected()
    assert len(exp) == 57
    assert "LiteLLM_VerificationToken" in exp and "spend" in exp["LiteLLM_VerificationToken"]
    assert "litellm_budget_table" not in exp["LiteLLM_VerificationToken"]  # a relation field


# --- migrations -----------------------------------------------------------------------------

def test_migrations_are_listed_in_name_order_and_hashed_by_name_and_content(tmp_path):
    mdir = write_migrations(tmp_path)
    names = [m.name for m in list_migrations(mdir)]
    assert names == sorted(MIGRATIONS)
    assert "20240201000000_add serial counter" in names
    h1 = schema_hash(list_migrations(mdir))
    (mdir / "20240201000000_add serial counter" / "migration.sql").write_text("-- changed\n")
    assert schema_hash(list_migrations(mdir)) != h1
    with pytest.raises(HarnessError, match="does not exist"):
        list_migrations(tmp_path / "nope")


# --- templates ------------------------------------------------------------------------------

def test_template_is_built_once_and_reused(server, schema_files):
    mdir, schema = schema_files
    log: list[str] = []
    t0 = time.monotonic()
    name = ensure_template(server, mdir, schema, progress=log.append)
    cold = time.monotonic() - t0
    assert name == template_name(mdir) and name.startswith("lh_tpl_") and len(name) == len("lh_tpl_") + 12
    assert sum("building template" in m for m in log) == 1

    log2: list[str] = []
    t0 = time.monotonic()
    assert ensure_template(server, mdir, schema, progress=log2.append) == name
    warm = time.monotonic() - t0
    assert log2 == []
    print(f"\ntemplate cold {cold * 1000:.0f} ms, warm {warm * 1000:.1f} ms")
    with server.connect(name) as conn:
        applied = conn.execute("SELECT migration_name, checksum, applied_steps_count FROM _prisma_migrations ORDER BY migration_name").fetchall()
        assert [a[0] for a in applied] == sorted(MIGRATIONS)
        assert all(len(a[1]) == 64 and a[2] == 1 for a in applied)
        idx = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = '\"tok_budget_idx\"'::regclass").fetchone()
        assert idx == (True,)
    assert not [d for d in server.list_databases() if d.startswith(BUILD_PREFIX)]


def test_parallel_processes_build_one_template(server, tmp_path):
    # a slow migration widens the race window
    migrations = dict(MIGRATIONS)
    migrations["20240401000000_slow"] = "SELECT pg_sleep(0.5);"
    mdir = write_migrations(tmp_path, migrations)
    schema = tmp_path / "schema.prisma"
    schema.write_text(SCHEMA)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from harness.db import start_server, ensure_template
        with start_server("url", url=sys.argv[1]) as srv:
            print("RESULT", ensure_template(srv, Path({str(mdir)!r}), Path({str(schema)!r}), progress=lambda m: print("LOG", m)))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, server.url("postgres")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    results = {ln.split()[1] for out, _ in outs for ln in out.splitlines() if ln.startswith("RESULT")}
    builds = [ln for out, _ in outs for ln in out.splitlines() if "building template" in ln]
    assert results == {template_name(mdir)}
    assert len(builds) == 1, builds
    assert template_name(mdir) in server.list_databases()
    assert not [d for d in server.list_databases() if d.startswith(BUILD_PREFIX)]


def test_half_built_leftover_is_dropped_and_rebuilt(server, tmp_path):
    migrations = dict(MIGRATIONS)
    migrations["20240501000000_marker"] = "CREATE TABLE marker (id int);"
    mdir = write_migrations(tmp_path, migrations)
    schema = tmp_path / "schema.prisma"
    schema.write_text(SCHEMA)
    half = BUILD_PREFIX + schema_hash(list_migrations(mdir))[:12]
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{half}"')  # what a builder killed mid-way leaves
    log: list[str] = []
    name = ensure_template(server, mdir, schema, progress=log.append)
    assert any("dropping half-built" in m for m in log)
    assert half not in server.list_databases()
    with server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM _prisma_migrations").fetchone() == (len(migrations),)


def test_failing_migration_is_reported_and_leaves_nothing(server, tmp_path):
    migrations = dict(MIGRATIONS)
    migrations["20240601000000_broken"] = 'ALTER TABLE "no_such_table" ADD COLUMN "x" TEXT;'
    mdir = write_migrations(tmp_path, migrations)
    schema = tmp_path / "schema.prisma"
    schema.write_text(SCHEMA)
    with pytest.raises(HarnessError) as err:
        ensure_template(server, mdir, schema)
    msg = str(err.value)
    assert "20240601000000_broken" in msg and "no_such_table" in msg and "\n" not in msg
    tpl = template_name(mdir)
    assert not [d for d in server.list_databases() if tpl[-12:] in d]


def test_drift_fails_loudly(server, schema_files, tmp_path):
    mdir, schema = schema_files
    ensure_template(server, mdir, schema)
    drifted = tmp_path / "drifted.prisma"
    drifted.write_text(
        SCHEMA.replace("  max_budget Float?\n", "  max_budget Float?\n  soft_budget Float?\n")
        + "\nmodel LiteLLM_NewTable {\n  id String @id\n}\n"
    )
    with pytest.raises(HarnessError) as err:
        ensure_template(server, mdir, drifted)
    msg = str(err.value)
    print("\n" + msg)
    assert msg.startswith("schema drift:") and "\n" not in msg
    assert "column LiteLLM_BudgetTable.soft_budget" in msg and "table LiteLLM_NewTable" in msg
    assert "1 table(s), 1 column(s) missing" in msg
    # the matching schema still passes, and the drifted one keeps failing
    assert ensure_template(server, mdir, schema) == template_name(mdir)
    with pytest.raises(HarnessError, match="schema drift"):
        ensure_template(server, mdir, drifted)


def test_newer_migrations_than_the_release_pass_unless_they_add_a_column_it_cannot_fill(server, tmp_path):
    """The nearest-migrations path (releases before 1.65.1 ship none): tables and columns the
    release does not know are fine, unless one is NOT NULL without a default."""
    older = tmp_path / "older.prisma"  # a release that has not heard of `models` nor the counter
    older.write_text(SCHEMA.replace("  models    String[]\n", "").split("model Counter")[0])
    assert ensure_template(server, write_migrations(tmp_path / "ok"), older)
    required = dict(MIGRATIONS)
    required["20240401000000_required"] = 'ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "owner" TEXT NOT NULL;'
    with pytest.raises(HarnessError) as err:
        ensure_template(server, write_migrations(tmp_path / "bad", required), older)
    assert "LiteLLM_VerificationToken.owner (NOT NULL, no default, unknown to the release)" in str(err.value)


# --- clones ---------------------------------------------------------------------------------

def test_clones_are_isolated(server, schema_files):
    mdir, schema = schema_files
    tpl = ensure_template(server, mdir, schema)
    t0 = time.monotonic()
    a = clone(server, tpl, "iso a")
    took = time.monotonic() - t0
    b = clone(server, tpl, "iso b")
    print(f"\nclone {took * 1000:.1f} ms")
    try:
        assert a.name != b.name and a.name.startswith("lh_c_iso_a_")
        with a.connect() as conn:
            conn.execute("""INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget) VALUES ('b1', 10)""")
        with b.connect() as conn:
            assert conn.execute('SELECT count(*) FROM "LiteLLM_BudgetTable"').fetchone() == (0,)
        with a.connect() as conn:
            assert conn.execute('SELECT count(*) FROM "LiteLLM_BudgetTable"').fetchone() == (1,)
        with server.connect(tpl) as conn:
            assert conn.execute('SELECT count(*) FROM "LiteLLM_BudgetTable"').fetchone() == (0,)
        assert ":***@" in repr(a) and server._password not in repr(a)  # noqa: SLF001
    finally:
        a.drop()
        b.drop()
    assert a.name not in server.list_databases() and b.name not in server.list_databases()


def test_clone_names_are_unique_in_parallel(server, schema_files):
    mdir, schema = schema_files
    tpl = ensure_template(server, mdir, schema)
    made, errors = [], []

    def work():
        try:
            made.append(clone(server, tpl, "Par/Allel " + "x" * 80))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        names = [d.name for d in made]
        assert len(set(names)) == 6 and all(len(n) <= 63 and n.startswith("lh_c_par_allel_x") for n in names)
    finally:
        for d in made:
            d.drop()


def test_drop_terminates_connections_and_refuses_foreign_names(server, schema_files):
    mdir, schema = schema_files
    db = clone(server, ensure_template(server, mdir, schema), "drop")
    conn = db.connect()
    conn.execute("SELECT 1")
    db.drop()
    db.drop()  # idempotent
    assert db.name not in server.list_databases()
    conn.close()
    with pytest.raises(HarnessError, match="refusing to drop"):
        server.drop_database("postgres")


def test_reset_truncates_all_tables_in_one_statement(server, schema_files):
    mdir, schema = schema_files
    db = clone(server, ensure_template(server, mdir, schema), "reset")
    try:
        with db.connect() as conn:
            conn.execute("""INSERT INTO "LiteLLM_BudgetTable" (budget_id) VALUES ('b1')""")
            conn.execute("""INSERT INTO "LiteLLM_VerificationToken" (token, budget_id) VALUES ('t1', 'b1')""")
            conn.execute("""INSERT INTO spend_counter (key_alias) VALUES ('a'), ('b')""")
        idle = db.connect()  # a long-lived proxy's idle connection does not block the reset
        idle.execute("SELECT 1")
        t0 = time.monotonic()
        reset(db)
        print(f"\nreset {(time.monotonic() - t0) * 1000:.1f} ms")
        with db.connect() as conn:
            for table in ("LiteLLM_BudgetTable", "LiteLLM_VerificationToken", "spend_counter", "LiteLLM_CronJob"):
                assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone() == (0,), table
            assert conn.execute("SELECT count(*) FROM _prisma_migrations").fetchone() == (len(MIGRATIONS),)
            conn.execute("INSERT INTO spend_counter (key_alias) VALUES ('c')")
            assert conn.execute("SELECT id FROM spend_counter").fetchone() == (1,)  # identity restarted
            # rows deleted but the sequence used: still restarted
            conn.execute("INSERT INTO spend_counter (key_alias) VALUES ('d')")
            conn.execute("DELETE FROM spend_counter")
        reset(db)
        with db.connect() as conn:
            conn.execute("INSERT INTO spend_counter (key_alias) VALUES ('e')")
            assert conn.execute("SELECT id FROM spend_counter").fetchone() == (1,)
        idle.close()
    finally:
        db.drop()


# --- LiteLLM's real migrations -------------------------------------------------------------

@pytest.mark.slow
def test_litellm_1823_template_clone_and_reset(pg_server, release_1823, litellm_1823):
    t0 = time.monotonic()
    tpl = ensure_template(pg_server, release_1823.migrations_dir, release_1823.schema_prisma)
    assert tpl == litellm_1823[1]
    print(f"\n{len(list_migrations(release_1823.migrations_dir))} LiteLLM migrations -> {tpl} in {time.monotonic() - t0:.2f} s")
    db = clone(pg_server, tpl, "litellm")
    try:
        with db.connect() as conn:
            conn.execute("""INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ('b', 'x', 'x')""")
        reset(db)
        with db.connect() as conn:
            assert conn.execute('SELECT count(*) FROM "LiteLLM_BudgetTable"').fetchone()[0] == 0
    finally:
        db.drop()


@pytest.mark.slow
def test_litellm_extras_0456_migrations_drift_from_1823_schema(server, release_1823):
    from packaging.version import Version

    from harness.errors import SchemaDrift
    from harness.releases.extras import migrations_of

    with pytest.raises(SchemaDrift) as err:
        ensure_template(server, migrations_of(Version("0.4.56")), release_1823.schema_prisma)
    msg = str(err.value)
    print("\n" + msg)
    assert "6 column(s) missing" in msg and "LiteLLM_MCPServerTable.approval_status" in msg
