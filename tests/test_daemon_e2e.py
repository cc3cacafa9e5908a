"""The warm daemon with the real release: a run takes its zygote and its PostgreSQL server from the
daemon (no import, no server start of its own), and a run killed with -9 mid-scenario leaves no
proxy of it after 1 s and its database clone is dropped by the daemon; then the daemon killed
with -9 leaves none of its spares and not its server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from harness.proxy import daemon

from test_cleanup import ROOT, SEED, processes_with, runtime, wait_for_line, wait_gone  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

VERSION = "1.85.0"


def harness(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def status(env: dict[str, str]) -> dict | None:
    """The daemon's status as `env`'s runs see it (its runtime dir)."""
    saved = os.environ.get("HARNESS_RUNTIME_DIR")
    os.environ["HARNESS_RUNTIME_DIR"] = env["HARNESS_RUNTIME_DIR"]
    try:
        return daemon.status()
    finally:
        if saved is None:
            del os.environ["HARNESS_RUNTIME_DIR"]
        else:
            os.environ["HARNESS_RUNTIME_DIR"] = saved


def parent_of(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat", "rb").read().rsplit(b")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def of_daemon(pid: int, daemon_pid: int) -> bool:
    """Whether `pid` descends from the daemon (its spares, its PostgreSQL server and its watchdog)."""
    for _ in range(32):
        if pid == daemon_pid:
            return True
        if pid <= 1:
            return False
        pid = parent_of(pid)
    return False


def daemon_clones(env: dict[str, str]) -> list[str]:
    """The run databases (clones) on the daemon's PostgreSQL server."""
    saved = os.environ.get("HARNESS_RUNTIME_DIR")
    os.environ["HARNESS_RUNTIME_DIR"] = env["HARNESS_RUNTIME_DIR"]
    try:
        answer = daemon.request({"op": "postgres", "code": daemon.code_fingerprint()}, timeout=60)
    finally:
        if saved is None:
            del os.environ["HARNESS_RUNTIME_DIR"]
        else:
            os.environ["HARNESS_RUNTIME_DIR"] = saved
    assert answer is not None and "url" in answer[0], answer
    with psycopg.connect(answer[0]["url"], autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'lh\\_c\\_%'")]


def wait_spare_ready(env: dict[str, str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = status(env)
        if info and any(s["state"] == "ready" for s in info["spares"]):
            return info
        time.sleep(0.5)
    raise AssertionError(f"the daemon's spare never became ready: {status(env)}")


def test_a_run_uses_the_warm_zygote_and_a_killed_run_or_daemon_leaves_nothing(runtime) -> None:  # noqa: F811
    marker = f"lh-daemon-e2e-{uuid.uuid4().hex}"
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime), HARNESS_TEST_MARKER=marker)
    env.pop("HARNESS_DAEMON", None)
    started = harness(env, "daemon", "start", "--litellm", VERSION, "--idle-timeout", "300")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        assert harness(env, "validate", str(SEED)).returncode == 0  # the daemon starts its runner for env
        spare = wait_spare_ready(env)["spares"][0]
        assert [r["state"] for r in status(env)["runners"]] == ["ready"]
        run = subprocess.Popen([sys.executable, "-m", "harness", "run", str(SEED), "--litellm", VERSION, "--db", "embedded"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        seen = "".join(wait_for_line(run, "proxy up ("))
        assert f"warm zygote from the daemon (pid {spare['pid']}" in seen, seen
        assert "importing litellm" not in seen  # it did not import LiteLLM itself
        assert "kept warm by the daemon" in seen, seen  # nor started a PostgreSQL server
        assert status(env)["runs"] == 1  # run by the runner: `run` is only the client
        wait_for_line(run, "create_organization")  # mid-scenario
        assert daemon_clones(env) != []  # its database
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            info = status(env)
            # the daemon and what it keeps: its next spare, its PostgreSQL server
            left = [p for p in processes_with(marker) if not of_daemon(int(p.split(":")[0]), info["pid"])]
            if not left:
                break
            time.sleep(0.05)
        assert left == [], left  # the zygote it was handed (its stdin closed), its replica
        assert info["postgres"] is not None, info
        deadline = time.monotonic() + 3 * daemon.SWEEP_EVERY_S
        while (clones := daemon_clones(env)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert clones == []  # the killed run's database was dropped by the daemon

        # Ctrl-C reaches the run through the client: the harness's own clean-up, exit 130
        wait_spare_ready(env)
        run = subprocess.Popen([sys.executable, "-m", "harness", "run", str(SEED), "--litellm", VERSION, "--db", "embedded"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        seen = "".join(wait_for_line(run, "create_organization"))
        assert status(env)["runs"] == 2, seen
        run.send_signal(signal.SIGINT)
        rest = run.communicate(timeout=60)[0]
        assert run.returncode == 130, seen + rest
        assert "every proxy and server this run started has been stopped" in rest
        info = status(env)
        assert [p for p in processes_with(marker) if not of_daemon(int(p.split(":")[0]), info["pid"])] == []
    finally:
        info = status(env)
        if info is not None:
            os.kill(info["pid"], signal.SIGKILL)  # no handler runs: its spares must notice by themselves
    assert wait_gone(marker, 1) == []
