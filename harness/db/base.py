"""What every PostgreSQL provider shares: URLs, the admin connection, `Database` handles."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

from harness.errors import HarnessError
from harness.services.messages import first_line, redact_url

#: Every database the harness creates starts with this; nothing else is ever dropped.
PREFIX = "lh_"
TEMPLATE_PREFIX = "lh_tpl_"
BUILD_PREFIX = "lh_tplbuild_"
CLONE_PREFIX = "lh_c_"

_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def replace_dbname(url: str, dbname: str) -> str:
    """The same server URL (user, password, host, query such as `?host=/socket/dir`) for `dbname`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


def make_url(user: str, password: str | None, host: str, port: int, dbname: str) -> str:
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}"


def quote_ident(name: str) -> str:
    """A double-quoted identifier (names here are generated, but quote anyway)."""
    return '"' + name.replace('"', '""') + '"'


def connect(url: str, *, autocommit: bool = True, timeout: float = 10.0):
    """A psycopg connection; connection problems become one-line `HarnessError`s."""
    import psycopg

    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.OperationalError as exc:
        raise HarnessError(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {first_line(exc)}",
            hint="check that the server runs and the URL (user, password, database) is right",
        ) from None


class Server:
    """One running PostgreSQL server (the `harness.db.Server` contract).

    Attributes: `kind` ("container" | "embedded" | "url"), `version` (e.g. "16.14"),
    `reason` (why this provider was chosen), `maintenance_db` (where admin statements run).
    `url(dbname)` gives a `postgresql://` URL usable by psycopg, psql and Prisma/node-pg.
    """

    kind: str = "?"
    version: str = ""
    version_num: int = 0
    reason: str = ""
    maintenance_db: str = "postgres"

    def __init__(self) -> None:
        self._admin_conn = None
        self._admin_lock = threading.Lock()
        self._stopped = False

    # --- contract -----------------------------------------------------------------------
    def url(self, dbname: str) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        """Close the admin connection and stop (or detach from) the server; idempotent."""
        self._close_admin()
        self._stopped = True

    # --- helpers ------------------------------------------------------------------------
    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        try:
            where = redact_url(self.url(self.maintenance_db))
        except Exception:  # noqa: BLE001 - a repr must never fail
            where = "?"
        return f"<{type(self).__name__} kind={self.kind} version={self.version} url={where}>"

    def connect(self, dbname: str | None = None, *, autocommit: bool = True):
        """A new psycopg connection to `dbname` (default: the maintenance database)."""
        return connect(self.url(dbname or self.maintenance_db), autocommit=autocommit)

    @contextmanager
    def admin(self) -> Iterator[object]:
        """The server's cached autocommit connection to the maintenance database (one user at a time)."""
        with self._admin_lock:
            conn = self._admin_conn
            if conn is None or conn.closed or conn.broken:
                conn = self._admin_conn = self.connect()
            try:
                yield conn
            except Exception:
                if conn.broken:
                    self._admin_conn = None
                raise

    def _close_admin(self) -> None:
        with self._admin_lock:
            if self._admin_conn is not None:
                try:
                    self._admin_conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self._admin_conn = None

    def _read_version(self) -> None:
        with self.admin() as conn:
            row = conn.execute("SELECT current_setting('server_version'), current_setting('server_version_num')::int").fetchone()
        self.version = str(row[0]).split()[0]
        self.version_num = int(row[1])

    def list_databases(self, prefix: str = PREFIX) -> list[str]:
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname", (prefix,)
            ).fetchall()
        return [r[0] for r in rows]

    def drop_database(self, name: str) -> None:
        """Drop one of the harness's own databases (refuses anything not prefixed `lh_`)."""
        if not name.startswith(PREFIX) or not _IDENT_RE.match(name):
            raise HarnessError(f"refusing to drop database {name!r}: not created by the harness ({PREFIX}...)")
        with self.admin() as conn:
            # Backends of connections the caller just closed take a moment to exit, and DROP
            # DATABASE re-checks for them only every 100 ms: wait for them in small steps first
            # (at most ~100 ms; live sessions are then terminated by FORCE).
            deadline = time.monotonic() + 0.1
            while conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid())", (name,)
            ).fetchone()[0] and time.monotonic() < deadline:
                time.sleep(0.003)
            if self.version_num >= 130000:
                conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
            else:  # pragma: no cover - PostgreSQL < 13
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")


@dataclass
class Database:
    """One database on a server, normally a clone of a template. `drop()` is idempotent."""

    server: Server
    name: str
    dropped: bool = field(default=False, compare=False)

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self, *, autocommit: bool = True):
        return self.server.connect(self.name, autocommit=autocommit)

    def drop(self) -> None:
        if self.dropped:
            return
        self.server.drop_database(self.name)
        self.dropped = True

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc_info) -> None:
        self.drop()

    def __repr__(self) -> str:
        try:
            where = redact_url(self.url)
        except Exception:  # noqa: BLE001
            where = "?"
        return f"Database(name={self.name!r}, url={where!r})"
