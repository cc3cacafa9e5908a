"""Nothing outlives a run: Ctrl-C mid start-up, or the harness killed outright."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"

pytestmark = pytest.mark.slow


def processes_with(marker: str) -> list[str]:
    """Live processes whose environment carries `marker` (everything a run started inherits it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                if (proc / "stat").read_bytes().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # a zombie is dead, only not reaped yet
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {cmdline[:120]}")
        except OSError:
            continue
    return found


@pytest.fixture()
def runtime(tmp_path_factory):
    # not under pytest's 0700 tmp root: as root, embedded PostgreSQL runs as a system user
    path = Path(tempfile.mkdtemp(prefix="lh-cleanup-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_run(runtime: Path, marker: str, argv: list[str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime), HARNESS_TEST_MARKER=marker)
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *(argv or ["run", str(SEED), "--litellm", "1.82.3"]), "--db", "embedded"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 600) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return seen
    proc.kill()
    pytest.fail(f"never saw {text!r}; output:\n{''.join(seen)[-3000:]}")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[1])


def wait_gone(marker: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def next_start_cleans_up(runtime: Path, marker: str) -> None:
    """Start (and stop) an embedded server in `runtime`, as the next run would: nothing of `marker` may stay."""
    from harness.db import start_server

    os.environ["HARNESS_RUNTIME_DIR"] = str(runtime)
    try:
        with start_server("embedded"):
            pass
    finally:
        del os.environ["HARNESS_RUNTIME_DIR"]
    assert wait_gone(marker, 15) == []


def test_ctrl_c_during_proxy_start_stops_everything(runtime: Path) -> None:
    marker = f"lh-cleanup-{uuid.uuid4().hex}"
    proc = start_run(runtime, marker)
    wait_for_line(proc, "starting the litellm")
    # at once: the replica forks from the zygote in about a second and the scenario takes two more,
    # so a fixed sleep here can outlast the whole run
    assert len(processes_with(marker)) >= 3  # harness, PostgreSQL, the zygote (and its replica starting)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert wait_gone(marker, 1) == []  # true when it is printed: the 1 s is for the kernel to reap


def test_ctrl_c_mid_exploration_exits_130_with_nothing_left(runtime: Path, tmp_path: Path) -> None:
    marker = f"lh-cleanup-{uuid.uuid4().hex}"
    proc = start_run(runtime, marker, ["explore", "--litellm", "1.82.3", "--seed", "1", "--examples", "200",
                                       "--out", str(tmp_path / "explore")])
    wait_for_line(proc, "proxy up")
    time.sleep(3)  # examples running
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert wait_gone(marker, 1) == []


def test_ctrl_c_while_litellm_imports_is_true_when_it_is_printed(runtime: Path) -> None:
    """"every proxy and server this run started has been stopped" holds when the line is printed:
    the zygote, still importing LiteLLM (it reads no stdin yet), is killed, not left to notice."""
    marker = f"lh-cleanup-{uuid.uuid4().hex}"
    proc = start_run(runtime, marker)
    wait_for_line(proc, "importing litellm")
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "has been stopped" in out, out
    assert wait_gone(marker, 1) == []  # the 1 s is for the kernel to reap, not for a process to notice


def test_killed_harness_leaves_no_proxy_or_engine(runtime: Path) -> None:
    marker = f"lh-cleanup-{uuid.uuid4().hex}"
    proc = start_run(runtime, marker)
    wait_for_line(proc, "proxy up (")
    proc.send_signal(signal.SIGKILL)  # no handler runs: the children must notice by themselves
    proc.wait(timeout=30)
    # the replica (its zygote reads EOF) and PostgreSQL (its watchdog reads EOF): within 1 s
    assert wait_gone(marker, 1) == []
    next_start_cleans_up(runtime, marker)


def test_killed_harness_while_litellm_imports_leaves_nothing(runtime: Path) -> None:
    """The zygote, importing LiteLLM (it reads no stdin yet), notices its pipe's end closing at once."""
    marker = f"lh-cleanup-{uuid.uuid4().hex}"
    proc = start_run(runtime, marker)
    wait_for_line(proc, "importing litellm")
    time.sleep(1)
    assert any("agent.py" in p for p in processes_with(marker))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert wait_gone(marker, 1) == []
    next_start_cleans_up(runtime, marker)


def test_killed_zygote_takes_its_replicas(runtime: Path) -> None:
    """SIGKILL of a zygote leaves no proxy of it serving within 1 s. (The running harness also
    stops the replicas; PR_SET_PDEATHSIG in agent.py covers a zygote whose harness is gone too,
    e.g. a future daemon's - this test does not isolate that path.)"""
    marker = f"lh-cleanup-{uuid.uuid4().hex}"
    proc = start_run(runtime, marker)
    wait_for_line(proc, "proxy up (")
    agents = [int(p.split(":")[0]) for p in processes_with(marker) if "agent.py" in p]
    zygotes = [pid for pid in agents if parent_of(pid) == proc.pid]  # its replicas are its children
    assert len(zygotes) == 1, processes_with(marker)
    os.kill(zygotes[0], signal.SIGKILL)
    deadline = time.monotonic() + 1
    while (agents := [p for p in processes_with(marker) if "agent.py" in p]) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert agents == []
    assert wait_gone(marker, 1) == []
    next_start_cleans_up(runtime, marker)
