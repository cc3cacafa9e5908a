"""PostgreSQL for the harness: providers (`container`, `embedded`, `url`), templates, clones.

    server = start_server()                       # HARNESS_DB=auto|container|embedded|url
    tpl = ensure_template(server, migrations_dir, schema_prisma)
    db = clone(server, tpl, "scenario")           # db.url -> postgresql://...
    ...; reset(db); ...; db.drop(); server.stop()

`auto` uses `HARNESS_DB_URL` when set, else a container when a Docker engine answers (and the
image is present locally), else embedded PostgreSQL from PyPI (harness.services.providers).
A provider is a module with `start(choice)` and a line in `PROVIDERS`.
"""

from __future__ import annotations

from harness.services.docker import probe_engine
from harness.services.messages import redact_url
from harness.services.providers import Plan, Service, resolve, select

from . import container, embedded, urlserver
from .base import Database, Server
from .container import ContainerServer
from .embedded import EmbeddedServer
from .template import clone, ensure_template, list_migrations, reset, schema_hash, template_name, verify_schema
from .urlserver import LeasedServer, UrlServer

PROVIDERS = {"container": container.start, "embedded": embedded.start, "url": urlserver.start}
POSTGRESQL = Service(name="PostgreSQL", noun="database", option="--db", variable="HARNESS_DB",
                     url_noun="connection URL", url_example="postgresql://...", image=container.pg_image,
                     providers=PROVIDERS)
KINDS = POSTGRESQL.kinds

__all__ = [
    "KINDS", "Server", "Database", "ContainerServer", "EmbeddedServer", "UrlServer", "LeasedServer",
    "start_server", "server_plan", "ensure_template", "clone", "reset", "verify_schema", "template_name",
    "list_migrations", "schema_hash", "probe_engine", "redact_url",
]


def start_server(kind: str | None = "auto", url: str | None = None) -> Server:
    """Start (or attach to) a PostgreSQL server. Stop it with `stop()` or use it as a context manager.

    `kind` comes from the argument, else env `HARNESS_DB` (default auto); `url` from the
    argument, else env `HARNESS_DB_URL`.
    """
    return select(POSTGRESQL, kind, url)


def server_plan(kind: str | None = "auto", url: str | None = None) -> Plan:
    """Which server `start_server(kind, url)` would start here, and why, starting nothing."""
    return resolve(POSTGRESQL, kind, url)
