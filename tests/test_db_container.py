"""The `container` PostgreSQL provider against a real Docker engine, through testcontainers.

These tests need an engine that answers (DOCKER_HOST, tc.host or the default socket) and the
PostgreSQL image (HARNESS_PG_IMAGE, default postgres:16-alpine) present in it. On a machine
without a registry, `scripts/docker-engine.sh start` (as root) starts a private engine and
builds the image from Debian packages; `eval` its output first. Without an engine or image the
tests skip and say so. The no-engine tests at the end run everywhere: they point DOCKER_HOST at
a socket that does not exist.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.db import clone, ensure_template, list_migrations, probe_engine, start_server
from harness.db.container import pg_image
from harness.errors import HarnessError
from harness.services.docker import LABEL, LABEL_PID, image_present

REPO = Path(__file__).resolve().parents[1]
HINT = "start one with scripts/docker-engine.sh start (as root) and eval what it prints"

ENGINE = probe_engine()
IMAGE = pg_image()


def _image_in_engine() -> tuple[bool, str]:
    if not ENGINE.ok:
        return False, f"no Docker engine at {ENGINE.host} ({ENGINE.detail}): {HINT}"
    import docker

    client = docker.DockerClient(base_url=ENGINE.host, timeout=10)
    try:
        if image_present(client, IMAGE):
            return True, ""
    finally:
        client.close()
    return False, (f"image {IMAGE} is not present in the engine at {ENGINE.host} (nothing is pulled here): "
                   "scripts/docker-engine.sh start builds one and prints HARNESS_PG_IMAGE")


READY, WHY_NOT = _image_in_engine()
needs_container = pytest.mark.skipif(not READY, reason=WHY_NOT)
pytestmark = pytest.mark.container


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_DB", "HARNESS_DB_URL")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _client():
    import docker

    return docker.DockerClient(base_url=ENGINE.host, timeout=30)


def _gone(cid: str, timeout: float = 10.0) -> bool:
    import docker

    client = _client()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.containers.get(cid)
            except docker.errors.NotFound:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
    finally:
        client.close()


def _running(cid: str) -> bool:
    client = _client()
    try:
        return client.containers.get(cid).status == "running"
    finally:
        client.close()


# --- a real container ----------------------------------------------------------------------

@needs_container
def test_container_server_runs_postgres_on_loopback_and_is_removed_by_stop():
    import psycopg

    t0 = time.monotonic()
    server = start_server("container")
    ready_s = time.monotonic() - t0
    try:
        print(f"\ncontainer start to ready {ready_s:.2f} s; {server.reason}")
        assert server.kind == "container" and server.image == IMAGE
        url = server.url("postgres")
        assert url.split("@")[1].startswith("127.0.0.1:")
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
        assert version.split()[0] == server.version and int(server.version.split(".")[0]) >= 15
        assert f"PostgreSQL {server.version}" in server.reason
        cid = server.container_id
        client = _client()
        try:
            ctr = client.containers.get(cid)
            assert ctr.labels[LABEL] == "db" and ctr.labels[LABEL_PID] == str(os.getpid())
            # published on the loopback only
            bindings = ctr.attrs["HostConfig"]["PortBindings"]["5432/tcp"]
            assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        finally:
            client.close()
        assert not server.ryuk or os.environ.get("TESTCONTAINERS_RYUK_DISABLED") != "true"
    finally:
        server.stop()
    assert _gone(cid, timeout=0.5)  # stop() removes it, not some later reaper
    server.stop()  # idempotent


@needs_container
def test_image_honours_postgres_user_password_and_db():
    """The contract testcontainers' PostgresContainer relies on (psql readiness check included)."""
    import psycopg
    from testcontainers.community.postgres import PostgresContainer

    password = "p'w \"x"  # quotes and a space: the entrypoint's and the readiness check's quoting
    with PostgresContainer(IMAGE, username="alice", password=password, dbname="shop", driver=None) as pg:
        where = {"host": pg.get_container_host_ip(), "port": int(pg.get_exposed_port(5432)), "connect_timeout": 5}
        with psycopg.connect(user="alice", password=password, dbname="shop", **where) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("alice", "shop")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(user="alice", password="nope", dbname="shop", **where)


@needs_container
@pytest.mark.slow
def test_template_and_clone_with_litellm_migrations(release_1823):
    migrations, schema = release_1823.migrations_dir, release_1823.schema_prisma
    with start_server("container") as server:
        t0 = time.monotonic()
        tpl = ensure_template(server, migrations, schema)
        build_s = time.monotonic() - t0
        t0 = time.monotonic()
        again = ensure_template(server, migrations, schema)
        reuse_s = time.monotonic() - t0
        assert again == tpl
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            db = clone(server, tpl, "ctr")
            times.append(time.monotonic() - t0)
            try:
                with db.connect() as conn:
                    conn.execute("""INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ('b', 'x', 'x')""")
                    n = conn.execute("SELECT count(*) FROM _prisma_migrations").fetchone()[0]
                    assert n == len(list_migrations(migrations))
            finally:
                db.drop()
            assert db.name not in server.list_databases()
        times.sort()
        print(f"\n{len(list_migrations(migrations))} LiteLLM {release_1823.version} migrations -> {tpl}: "
              f"built in {build_s:.2f} s, reused in {reuse_s * 1000:.0f} ms; clone median {times[2] * 1000:.0f} ms "
              f"(PostgreSQL {server.version} in {server.image})")


@needs_container
def test_auto_picks_the_container_when_the_engine_answers_and_the_image_is_present(monkeypatch):
    monkeypatch.delenv("HARNESS_DB", raising=False)
    monkeypatch.delenv("HARNESS_DB_URL", raising=False)
    with start_server() as server:
        print("\n" + server.reason)
        assert server.kind == "container"
        assert server.reason.startswith(f"Docker engine answered at {ENGINE.host}")
        assert f"using container {IMAGE}" in server.reason


@needs_container
def test_ryuk_is_disabled_when_its_image_is_absent():
    """Without TESTCONTAINERS_RYUK_DISABLED, testcontainers would try to pull its reaper image."""
    from testcontainers.core.config import testcontainers_config as tc_config

    client = _client()
    try:
        if image_present(client, tc_config.ryuk_image):
            pytest.skip(f"the Ryuk image {tc_config.ryuk_image} is present in this engine: nothing to disable")
    finally:
        client.close()
    code = textwrap.dedent("""
        import json, os
        from harness.db import start_server
        with start_server("container") as srv:
            with srv.connect() as conn:
                conn.execute("SELECT 1")
            print(json.dumps({"ryuk": srv.ryuk, "env": os.environ.get("TESTCONTAINERS_RYUK_DISABLED"), "cid": srv.container_id}))
    """)
    env = _env()
    env.pop("TESTCONTAINERS_RYUK_DISABLED", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["ryuk"] is False and info["env"] == "true"
    assert _gone(info["cid"], timeout=0.5)


_SLEEPER = textwrap.dedent("""
    import time
    from harness.db import start_server
    srv = start_server("container")
    print(srv.container_id, flush=True)
    time.sleep(600)
""")


@needs_container
def test_sigkilled_run_leaves_a_container_that_the_next_start_removes():
    proc = subprocess.Popen([sys.executable, "-c", _SLEEPER], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        cid = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert cid and _running(cid)  # SIGKILL runs no cleanup
    with start_server("container") as server:
        print("\n" + "\n".join(server.cleaned))
        assert any(cid[:12] in line and str(proc.pid) in line for line in server.cleaned)
        assert _gone(cid, timeout=0.5)
        mine = server.container_id
    assert _gone(mine, timeout=0.5)


@needs_container
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_and_ctrl_c_remove_the_container(sig):
    proc = subprocess.Popen([sys.executable, "-c", _SLEEPER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    cid = proc.stdout.readline().strip()
    assert cid and _running(cid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # SIGTERM: the harness's handler exits 128+15 through atexit; Ctrl-C: KeyboardInterrupt,
    # atexit, then Python dies of SIGINT as shells expect (-2)
    expected = 128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGINT
    assert proc.returncode == expected, err
    assert _gone(cid, timeout=0.5)


@needs_container
def test_explicit_container_with_an_absent_image_is_one_line_error(monkeypatch):
    monkeypatch.setenv("HARNESS_PG_IMAGE", "litellm-harness/absent-image:never")
    with pytest.raises(HarnessError) as err:
        start_server("container")
    msg = err.value.message
    print(f"\n{err.value}")
    assert "\n" not in str(err.value)
    assert msg.startswith("PostgreSQL image litellm-harness/absent-image:never is not present locally and could not be pulled")
    assert "scripts/docker-engine.sh start" in err.value.hint and "--db embedded" in err.value.hint


# --- no engine (always runs: DOCKER_HOST points at a socket that does not exist) -----------

@pytest.fixture()
def no_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.testcontainers.properties, no docker context
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine/docker.sock")
    monkeypatch.delenv("HARNESS_DB", raising=False)
    monkeypatch.delenv("HARNESS_DB_URL", raising=False)


def test_without_engine_auto_picks_embedded_within_2s_and_says_why(no_engine):
    t0 = time.monotonic()
    probe = probe_engine()
    probe_s = time.monotonic() - t0
    assert not probe.ok and probe.detail == "socket missing" and probe_s < 2
    with start_server() as server:
        print(f"\nengine check {probe_s * 1000:.1f} ms; {server.reason}")
        assert server.kind == "embedded"
        assert server.reason.startswith(f"no Docker engine answered at {probe.host} (socket missing)")
        assert f"using embedded PostgreSQL {server.version}" in server.reason


def test_without_engine_explicit_container_is_one_line_error_with_a_hint(no_engine):
    t0 = time.monotonic()
    with pytest.raises(HarnessError) as err:
        start_server("container")
    took = time.monotonic() - t0
    print(f"\n{err.value} ({took * 1000:.0f} ms)")
    assert "\n" not in str(err.value) and took < 2
    assert err.value.message.startswith("--db container: no Docker engine answered at unix://")
    assert "scripts/docker-engine.sh start" in err.value.hint and "--db embedded" in err.value.hint
