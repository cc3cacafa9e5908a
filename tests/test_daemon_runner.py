"""The daemon's warm harness runner (harness/commands/runner.py, harness/commands/remote.py): a
repeat `python -m harness ...` is run by a fork of a process that imported the harness already,
with this process's stdio, directory, environment and exit code; never by a stale one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.proxy import daemon
from test_cleanup import processes_with

ROOT = Path(__file__).resolve().parents[1]
BAD = sorted((ROOT / "tests" / "data" / "bad_scenarios").glob("*.yaml"))[0]
GOOD = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"


@pytest.fixture()
def runtime(tmp_path, monkeypatch):
    """A private runtime dir with its own daemon; nothing of it left afterwards."""
    marker = f"lh-runner-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("HARNESS_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("HARNESS_TEST_MARKER", marker)
    monkeypatch.delenv("HARNESS_DAEMON", raising=False)
    daemon.start(idle_s=120)
    yield tmp_path
    daemon.stop()
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


def harness(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def wait_runner(timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = daemon.status()
        if info and any(r["state"] == "ready" for r in info["runners"]):
            return info
        time.sleep(0.1)
    raise AssertionError(f"no runner became ready: {daemon.status()}")


def test_a_repeat_command_is_run_by_the_runner_with_the_same_output_and_exit_code(runtime, tmp_path) -> None:
    here = harness("validate", str(BAD), HARNESS_DAEMON="off")
    first = harness("validate", str(BAD))  # no runner yet: run here, and the daemon starts one
    assert daemon.status()["runs"] == 0
    wait_runner()
    # from another directory, with a relative path: the run takes this process's directory
    relative = os.path.relpath(BAD, tmp_path)
    remote = harness("validate", relative, cwd=tmp_path)
    assert daemon.status()["runs"] == 1
    assert here.returncode == first.returncode == remote.returncode == 2
    assert remote.stdout + remote.stderr == (here.stdout + here.stderr).replace(str(BAD), relative)
    good = harness("validate", str(GOOD))
    assert good.returncode == 0 and daemon.status()["runs"] == 2, good.stdout + good.stderr
    assert harness("validate", "--help").returncode == 0  # argparse's own exit, through the runner


def test_another_environment_or_changed_sources_get_another_runner(runtime, tmp_path) -> None:
    harness("validate", str(GOOD))
    first = wait_runner()["runners"]
    assert len(first) == 1
    other = harness("validate", str(GOOD), HARNESS_SOME_SETTING="x")  # another environment: refused, run here
    assert other.returncode == 0 and daemon.status()["runs"] == 0
    # the key: the environment but the shell's own variables, and every source file's size and time
    src = tmp_path / "src" / "harness"
    src.mkdir(parents=True)
    (src / "a.py").write_text("A = 1\n")
    spec = {"argv": ["python"], "root": str(src), "env": {"X": "1", "PWD": "/a"}}
    key = daemon.runner_key(spec)
    assert daemon.runner_key({**spec, "env": {"X": "1", "PWD": "/b", "COLUMNS": "80"}}) == key
    assert daemon.runner_key({**spec, "env": {"X": "2", "PWD": "/a"}}) != key
    os.utime(src / "a.py", ns=(1, 1))
    assert daemon.runner_key(spec) != key


def test_with_the_daemon_off_nothing_is_handed_over(runtime, monkeypatch) -> None:
    harness("validate", str(GOOD))
    wait_runner()
    assert harness("validate", str(GOOD), HARNESS_DAEMON="off").returncode == 0
    assert harness("daemon", "status").returncode == 0  # `daemon` itself always runs here
    assert daemon.status()["runs"] == 0
