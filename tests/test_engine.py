"""harness.engine: the cached bridge build (ensure_engine) and the bridge process's lifecycle.

Builds into temporary HARNESS_CACHE_DIRs (npm ci of ~14 MB, a few seconds with npm's cache).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from harness.engine import ENGINE_HASH, MARKER, EngineInfo, ensure_engine
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
needs_node = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs Node.js and npm")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(path))
    monkeypatch.delenv("HARNESS_PRISMA_ENGINE", raising=False)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One built engine for the lifecycle tests (its own cache dir)."""
    path = tmp_path_factory.mktemp("engine-cache")
    old = os.environ.get("HARNESS_CACHE_DIR")
    os.environ["HARNESS_CACHE_DIR"] = str(path)
    try:
        yield ensure_engine("wasm")
    finally:
        if old is None:
            os.environ.pop("HARNESS_CACHE_DIR", None)
        else:
            os.environ["HARNESS_CACHE_DIR"] = old


# --------------------------------------------------------------------------------------------
# kinds and errors (no build)


def test_native_kind_has_no_binaries(cache, monkeypatch):
    monkeypatch.setenv("HARNESS_PRISMA_ENGINE", "native")
    info = ensure_engine()
    assert info.kind == "native" and info.query_engine is None and info.schema_engine is None
    assert info.env() == {}
    assert "native" in info.description
    assert ensure_engine("native") == info
    assert not (cache / "engine").exists()


def test_unknown_kind_is_a_harness_error(cache, monkeypatch):
    monkeypatch.setenv("HARNESS_PRISMA_ENGINE", "rust")
    with pytest.raises(HarnessError) as exc:
        ensure_engine()
    assert "rust" in exc.value.message and "auto, wasm, native" in (exc.value.hint or "")


def test_missing_node_is_one_line_with_a_hint(cache, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(HarnessError) as exc:
        ensure_engine("wasm")
    assert "`node` was not found" in exc.value.message and "\n" not in str(exc.value)
    assert "Node.js" in exc.value.hint


def test_frozen_info_env():
    info = EngineInfo("wasm-bridge", Path("/x/qe"), Path("/x/se"), "d")
    env = info.env()
    assert env["PRISMA_QUERY_ENGINE_BINARY"] == "/x/qe" and env["PRISMA_SCHEMA_ENGINE_BINARY"] == "/x/se"
    with pytest.raises(Exception):
        info.kind = "native"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# the cached build


@needs_node
def test_cold_build_then_warm_reuse(cache):
    t = time.perf_counter()
    info = ensure_engine()
    cold = time.perf_counter() - t
    assert info.kind == "wasm-bridge"
    assert info.description.startswith("prisma wasm query engine 5.22.0 (harness bridge, node v")
    built = info.query_engine.parent.parent
    assert built.parent == cache / "engine"
    marker = built / MARKER
    assert marker.is_file() and json.loads(marker.read_text())["versions"]["@prisma/query-engine-wasm"].startswith("5.22.0")
    assert (built / "node_modules" / "@prisma" / "query-engine-wasm").is_dir()
    for exe in (info.query_engine, info.schema_engine):
        assert os.access(exe, os.X_OK)
    out = subprocess.run([str(info.query_engine), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"query-engine {ENGINE_HASH}"
    out = subprocess.run([str(info.schema_engine), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"schema-engine-cli {ENGINE_HASH}"
    out = subprocess.run([str(info.schema_engine), "--datamodel", "x"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "schema engine is not available" in out.stderr

    mtime = marker.stat().st_mtime_ns
    t = time.perf_counter()
    again = ensure_engine()
    warm = time.perf_counter() - t
    assert again == info
    assert marker.stat().st_mtime_ns == mtime
    print(f"\nensure_engine cold {cold:.2f}s, warm {warm * 1000:.2f} ms")
    assert warm < 0.05


@needs_node
def test_the_launcher_answers_version_as_the_bridge_does_and_old_launchers_are_refreshed(built, tmp_path):
    """prisma-client-py asks `--version` before each connect: the launcher answers without Node,
    exactly what bridge.mjs answers (also with PRISMA_EXPECTED_ENGINE_VERSION)."""
    target = built.query_engine.parent.parent
    node = json.loads((target / MARKER).read_text())["node"]
    for env in ({}, {"PRISMA_EXPECTED_ENGINE_VERSION": "0123abc"}):
        full = {**os.environ, **env}
        by_launcher = subprocess.run([str(built.query_engine), "--version"], capture_output=True, text=True, env=full)
        by_bridge = subprocess.run([node, str(target / "bridge.mjs"), "--version"], capture_output=True, text=True, env=full)
        assert by_launcher.returncode == by_bridge.returncode == 0
        assert by_launcher.stdout == by_bridge.stdout == f"query-engine {env.get('PRISMA_EXPECTED_ENGINE_VERSION', ENGINE_HASH)}\n"
    # a build made by an older harness (launcher without the shortcut) gets the new launcher
    old = f"#!/bin/sh\nexec {node} {target / 'bridge.mjs'} \"$@\"\n"
    built.query_engine.write_text(old)
    assert ensure_engine("wasm") == built
    assert 'case "$1" in' in built.query_engine.read_text()
    assert os.access(built.query_engine, os.X_OK)
    # so does another complete build beside it: a release environment generated with it still
    # runs its launcher's --version (the generated client's BINARY_PATHS); a half build is left
    sibling, half = target.parent / "0000older0build0", target.parent / "0000half0build00"
    for other in (sibling, half):
        (other / "bin").mkdir(parents=True)
        (other / "bin" / "query-engine").write_text(old)
        (other / "bin" / "schema-engine").write_text("#!/bin/sh\n")
    (sibling / MARKER).write_text(json.dumps({"node": node}))
    try:
        assert ensure_engine("wasm") == built
        refreshed = (sibling / "bin" / "query-engine").read_text()
        assert 'case "$1" in' in refreshed and str(sibling / "bridge.mjs") in refreshed
        assert (half / "bin" / "query-engine").read_text() == old
    finally:
        shutil.rmtree(sibling)
        shutil.rmtree(half)


@needs_node
def test_half_built_dir_is_removed_and_rebuilt(cache):
    info = ensure_engine()
    built = info.query_engine.parent.parent
    (built / MARKER).unlink()
    shutil.rmtree(built / "node_modules" / "@prisma")
    (built / "leftover-from-a-killed-build").write_text("x")
    again = ensure_engine()
    assert again == info
    assert (built / MARKER).is_file()
    assert not (built / "leftover-from-a-killed-build").exists()
    assert (built / "node_modules" / "@prisma" / "adapter-pg").is_dir()


@needs_node
def test_concurrent_processes_build_once_and_agree(cache):
    code = "from harness.engine import ensure_engine; print(ensure_engine().query_engine)"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    paths = {o[0].strip() for o in outs}
    assert len(paths) == 1
    builds = [d for d in (cache / "engine").iterdir() if d.is_dir()]
    assert len(builds) == 1 and (builds[0] / MARKER).is_file()


# --------------------------------------------------------------------------------------------
# the bridge process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=0.5) as r:
            return json.loads(r.read()) == {"status": "ok"}
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not reaped yet by whoever adopted it) is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _bridge_env(tmp_path: Path) -> dict[str, str]:
    schema = tmp_path / "schema.prisma"
    schema.write_text(
        'datasource client {\n  provider = "postgresql"\n  url = env("DATABASE_URL")\n}\n\n'
        "model Thing {\n  id Int @id\n  data Json?\n}\n"
    )
    return dict(os.environ, PRISMA_DML_PATH=str(schema), DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")


@needs_node
def test_bridge_exits_when_its_parent_is_killed(built, tmp_path):
    port = _free_port()
    # the parent mimics prisma-client-py: spawns the engine without a stdin pipe (here: /dev/null,
    # so stdin EOF must NOT stop it) and is then SIGKILLed (no atexit, no SIGINT to the engine)
    parent_code = textwrap.dedent(
        """
        import subprocess, sys, time
        p = subprocess.Popen([sys.argv[1], "-p", sys.argv[2], "--enable-metrics", "--enable-raw-queries"],
                             stdin=subprocess.DEVNULL)
        print(p.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, str(built.query_engine), str(port)],
        env=_bridge_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        bridge_pid = int(parent.stdout.readline())
        t0 = time.monotonic()
        while not _status(port):
            assert time.monotonic() - t0 < 15, "bridge never answered /status"
            time.sleep(0.02)
        print(f"\nbridge start to /status: {time.monotonic() - t0:.3f}s")
        time.sleep(0.7)
        assert _alive(bridge_pid) and _status(port), "bridge must keep running while its parent lives"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        t1 = time.monotonic()
        while _alive(bridge_pid):
            assert time.monotonic() - t1 < 5, "bridge still running 5 s after its parent died"
            time.sleep(0.05)
        print(f"bridge gone {time.monotonic() - t1:.3f}s after its parent was killed")
        assert not _status(port)
        assert "prisma wasm query engine 5.22.0 (harness bridge" in parent.stderr.read()
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=10)
        try:
            os.kill(bridge_pid, signal.SIGKILL)
        except (ProcessLookupError, UnboundLocalError):
            pass


@needs_node
def test_bridge_stops_on_sigint_and_binds_loopback_only(built, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [str(built.query_engine), "-p", str(port), "--enable-metrics", "--enable-raw-queries"],
        env=_bridge_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        t0 = time.monotonic()
        while not _status(port):
            assert time.monotonic() - t0 < 15 and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.02)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if listening.returncode == 0 and listening.stdout.strip():
            assert all("127.0.0.1:" in line for line in listening.stdout.strip().splitlines()), listening.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?format=json", timeout=5) as r:
            assert json.loads(r.read()) == {"counters": [], "gauges": [], "histograms": []}
        proc.send_signal(signal.SIGINT)  # what prisma-client-py's QueryEngine.close() sends
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _post(port: int, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers or {}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


@needs_node
def test_bridge_error_answers_keep_the_engine_shape_and_the_process_alive(built, tmp_path):
    """No database needed: unreachable server (P1001), unknown transaction ids (P2028, which would
    otherwise panic the wasm engine), unparsable requests (no code -> prisma's DataError)."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(built.query_engine), "-p", str(port)],
        env=_bridge_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        t0 = time.monotonic()
        while not _status(port):
            assert time.monotonic() - t0 < 15 and proc.poll() is None
            time.sleep(0.02)
        query = {"query": "query {\n  result: findManyThing\n  {\n    id\n  }\n}", "variables": {}, "operation_name": "query"}
        answer = _post(port, "/", query)
        ufe = answer["errors"][0]["user_facing_error"]
        assert ufe["error_code"] == "P1001" and "127.0.0.1" in ufe["message"], answer
        answer = _post(port, "/transaction/start", {"timeout": 5000, "max_wait": 2000})
        assert answer["errors"][0]["user_facing_error"]["error_code"] == "P1001", answer
        for path, headers in (("/transaction/not-a-cuid/commit", {}), ("/transaction/x/rollback", {}), ("/", {"X-transaction-id": "abc"})):
            answer = _post(port, path, query if path == "/" else None, headers)
            assert answer["errors"][0]["user_facing_error"]["error_code"] == "P2028", (path, answer)
        answer = _post(port, "/", {"query": "query { result: frobnicateThing { id } }"})
        assert "error_code" not in answer["errors"][0]["user_facing_error"], answer
        assert _status(port) and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
