"""The warm daemon's keying and protocol, with a stand-in zygote (tests/daemon_fake/agent.py, no
LiteLLM): hand-over of the pipes, nothing left after a client or the daemon is killed, never stale."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.errors import HarnessError
from harness.proxy import daemon
from test_cleanup import processes_with

ROOT = Path(__file__).resolve().parents[1]
FAKE_AGENT = Path(__file__).parent / "daemon_fake" / "agent.py"


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """A private runtime dir (so a private daemon), a release stand-in and its fake agent."""
    marker = f"lh-daemon-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("HARNESS_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("HARNESS_TEST_MARKER", marker)
    monkeypatch.delenv("HARNESS_DAEMON", raising=False)
    root = tmp_path / "env"
    root.mkdir()
    (root / "harness-release.json").write_text("{}")
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    shutil.copy(FAKE_AGENT, agent_dir / "agent.py")
    release = SimpleNamespace(version="9.9.9", python=Path(sys.executable), root=root)
    world = SimpleNamespace(marker=marker, release=release, agent=agent_dir / "agent.py", tmp=tmp_path,
                            env=dict(os.environ))
    yield world
    daemon.stop()
    assert wait_gone(world.marker, 5) == []


def wait_gone(marker: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def wait_ready(count: int = 1, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = daemon.status()
        if info and sum(s["state"] == "ready" for s in info["spares"]) >= count:
            return info
        time.sleep(0.05)
    raise AssertionError(f"no ready spare: {daemon.status()}")


def take(world, progress=None):
    return daemon.take(world.release, world.env, progress or (lambda _m: None), timeout=10, agent=world.agent)


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not any(running(p) for p in pids)


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


# -- keying (no daemon) -------------------------------------------------------------------------


def test_key_ignores_the_shell_but_not_the_environment_release_or_agent(world) -> None:
    spec = daemon.spec_for(world.release, world.env, world.agent)
    key = daemon.fingerprint(spec)
    assert daemon.fingerprint({**spec, "env": {**world.env, "PWD": "/elsewhere", "SHLVL": "9"}}) == key
    assert daemon.fingerprint({**spec, "env": {**world.env, "LITELLM_LOG": "DEBUG"}}) != key
    assert daemon.fingerprint({**spec, "python": "/usr/bin/python3.99"}) != key
    (world.release.root / "harness-release.json").write_text('{"rebuilt": true}')
    assert daemon.fingerprint(spec) != key
    key = daemon.fingerprint(spec)
    world.agent.write_text(world.agent.read_text().replace('VERSION = "one"', 'VERSION = "two"'))
    assert daemon.fingerprint(spec) != key


def test_without_a_daemon_or_with_it_off_the_session_imports_itself(world, monkeypatch) -> None:
    said: list[str] = []
    assert take(world, said.append) is None and said == []  # none runs: today's path, silently
    monkeypatch.setenv("HARNESS_DAEMON", "sometimes")
    with pytest.raises(HarnessError, match="HARNESS_DAEMON"):
        take(world)
    monkeypatch.setenv("HARNESS_DAEMON", "off")
    daemon.start()
    assert take(world) is None
    assert daemon.status()["spares"] == []  # never asked


def test_start_mode_starts_the_daemon_on_demand(world, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_DAEMON", "start")
    said: list[str] = []
    zygote = take(world, said.append)
    assert zygote is not None and zygote.adopted_from["daemon"] == daemon.status()["pid"]
    assert any("starting the warm daemon" in line for line in said) and any("waiting for its import" in line for line in said)
    zygote.stop(grace=2)


def test_the_daemon_folder_must_be_private(world) -> None:
    folder = daemon.daemon_dir()
    folder.chmod(0o755)
    with pytest.raises(HarnessError, match="0700"):
        daemon.socket_path()
    folder.chmod(0o700)


# -- the protocol, with the stand-in zygote -----------------------------------------------------


def test_take_hands_over_a_zygote_that_only_the_client_holds(world) -> None:
    daemon.start()
    said: list[str] = []
    zygote = take(world, said.append)  # the first take waits for the daemon's first import
    assert zygote is not None and zygote.adopted_from["daemon"] == daemon.status()["pid"], said
    assert zygote.process is None and zygote.alive  # not our child: watched through its pidfd
    replica = zygote.spawn({}, world.tmp, world.tmp / "replica.log")
    assert running(replica)
    time.sleep(0.5)
    assert daemon.status()["spares"] == []  # no import beside a running scenario...
    zygote.stop(grace=2)
    assert gone_within([zygote.adopted_from["pid"], replica], 1)
    info = wait_ready(1)  # ...the next spare's starts when its run has ended
    assert info["served"] == 1 and len(info["spares"]) == 1 and info["spares"][0]["release"] == "9.9.9"
    assert info["spares"][0]["pid"] != zygote.adopted_from["pid"]


def test_two_takes_of_one_release_at_once_both_get_a_zygote(world) -> None:
    """`check -j 2`: both workers ask for the release's zygote while its one spare imports; the
    take that loses the race waits for a second import instead of being refused."""
    from concurrent.futures import ThreadPoolExecutor

    daemon.start()
    with ThreadPoolExecutor(2) as pool:
        zygotes = list(pool.map(lambda _i: take(world), range(2)))
    try:
        assert all(z is not None for z in zygotes), zygotes
        assert len({z.adopted_from["pid"] for z in zygotes}) == 2
    finally:
        for zygote in zygotes:
            if zygote is not None:
                zygote.stop(grace=2)


def test_a_failed_import_is_refused_with_its_reason(world) -> None:
    world.agent.write_text("import sys\nprint('no litellm here', file=sys.stderr)\nsys.exit(3)\n")
    daemon.start()
    said: list[str] = []
    assert take(world, said.append) is None
    assert any("failed" in line and "import" in line for line in said), said


def test_a_client_killed_mid_run_leaves_no_zygote_or_replica(world) -> None:
    daemon.start()
    wait_ready(0)
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from types import SimpleNamespace
        from harness.proxy import daemon
        release = SimpleNamespace(version="9.9.9", python=Path(sys.executable), root=Path({str(world.release.root)!r}))
        import os
        zygote = daemon.take(release, dict(os.environ), lambda _m: None, timeout=10, agent=Path({str(world.agent)!r}))
        print(zygote.pid, zygote.spawn({{}}, Path({str(world.tmp)!r}), Path({str(world.tmp / "r.log")!r})), flush=True)
        time.sleep(600)
    """)
    client = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=world.env, stdout=subprocess.PIPE, text=True)
    zygote_pid, replica_pid = map(int, client.stdout.readline().split())
    assert running(zygote_pid) and running(replica_pid)
    client.send_signal(signal.SIGKILL)
    client.wait()
    assert gone_within([zygote_pid, replica_pid], 1)


def test_a_killed_daemon_leaves_none_of_its_spares(world) -> None:
    daemon.start()
    daemon.warm(world.release, world.env, world.agent)
    info = wait_ready(1)
    assert len(processes_with(world.marker)) >= 2  # the daemon and its spare
    os.kill(info["pid"], signal.SIGKILL)
    assert wait_gone(world.marker, 1) == []
    assert daemon.status() is None  # its stale socket answers nobody
    assert daemon.start()["pid"] != info["pid"]  # and the next start replaces it


def test_stop_ends_the_daemon_and_every_spare(world) -> None:
    daemon.start()
    daemon.warm(world.release, world.env, world.agent)
    info = wait_ready(1)
    stopped = daemon.stop()
    assert stopped["pid"] == info["pid"]
    assert wait_gone(world.marker, 1) == []
    assert daemon.status() is None and daemon.stop() is None


def test_changed_agent_sources_are_never_served_the_old_spare(world) -> None:
    daemon.start()
    daemon.warm(world.release, world.env, world.agent)
    old = wait_ready(1)["spares"][0]
    world.agent.write_text(world.agent.read_text().replace('VERSION = "one"', 'VERSION = "two"'))
    zygote = take(world)
    assert zygote is not None and zygote.pid != old["pid"]
    keys = {s["key"] for s in daemon.status()["spares"]}
    assert old["key"] in keys  # the old one is still warm, for its own key, and was not handed out
    zygote.stop(grace=2)


def test_a_client_with_other_daemon_code_is_refused(world) -> None:
    daemon.start()
    spec = daemon.spec_for(world.release, world.env, world.agent)
    reply, fds = daemon.request({"op": "take", "code": "not-this", "key": daemon.fingerprint(spec), "spec": spec,
                                 "wait_s": 1})
    assert fds == [] and "other harness code" in reply["refused"]
    reply, _ = daemon.request({"op": "take", "code": daemon.code_fingerprint(), "key": "stale", "spec": spec,
                               "wait_s": 1})
    assert "other release or agent files" in reply["refused"]
    assert daemon.status()["spares"] == []


def test_status_and_stop_commands(world) -> None:
    def harness(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", "daemon", *args], cwd=ROOT, env=dict(os.environ),
                              capture_output=True, text=True, timeout=60)

    assert harness("status").returncode == 1
    started = harness("start", "--idle-timeout", "60")
    assert started.returncode == 0 and "daemon pid" in started.stdout, started.stderr
    daemon.warm(world.release, world.env, world.agent)
    wait_ready(1)
    shown = harness("status")
    assert shown.returncode == 0 and "litellm 9.9.9" in shown.stdout and "ready" in shown.stdout, shown.stdout
    assert "1 spare" in harness("stop").stdout
    assert wait_gone(world.marker, 1) == []
    bad = harness("start", "--idle-timeout", "0")
    assert bad.returncode == 2 and "error:" in bad.stdout + bad.stderr


def test_an_idle_daemon_stops_by_itself(world) -> None:
    daemon.start(idle_s=0.5)
    daemon.warm(world.release, world.env, world.agent)
    assert wait_gone(world.marker, 10) == []



def test_a_hand_over_the_client_read_and_closed_at_once_counts_as_sent() -> None:
    # the whole line goes with the fds; a further empty send would hit the peer that has read it
    # and closed (EPIPE), and the daemon would keep as its spare a zygote the client now holds
    class PeerClosedAfterTheLine:
        def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
            return sum(len(b) for b in buffers)

        def sendall(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    daemon.send_line(PeerClosedAfterTheLine(), {"zygote": {"pid": 1}}, [0])


def test_the_clone_sweep_drops_only_clones_of_ended_runs(tmp_path, monkeypatch) -> None:
    """A run killed with -9 leaves its clone on the daemon's server; the sweep drops it by the pid
    in its name, and leaves templates, live runs' clones and names it cannot read alone."""
    live, dead = os.getpid(), 2 ** 22 + 12345  # above pid_max's default: never running
    names = [f"lh_c_lh_1_85_0_{live}_0a1b2c3d", f"lh_c_lh_1_85_0_{dead}_0a1b2c3d", "lh_c_oddname", "lh_tpl_ea0dc47d7b25"]
    dropped: list[str] = []
    server = SimpleNamespace(list_databases=lambda prefix: [n for n in names if n.startswith(prefix)],
                             drop_database=dropped.append)
    keeper = daemon.Daemon(tmp_path, idle_s=60, max_releases=1)
    keeper.postgres = server
    keeper.log = lambda text: None
    keeper.sweep_clones()
    assert dropped == [f"lh_c_lh_1_85_0_{dead}_0a1b2c3d"]


def test_only_a_session_that_would_start_an_embedded_server_leases_the_daemons(monkeypatch) -> None:
    monkeypatch.delenv("HARNESS_DB", raising=False)
    monkeypatch.delenv("HARNESS_DB_URL", raising=False)
    assert daemon.wants_embedded("embedded", None)
    assert not daemon.wants_embedded("container", None)
    assert not daemon.wants_embedded("url", "postgresql://u:p@127.0.0.1:5432/x")
    assert not daemon.wants_embedded("auto", "postgresql://u:p@127.0.0.1:5432/x")  # auto takes the URL
    monkeypatch.setenv("HARNESS_DB", "embedded")
    assert daemon.wants_embedded(None, None)
    monkeypatch.setenv("HARNESS_DB", "container")
    assert not daemon.wants_embedded("auto", None)
    monkeypatch.setenv("HARNESS_DB", "auto")
    # the rule is harness.services.providers.resolve's, the one start_server follows
    engine = SimpleNamespace(ok=True, host="unix:///run/test.sock", describe=lambda: "an engine answered")
    monkeypatch.setattr("harness.services.providers.probe_engine", lambda: engine)
    monkeypatch.setattr("harness.services.providers.image_present_at", lambda host, image: True)
    assert not daemon.wants_embedded(None, None)  # a Docker engine answers with the image: a container
    monkeypatch.setattr("harness.services.providers.image_present_at", lambda host, image: False)
    assert daemon.wants_embedded(None, None)  # ...without it, auto pulls nothing: embedded
    monkeypatch.setattr("harness.services.providers.probe_engine",
                        lambda: SimpleNamespace(ok=False, describe=lambda: "no engine"))
    assert daemon.wants_embedded(None, None)


def test_with_the_daemon_off_no_server_is_leased(monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_DAEMON", "off")
    monkeypatch.setattr(daemon, "request", lambda *a, **k: pytest.fail("asked the daemon"))
    assert daemon.lease_postgres("embedded", None, lambda message: None) is None
