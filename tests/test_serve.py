"""`serve` and `ctl`: a live deployment driven with plain HTTP and the scenario steps, and
everything of it gone 1 s after Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from test_cleanup import wait_gone

ROOT = Path(__file__).resolve().parents[1]


def harness(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture()
def runtime():
    # not under pytest's 0700 tmp root: as root, embedded PostgreSQL runs as a system user
    path = Path(tempfile.mkdtemp(prefix="lh-serve-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def one_error_line(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], lines


def test_bad_input_is_one_line(runtime):
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime))
    one_error_line(harness("serve", "--litellm", "latest", env=env), "is not a version number")
    one_error_line(harness("serve", "--litellm", "1.85.0", "--replicas", "a,,b", env=env), "--replicas")
    one_error_line(harness("serve", "--litellm", "1.85.0", "--replicas", "a,a", env=env), "unique")
    one_error_line(harness("serve", "--litellm", "1.85.0", "--redis", "memcached", env=env), "--redis")
    one_error_line(harness("serve", "--litellm", "1.85.0", "--until-line", "3", env=env), "--scenario")
    one_error_line(harness("ctl", "advance", "1d", env=env), "no serve is running")
    # a connection file left by a serve that is gone
    (runtime / "serve.json").write_text(json.dumps({"control": "http://127.0.0.1:9", "token": "x"}))
    one_error_line(harness("ctl", "reset-job", env=env), "not answering")


@pytest.mark.slow
def test_unknown_release_is_one_line(runtime):
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime))
    one_error_line(harness("serve", "--litellm", "99.0.0", env=env), "not on the package index")


def start_serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if line.startswith("ready:"):
            return proc, seen
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("serve never got ready:\n" + "".join(seen)[-3000:])


def chat(base_url: str, key: str, model: str) -> requests.Response:
    return requests.post(f"{base_url}/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=60)


@pytest.mark.slow
def test_serve_two_replicas_with_redis_driven_by_ctl_then_ctrl_c(runtime):
    marker = f"lh-serve-{uuid.uuid4().hex}"
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime), HARNESS_TEST_MARKER=marker)
    proc, seen = start_serve(env, "--litellm", "1.85.0", "--replicas", "a,b", "--redis", "embedded", "--db", "embedded")
    try:
        printed = {m.group(1): m.group(2) for line in seen
                   if (m := re.match(r"(replica \w+|master key|model|DATABASE_URL|Redis|control): (\S+)", line))}
        replicas = {k.split()[1]: v for k, v in printed.items() if k.startswith("replica ")}
        assert sorted(replicas) == ["a", "b"]
        assert printed["DATABASE_URL"].startswith("postgresql://127.0.0.1:") or "@127.0.0.1:" in printed["DATABASE_URL"]
        assert printed["Redis"].startswith("redis://") and "127.0.0.1:" in printed["Redis"]
        assert printed["control"].startswith("http://127.0.0.1:")
        assert printed["model"] == "harness-unit"  # the mock model every served config has

        # plain HTTP with the printed master key, to each replica
        for name, base in replicas.items():
            resp = chat(base, printed["master key"], printed["model"])
            assert resp.status_code == 200, (name, resp.text[:300])
            assert resp.json()["choices"][0]["message"]["content"]

        one_error_line(harness("serve", "--litellm", "1.85.0", env=env), "already running")
        # the control address refuses a caller without the token
        assert requests.post(printed["control"], json={"op": "stop"}, timeout=10).status_code == 401

        def ctl(*args: str, code: int = 0) -> str:
            result = harness("ctl", *args, env=env)
            assert result.returncode == code, (args, result.stdout, result.stderr)
            return result.stdout

        assert "2027-03-01T00:00:00" in ctl("freeze", "2027-03-01T00:00:00Z")
        ctl("step", "{create_key: {name: k1, max_budget: 10, budget_duration: 1d}}")
        assert "3 calls" in ctl("step", "{spend: {key: k1, requests: 3}}")
        ctl("flush")
        before = json.loads(ctl("readings", "k1"))
        assert before["db"]["spend"] > 0 and before["db"]["budget_reset_at"].startswith("2027-03-02T00:00:00")
        # the reset job before the period ends changes nothing
        ctl("reset-job")
        assert json.loads(ctl("readings", "k1"))["db"]["spend"] == before["db"]["spend"]
        assert "2027-03-02T02:00:00" in ctl("advance", "1d2h")
        ctl("reset-job")
        after = json.loads(ctl("readings", "k1"))
        assert after["db"]["spend"] == 0 and after["db"]["budget_reset_at"].startswith("2027-03-03T00:00:00")
        assert after["clock"].startswith("2027-03-02T02:00:00")
        # an expectation through the same step code: met, then not met (exit 1), then refused by the loader (exit 2)
        ctl("step", "{expect_state: {entity: k1, spend: 0, source: both}}")
        assert "expected 5" in ctl("step", "{expect_state: {entity: k1, spend: 5}}", code=1)
        assert "no entity" in harness("ctl", "step", "{spend: {key: nobody, requests: 1}}", env=env).stdout
        # a replica stopped and started again is served at its new address
        ctl("stop-replica", "b")
        ctl("start-replica", "b")
        new_b = json.loads(ctl("info"))["replicas"]["b"]
        assert chat(new_b, printed["master key"], printed["model"]).status_code == 200

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        # the 1 s is for the kernel to reap (benchmarks/bench_serve.py measures SIGINT -> all gone)
        left = wait_gone(marker, 1)
        assert not left, "left running 1 s after Ctrl-C:\n" + "\n".join(left)
        assert not (runtime / "serve.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        wait_gone(marker, 10)


@pytest.mark.slow
def test_serve_from_a_scenario_up_to_a_line_then_ctl_stop(runtime):
    """The seed scenario up to its spend step: the organization has spent, the reset has not run."""
    marker = f"lh-serve-{uuid.uuid4().hex}"
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime), HARNESS_TEST_MARKER=marker)
    seed = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"
    spend_line = next(i for i, line in enumerate(seed.read_text().splitlines(), 1) if line.strip().startswith("- spend:"))
    proc, seen = start_serve(env, "--litellm", "1.85.0", "--db", "embedded", "--scenario", str(seed),
                             "--until-line", str(spend_line))
    try:
        out = "".join(seen)
        assert f"line {spend_line}: passed" in out and "run_reset_job" not in out, out
        # the scenario's names are known to later steps
        flushed = harness("ctl", "flush", env=env)
        assert flushed.returncode == 0, flushed.stdout
        readings = json.loads(harness("ctl", "readings", "acme", env=env).stdout)
        assert readings["db"]["spend"] == pytest.approx(0.6, abs=0.11)  # 12 x 0.05, some rejected
        assert harness("ctl", "step", "{expect_request: {key: k1, outcome: rejected}}", env=env).returncode == 0
        assert harness("ctl", "stop", env=env).returncode == 0
        assert proc.wait(timeout=30) == 0
        left = wait_gone(marker, 1)
        assert not left, "left running 1 s after `ctl stop`:\n" + "\n".join(left)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        wait_gone(marker, 10)
