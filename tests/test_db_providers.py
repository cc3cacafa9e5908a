"""PostgreSQL providers on real servers: auto detection, embedded, url, container (when an engine runs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from harness.db import clone, ensure_template, probe_engine, redact_url, start_server
from harness.db.base import make_url
from harness.db.embedded import pg_root
from harness.errors import HarnessError
from harness.services.docker import host_is_local, resolve_docker_host

REPO = Path(__file__).resolve().parents[1]
ENGINE = probe_engine()
needs_engine = pytest.mark.skipif(not ENGINE.ok, reason=f"needs a Docker engine: {ENGINE.describe()}")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_DB", "HARNESS_DB_URL")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    from harness.db.embedded import package_install_dir

    return str(package_install_dir(16) / "bin" / "psql")


# --- pure logic: docker host resolution -----------------------------------------------------

def test_docker_host_resolution_order(tmp_path, monkeypatch):
    import harness.services.docker as docker

    monkeypatch.setattr(docker, "_docker_context_host", lambda: None)
    props = tmp_path / ".testcontainers.properties"
    props.write_text("ryuk.disabled=true\ntc.host = tcp://10.0.0.5:2375\n")
    assert resolve_docker_host({"DOCKER_HOST": "unix:///x.sock"}, props) == ("tcp://10.0.0.5:2375", "tc.host in ~/.testcontainers.properties")
    none = tmp_path / "missing.properties"
    assert resolve_docker_host({"DOCKER_HOST": "unix:///x.sock"}, none) == ("unix:///x.sock", "DOCKER_HOST")
    assert resolve_docker_host({}, none) == ("unix:///var/run/docker.sock", "default socket")
    monkeypatch.setattr(docker, "_docker_context_host", lambda: "ssh://me@box")
    assert resolve_docker_host({}, none) == ("ssh://me@box", "docker context")
    assert host_is_local("unix:///var/run/docker.sock") and host_is_local("tcp://127.0.0.1:2375")
    assert not host_is_local("tcp://10.0.0.5:2375")


def test_probe_of_a_missing_socket_is_immediate(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    t0 = time.monotonic()
    probe = probe_engine()
    took = time.monotonic() - t0
    print(f"\nprobe: {probe.describe()} in {took * 1000:.1f} ms")
    assert not probe.ok and probe.detail == "socket missing" and took < 2.5


def test_probe_of_a_silent_socket_gives_up_after_about_2s(tmp_path, monkeypatch):
    import socket

    path = tempfile.mktemp(prefix="lh-silent-", suffix=".sock", dir="/tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(5)  # accepts connections, never answers
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        t0 = time.monotonic()
        probe = probe_engine()
        took = time.monotonic() - t0
        print(f"\nprobe: {probe.describe()} in {took:.2f} s")
        assert not probe.ok and took < 4
    finally:
        sock.close()
        os.unlink(path)


def test_urls_redact_passwords():
    url = make_url("postgres", "s3cr/et", "127.0.0.1", 5432, "db")
    assert url == "postgresql://postgres:s3cr%2Fet@127.0.0.1:5432/db"
    assert redact_url(url) == "postgresql://postgres:***@127.0.0.1:5432/db"
    assert redact_url("postgresql://u@/db?host=/tmp") == "postgresql://u@/db?host=/tmp"


# --- auto / explicit selection --------------------------------------------------------------

@pytest.fixture()
def no_engine(monkeypatch, tmp_path):
    """No Docker engine, whether or not one runs on this machine: a socket path that does not exist."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing/docker.sock")


def test_auto_without_engine_picks_embedded_and_says_why(monkeypatch, no_engine):
    monkeypatch.delenv("HARNESS_DB", raising=False)
    monkeypatch.delenv("HARNESS_DB_URL", raising=False)
    t0 = time.monotonic()
    probe_engine()
    probe_s = time.monotonic() - t0
    t0 = time.monotonic()
    with start_server() as server:
        total = time.monotonic() - t0
        print(f"\nengine check {probe_s * 1000:.1f} ms; auto start {total:.2f} s; reason: {server.reason}")
        assert server.kind == "embedded"
        assert server.reason.startswith("no Docker engine answered at ")
        assert f"using embedded PostgreSQL {server.version}" in server.reason
        assert server.version.startswith("16.")
        assert probe_s < 2.5  # the contract is "at most 2 s"; generous bound for a busy machine
        assert total < 60


def test_explicit_container_without_engine_is_one_line_error(monkeypatch, no_engine):
    monkeypatch.delenv("HARNESS_DB", raising=False)
    t0 = time.monotonic()
    with pytest.raises(HarnessError) as err:
        start_server("container")
    msg = str(err.value)
    print(f"\n{msg} ({(time.monotonic() - t0) * 1000:.0f} ms)")
    assert "\n" not in msg and "no Docker engine answered" in msg
    assert "start dockerd" in err.value.hint and "--db embedded" in err.value.hint


def test_kind_from_environment_and_bad_kind(monkeypatch):
    monkeypatch.setenv("HARNESS_DB", "url")
    monkeypatch.delenv("HARNESS_DB_URL", raising=False)
    with pytest.raises(HarnessError, match="needs a connection URL"):
        start_server()
    with pytest.raises(HarnessError, match="unknown database kind"):
        start_server("mysql")


# --- embedded -------------------------------------------------------------------------------

def test_embedded_url_works_with_psycopg_and_psql():
    with start_server("embedded") as server:
        url = server.url("postgres")
        assert url.startswith("postgresql://postgres:") and "@127.0.0.1:" in url
        assert server._password not in repr(server)  # noqa: SLF001
        with server.connect() as conn:
            assert conn.execute("SELECT current_setting('fsync')").fetchone() == ("off",)
        res = subprocess.run([_psql(), url, "-Atc", "SELECT 6 * 7"], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0 and res.stdout.strip() == "42", res.stderr
        data = server.data
        assert data is not None and data.is_relative_to(pg_root())
        pid = server.pid
    assert server.data is None and not data.exists()
    assert not Path(f"/proc/{pid}").exists() or b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def _node_pg() -> tuple[str, str] | None:
    """(node, NODE_PATH) where `require('pg')` works: the engine's node_modules or the harness cache."""
    node = shutil.which("node")
    if not node:
        return None
    candidates = [REPO / "harness" / "engine" / "node" / "node_modules"]
    for root in (Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "litellm-harness")) / "engine",):
        if root.is_dir():
            candidates += sorted(p / "node_modules" for p in root.iterdir())
    for nm in candidates:
        if (nm / "pg" / "package.json").is_file():
            return node, str(nm)
    return None


def test_embedded_url_works_with_node_pg():
    found = _node_pg()
    if found is None:
        pytest.skip("no node with the `pg` package (harness/engine installs it)")
    node, node_path = found
    js = ("const {Client}=require('pg');(async()=>{const c=new Client({connectionString:process.argv[1]});"
          "await c.connect();const r=await c.query('SELECT 6*7 AS x');console.log(r.rows[0].x);await c.end();})()"
          ".catch(e=>{console.error(e.message);process.exit(1)})")
    with start_server("embedded") as server:
        res = subprocess.run([node, "-e", js, server.url("postgres")], capture_output=True, text=True,
                             env={**os.environ, "NODE_PATH": node_path}, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "42", res.stderr


def test_parallel_processes_get_their_own_embedded_servers():
    code = textwrap.dedent("""
        import json
        from harness.db import start_server
        with start_server("embedded") as srv:
            with srv.connect() as conn:
                port = conn.execute("SELECT current_setting('port')::int").fetchone()[0]
            print(json.dumps({"port": port, "dir": str(srv.dir), "pid": srv.pid}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    infos = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert len({i["port"] for i in infos}) == 3 and len({i["dir"] for i in infos}) == 3
    for info in infos:
        assert not Path(info["dir"]).exists()  # each stopped its own server at exit (atexit / context)


def _killed_harness(kill_watchdog: bool) -> dict:
    """Start an embedded server in a child harness process, then SIGKILL it (and, when asked, its
    watchdog first). Returns the server's pid and dir, and when the harness was killed."""
    code = textwrap.dedent("""
        import json, sys, time
        from harness.db import start_server
        srv = start_server("embedded")
        print(json.dumps({"pid": srv.pid, "dir": str(srv.dir), "url": srv.url("postgres"),
                          "watchdog": srv._process.watchdog.process.pid}), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        info = json.loads(proc.stdout.readline())
        if kill_watchdog:
            os.kill(info["watchdog"], signal.SIGKILL)
    finally:
        proc.send_signal(signal.SIGKILL)
        info["killed_at"] = time.monotonic()
        proc.wait()
    return info


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie of init for a moment
    except OSError:
        return True


def test_killed_harness_leaves_no_server_behind():
    """SIGKILL runs no handler of the harness: its watchdog stops the server within moments."""
    info = _killed_harness(kill_watchdog=False)
    deadline = info["killed_at"] + 15
    while not _gone(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    seconds = time.monotonic() - info["killed_at"]
    print(f"\nSIGKILL of the harness -> PostgreSQL (pid {info['pid']}) gone after {seconds:.2f}s")
    assert _gone(info["pid"]), f"PostgreSQL still runs {seconds:.1f}s after its harness was killed"
    while (Path(info["dir"]).exists() or not _gone(info["watchdog"])) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not Path(info["dir"]).exists()
    assert _gone(info["watchdog"]), "the watchdog did not exit after its work"


def test_killed_harness_and_watchdog_leave_a_server_that_the_next_start_stops():
    """The second line of defence: with the watchdog killed too, the next start cleans up."""
    info = _killed_harness(kill_watchdog=True)
    pg_pid = info["pid"]
    assert Path(f"/proc/{pg_pid}").exists()
    import psycopg

    with psycopg.connect(info["url"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    with start_server("embedded") as server:
        print("\n" + "\n".join(server.cleaned))
        assert any(str(pg_pid) in line for line in server.cleaned)
        assert not Path(info["dir"]).exists()
        deadline = time.monotonic() + 5
        while not _gone(pg_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pg_pid)


def test_sigterm_stops_the_embedded_server():
    code = textwrap.dedent("""
        import json, time
        from harness.db import start_server
        srv = start_server("embedded")
        print(json.dumps({"pid": srv.pid, "dir": str(srv.dir)}), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    info = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert not Path(info["dir"]).exists()
    assert not Path(f"/proc/{info['pid']}/cmdline").exists() or not Path(f"/proc/{info['pid']}/cmdline").read_bytes()


def _others_can_reach(path: Path) -> bool:
    """Every folder above `path` can be searched by other users."""
    return path.exists() and all(parent.stat().st_mode & 0o001 for parent in path.parents)


def _venv_for(user_home: Path) -> Path:
    """A virtual environment a normal user can run: this checkout installed (not editable: the
    checkout may sit in root's home) with uv into a world-readable folder, on Debian's python
    when ours lives where the user cannot read (pyenv under /root)."""
    venv = user_home / "venv"
    usable = [p for p in (sys.executable, "/usr/bin/python3") if _others_can_reach(Path(p).resolve())]
    if not usable:
        pytest.skip(f"no Python here that another user can run: {sys.executable} sits in a private folder "
                    "and /usr/bin/python3 is missing")
    python = usable[0]
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "--quiet", "--python", python, str(venv)], check=True, timeout=300)
    subprocess.run([*uv, "pip", "install", "--quiet", "--link-mode=copy", "--python", str(venv / "bin" / "python"),
                    str(Path(__file__).resolve().parents[1])], check=True, timeout=600)
    for path in [user_home, *user_home.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    user_home.chmod(0o777)  # the user's home: its runtime dir and temp files go there
    return venv / "bin" / "python"


def test_embedded_as_a_normal_user(tmp_path):
    if os.geteuid() != 0:
        with start_server("embedded") as server:  # we are the normal user
            with server.connect() as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        return
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root and setpriv is missing: cannot test as a normal user")
    runtime = Path(tempfile.mkdtemp(prefix="lh-nobody-"))
    try:
        python = _venv_for(runtime)
        code = ("from harness.db import start_server\n"
                "import os\n"
                "with start_server('embedded') as s:\n"
                "    c = s.connect(); print(os.getuid(), s.version, c.execute('select 1').fetchone()[0]); c.close()\n")
        env = _env(HOME=str(runtime), HARNESS_RUNTIME_DIR=str(runtime / "rt"), TMPDIR=str(runtime))
        env.pop("PYTHONPATH", None)
        res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(python), "-c", code],
                             capture_output=True, text=True, env=env, timeout=120, cwd=runtime)
        assert res.returncode == 0, res.stderr
        uid, version, one = res.stdout.split()
        assert uid == "65534" and version.startswith("16.") and one == "1"
        assert not [p for p in (runtime / "rt" / "pg").iterdir() if p.name[0].isdigit()]
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


# --- url ------------------------------------------------------------------------------------

def test_url_provider_uses_only_its_own_databases(tmp_path, monkeypatch):
    mdir = tmp_path / "migrations" / "20240101000000_init"
    mdir.mkdir(parents=True)
    (mdir / "migration.sql").write_text('CREATE TABLE "Thing" ("id" TEXT PRIMARY KEY, "n" INTEGER);')
    schema = tmp_path / "schema.prisma"
    schema.write_text("model Thing {\n  id String @id\n  n Int?\n}\n")

    with start_server("embedded") as host:
        with host.admin() as conn:
            conn.execute("CREATE DATABASE app_prod")
        with host.connect("app_prod") as conn:
            conn.execute("CREATE TABLE customers (id int); INSERT INTO customers VALUES (1), (2)")
        before = set(_all_dbs(host))

        monkeypatch.setenv("HARNESS_DB", "url")
        monkeypatch.setenv("HARNESS_DB_URL", host.url("postgres"))
        with start_server() as server:
            assert server.kind == "url" and server.version == host.version
            assert ":***@" in server.reason and host._password not in server.reason  # noqa: SLF001
            tpl = ensure_template(server, tmp_path / "migrations", schema)
            db = clone(server, tpl, "url")
            with db.connect() as conn:
                conn.execute("""INSERT INTO "Thing" VALUES ('a', 1)""")
            db.drop()
            with pytest.raises(HarnessError, match="refusing to drop"):
                server.drop_database("app_prod")
            ours = set(_all_dbs(server)) - before
            assert ours == {tpl} and all(d.startswith("lh_") for d in ours)
        with host.connect("app_prod") as conn:
            assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)
        assert before <= set(_all_dbs(host))


def _all_dbs(server) -> list[str]:
    with server.admin() as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]


def test_url_provider_reports_bad_url_in_one_line():
    with pytest.raises(HarnessError) as err:
        start_server("url", url="postgresql://nobody:topsecret@127.0.0.1:1/postgres")
    msg = str(err.value)
    assert "\n" not in msg and "topsecret" not in msg and ":***@" in msg


# --- container ------------------------------------------------------------------------------

@needs_engine
@pytest.mark.container
def test_container_provider_runs_postgres_on_loopback_and_removes_it():
    import docker

    with start_server("container") as server:
        print("\n" + server.reason)
        assert server.kind == "container" and server.url("postgres").split("@")[1].startswith("127.0.0.1:")
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        cid = server.container_id
    client = docker.DockerClient(base_url=ENGINE.host)
    try:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(cid)
    finally:
        client.close()


@needs_engine
@pytest.mark.container
def test_container_leftover_of_a_killed_run_is_removed():
    import docker

    code = textwrap.dedent("""
        import time
        from harness.db import start_server
        srv = start_server("container")
        print(srv.container_id, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        cid = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with start_server("container") as server:
        assert any(cid[:12] in line for line in server.cleaned)
    client = docker.DockerClient(base_url=ENGINE.host)
    try:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(cid)
    finally:
        client.close()
