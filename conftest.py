"""Shared fixtures for the harness's own tests: a real PostgreSQL server, and LiteLLM 1.82.3's
environment and database. The scenario-file plugin itself is `harness.pytest_plugin` (loaded
through its entry point once the project is installed)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    # the suite's own runs import LiteLLM themselves whatever warm daemon the developer has running
    # (tests/test_daemon*.py ask for one explicitly); HARNESS_DAEMON=use in the environment keeps it
    os.environ.setdefault("HARNESS_DAEMON", "off")


@pytest.fixture(scope="session")
def pg_server(request):
    """One PostgreSQL server for the session, chosen like the CLI does (--db / HARNESS_DB)."""
    from harness import options
    from harness.db import start_server

    kind = options.db_choice(request.config.getoption("db", default=None))
    with start_server(kind, request.config.getoption("db_url", default=None)) as server:
        yield server


@pytest.fixture(scope="session")
def litellm_1823(pg_server):
    """(release env, template database) for LiteLLM 1.82.3, with the extras matching its schema."""
    from harness.db import ensure_template
    from harness.releases import ensure_release
    from harness.releases.extras import matching_template

    release = ensure_release("1.82.3")
    return matching_template(release, lambda migrations: ensure_template(pg_server, migrations, release.schema_prisma))


@pytest.fixture(scope="session")
def release_1823(litellm_1823):
    return litellm_1823[0]


@pytest.fixture()
def database_1823(pg_server, litellm_1823):
    """A fresh clone of 1.82.3's schema, dropped after the test."""
    from harness.db import clone

    database = clone(pg_server, litellm_1823[1], label="test")
    try:
        yield database
    finally:
        database.drop()


class _FakeServer:
    """A PostgreSQL server that is never started, for tests of the matrix's own bookkeeping."""

    kind, version, reason = "embedded", "16.14", "fake"

    def url(self, db):
        return f"postgresql://postgres:pw-123456@127.0.0.1:1/{db}"

    def stop(self):
        self.stopped = True


@pytest.fixture()
def fake_pg_server(monkeypatch):
    """`harness.db.start_server` returns a server that is never started (its URL has a password to redact)."""
    server = _FakeServer()
    monkeypatch.setattr("harness.db.start_server", lambda kind, url=None: server)
    return server
