"""Template databases (one per schema version), per-run clones, and fast resets.

A template is LiteLLM's migration SQL applied in name order over one connection, recorded in
`_prisma_migrations` the way `prisma migrate deploy` records it, then checked against the
release's schema.prisma. Its name comes from a hash of the migration files (names + contents),
so every release sharing a migration set shares the template. Clones are
`CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError, SchemaDrift
from harness.services.messages import first_line

from .base import BUILD_PREFIX, CLONE_PREFIX, TEMPLATE_PREFIX, Database, Server, connect, quote_ident
from .prisma_schema import parse_schema_file

Progress = Callable[[str], None]

# exactly what Prisma Migrate creates
PRISMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)
"""
_COMMENT_TAG = "litellm-harness template"


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path
    sql: bytes

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql).hexdigest()


def list_migrations(migrations_dir: Path) -> list[Migration]:
    """`<dir>/<name>/migration.sql` in name order (Prisma's order). Folder names may contain spaces."""
    migrations_dir = Path(migrations_dir)
    if not migrations_dir.is_dir():
        raise HarnessError(f"migrations directory {migrations_dir} does not exist")
    out = [
        Migration(d.name, d / "migration.sql", (d / "migration.sql").read_bytes())
        for d in sorted(migrations_dir.iterdir(), key=lambda p: p.name)
        if d.is_dir() and (d / "migration.sql").is_file()
    ]
    if not out:
        raise HarnessError(f"no <name>/migration.sql files in {migrations_dir}")
    return out


def schema_hash(migrations: list[Migration]) -> str:
    h = hashlib.sha256()
    for m in migrations:
        h.update(m.name.encode("utf-8") + b"\0" + m.checksum.encode() + b"\n")
    return h.hexdigest()


def template_name(migrations_dir: Path) -> str:
    return TEMPLATE_PREFIX + schema_hash(list_migrations(migrations_dir))[:12]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- drift check ----------------------------------------------------------------------------

def schema_drift(conn, schema_prisma: Path) -> tuple[list[str], list[str]]:
    """(missing tables, missing "table.column"s) of the connected database versus schema.prisma.

    A column the release does not know is fine (newer migrations than the release, the
    nearest-migrations path of releases before 1.65.1) unless it is NOT NULL without a default:
    the release's inserts into that table would fail, so it counts as drift too.
    """
    expected = parse_schema_file(schema_prisma).expected()
    rows = conn.execute(
        "SELECT table_name, column_name, is_nullable = 'NO' AND column_default IS NULL "
        "FROM information_schema.columns WHERE table_schema = current_schema()"
    ).fetchall()
    have: dict[str, set[str]] = {}
    required: set[str] = set()
    for table, column, is_required in rows:
        have.setdefault(table, set()).add(column)
        if is_required:
            required.add(f"{table}.{column}")
    missing_tables = sorted(t for t in expected if t not in have)
    missing_columns = sorted(
        f"{t}.{c}" for t, cols in expected.items() if t in have for c in cols if c not in have[t]
    )
    unknown_required = sorted(
        f"{t}.{c} (NOT NULL, no default, unknown to the release)"
        for t, cols in expected.items() if t in have for c in have[t] - set(cols) if f"{t}.{c}" in required
    )
    return missing_tables, missing_columns + unknown_required


def _drift_error(db: str, schema_prisma: Path, migrations_dir: Path, tables: list[str], columns: list[str]) -> SchemaDrift:
    items = [f"table {t}" for t in tables] + [f"column {c}" for c in columns]
    shown = ", ".join(items[:8]) + (f", and {len(items) - 8} more" if len(items) > 8 else "")
    return SchemaDrift(
        f"schema drift: the migrations in {migrations_dir} do not give what {schema_prisma} expects "
        f"({len(tables)} table(s), {len(columns)} column(s) missing in {db}): {shown}",
        hint="take migrations and schema.prisma from matching versions (litellm-proxy-extras floats within litellm's range)",
    )


def verify_schema(server: Server, dbname: str, schema_prisma: Path, migrations_dir: Path | str = "?") -> None:
    """Raise a one-line `HarnessError` listing what `schema_prisma` expects and `dbname` lacks."""
    with connect(server.url(dbname)) as conn:
        tables, columns = schema_drift(conn, schema_prisma)
    if tables or columns:
        raise _drift_error(dbname, schema_prisma, Path(migrations_dir), tables, columns)


# --- template -------------------------------------------------------------------------------

def _db_comment(conn, name: str) -> dict | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    if row is None:
        return None
    try:
        data = json.loads(row[0] or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) and data.get("tag") == _COMMENT_TAG else {}


def _set_comment(conn, name: str, data: dict) -> None:
    text = json.dumps({"tag": _COMMENT_TAG, **data}, sort_keys=True).replace("'", "''")
    conn.execute(f"COMMENT ON DATABASE {quote_ident(name)} IS '{text}'")


def _apply_migrations(server: Server, dbname: str, migrations: list[Migration], progress: Progress | None) -> None:
    """All migration files over ONE connection, each as one simple-protocol query, like Prisma.

    A file is sent whole: several statements run as one implicit transaction, and a file that is
    a single `CREATE INDEX CONCURRENTLY` runs outside a transaction block, as Prisma runs it.
    """
    import psycopg

    with connect(server.url(dbname)) as conn:
        conn.execute(PRISMA_MIGRATIONS_DDL)
        for i, m in enumerate(migrations, 1):
            started = time.time()
            try:
                conn.execute(m.sql.decode("utf-8"))  # no parameters: psycopg uses the simple protocol
            except psycopg.Error as exc:
                raise HarnessError(
                    f"migration {m.name!r} ({i}/{len(migrations)}) failed: {first_line(exc)}",
                    hint=f"see {m.path}",
                ) from None
            conn.execute(
                "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) "
                "VALUES (%s, %s, now(), %s, to_timestamp(%s), 1)",
                (str(uuid.uuid4()), m.checksum, m.name, started),
            )
            if progress and i % 50 == 0:
                progress(f"applied {i}/{len(migrations)} migrations")


def _lock_key(name: str) -> int:
    return int(hashlib.sha256(("litellm-harness:" + name).encode()).hexdigest()[:15], 16)


def ensure_template(
    server: Server,
    migrations_dir: Path,
    schema_prisma: Path,
    progress: Progress | None = None,
) -> str:
    """The name of a template database holding the schema of `migrations_dir`, built at most once.

    Safe across processes: an advisory lock serialises builders; the schema is built under a
    temporary name and renamed when complete, so a half-built template is never used (a leftover
    one from a killed builder is dropped and rebuilt). The result is checked against
    `schema_prisma` (every model's table and scalar column must exist); drift raises a
    `HarnessError`. A verified schema.prisma is remembered in the database's comment.
    """
    migrations_dir = Path(migrations_dir)
    schema_prisma = Path(schema_prisma)
    if not schema_prisma.is_file():
        raise HarnessError(f"schema.prisma not found at {schema_prisma}")
    migrations = list_migrations(migrations_dir)
    digest = schema_hash(migrations)
    name = TEMPLATE_PREFIX + digest[:12]
    building = BUILD_PREFIX + digest[:12]
    schema_sum = _file_hash(schema_prisma)

    # fast path: built and already verified against this schema.prisma
    with server.admin() as conn:
        meta = _db_comment(conn, name)
    if meta and meta.get("complete") and schema_sum in meta.get("verified", []):
        return name

    lock_conn = connect(server.url(server.maintenance_db))
    try:
        lock_conn.execute("SET statement_timeout = '15min'")
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (_lock_key(name),))
        meta = _db_comment(lock_conn, name)
        if meta is None:  # not built yet (or someone dropped it): build it now
            if _db_comment(lock_conn, building) is not None:
                if progress:
                    progress(f"dropping half-built template {building} left by an interrupted run")
                server.drop_database(building)
            if progress:
                progress(f"building template {name} from {len(migrations)} migrations in {migrations_dir}")
            t0 = time.monotonic()
            lock_conn.execute(f"CREATE DATABASE {quote_ident(building)} TEMPLATE template0 ENCODING 'UTF8'")
            try:
                _apply_migrations(server, building, migrations, progress)
                with connect(server.url(building)) as conn:
                    tables, columns = schema_drift(conn, schema_prisma)
                    conn.execute("VACUUM ANALYZE")
                verified = [] if (tables or columns) else [schema_sum]
                _set_comment(lock_conn, building, {
                    "complete": True, "migrations": len(migrations), "hash": digest,
                    "verified": verified, "built_seconds": round(time.monotonic() - t0, 2),
                })
                lock_conn.execute(f"ALTER DATABASE {quote_ident(building)} RENAME TO {quote_ident(name)}")
            except BaseException:
                try:
                    server.drop_database(building)
                except Exception:  # noqa: BLE001 - the next builder drops it
                    pass
                raise
            if progress:
                progress(f"built template {name} in {time.monotonic() - t0:.1f} s")
            if tables or columns:
                raise _drift_error(name, schema_prisma, migrations_dir, tables, columns)
            return name

        if not meta.get("complete"):
            raise HarnessError(f"database {name} exists but was not made by this harness's template builder",
                               hint=f"drop it (DROP DATABASE {name}) and run again")
        if schema_sum not in meta.get("verified", []):
            # same migrations, a schema.prisma not checked yet: check it against the template
            tables, columns = _verify_template(server, name, schema_prisma)
            if tables or columns:
                raise _drift_error(name, schema_prisma, migrations_dir, tables, columns)
            meta["verified"] = [*meta.get("verified", []), schema_sum]
            meta.pop("tag", None)
            _set_comment(lock_conn, name, meta)
        return name
    finally:
        try:
            lock_conn.execute("SELECT pg_advisory_unlock_all()")
        except Exception:  # noqa: BLE001
            pass
        lock_conn.close()


def _verify_template(server: Server, name: str, schema_prisma: Path) -> tuple[list[str], list[str]]:
    with connect(server.url(name)) as conn:
        return schema_drift(conn, schema_prisma)


# --- clones ---------------------------------------------------------------------------------

_LABEL_RE = re.compile(r"[^a-z0-9]+")


def clone_name(label: str = "run") -> str:
    """`lh_c_<label>_<pid>_<random>`: unique across parallel processes and threads; at most 63 bytes."""
    tail = f"_{os.getpid()}_{secrets.token_hex(4)}"
    clean = _LABEL_RE.sub("_", label.lower()).strip("_") or "run"
    return CLONE_PREFIX + clean[: 63 - len(CLONE_PREFIX) - len(tail)] + tail


def clone(server: Server, template: str, label: str = "run") -> Database:
    """A new database copied from `template` (file copy where the server supports it)."""
    import psycopg

    name = clone_name(label)
    strategy = " STRATEGY FILE_COPY" if server.version_num >= 150000 else ""
    sql = f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}{strategy}"
    deadline = time.monotonic() + 15
    delay = 0.01
    while True:
        try:
            with server.admin() as conn:
                conn.execute(sql)
            return Database(server, name)
        except psycopg.errors.ObjectInUse:
            # "source database is being accessed by other users": a short-lived check elsewhere
            if time.monotonic() > deadline:
                raise HarnessError(f"cannot clone {template}: other sessions stay connected to it",
                                   hint="nothing should connect to a template database") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        except psycopg.errors.InvalidCatalogName:
            raise HarnessError(f"template database {template} does not exist on {server.kind} server",
                               hint="call ensure_template() first") from None
        except psycopg.Error as exc:
            raise HarnessError(f"cannot clone {template} to {name}: {first_line(exc)}") from None


_RESET_SQL = """
DO $harness$
DECLARE
    rec record;
    dirty boolean;
    seq_used oid[];
    tables text := NULL;
BEGIN
    -- Only tables holding rows, or whose own sequences were used, need truncating: the others
    -- are already in their reset state. Files are replaced per truncated table, so skipping
    -- the untouched ones is what makes this fast on LiteLLM's 100-odd tables.
    SELECT coalesce(array_agg(d.refobjid), '{}') INTO seq_used
    FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND sc.relkind = 'S'
      AND sc.relnamespace = current_schema()::regnamespace
      AND CASE WHEN sc.relkind = 'S' THEN pg_sequence_last_value(sc.oid) END IS NOT NULL;
    FOR rec IN
        SELECT c.oid, n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> '_prisma_migrations'
        ORDER BY c.relname
    LOOP
        dirty := rec.oid = ANY (seq_used);
        IF NOT dirty THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', rec.nspname, rec.relname) INTO dirty;
        END IF;
        IF dirty THEN
            tables := concat_ws(', ', tables, format('%I.%I', rec.nspname, rec.relname));
        END IF;
    END LOOP;
    IF tables IS NOT NULL THEN
        EXECUTE 'TRUNCATE TABLE ' || tables || ' RESTART IDENTITY CASCADE';
    END IF;
END
$harness$
"""


def reset(database: Database, lock_timeout: str = "10s") -> None:
    """Empty every table of `database` except `_prisma_migrations`, in ONE TRUNCATE statement.

    One round trip: a DO block lists the tables that hold rows or used their sequences and
    truncates them together (RESTART IDENTITY CASCADE); untouched tables are already empty with
    fresh sequences, and leaving them out saves a file swap per table. Sequences restart. Waits at most `lock_timeout` for sessions (e.g. a live proxy) holding locks.
    """
    import psycopg

    try:
        with database.connect() as conn:
            conn.execute(f"SET lock_timeout = '{lock_timeout}'")
            conn.execute(_RESET_SQL)
    except psycopg.Error as exc:
        raise HarnessError(f"cannot reset database {database.name}: {first_line(exc)}") from None
