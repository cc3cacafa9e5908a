"""`serve` start-up and shut-down: how long until `ready:`, and from SIGINT (or `ctl stop`) until
no process of the run is left (found by a marker in their environment, as tests/test_cleanup.py
does).

    python benchmarks/bench_serve.py [--version 1.85.0] [--rounds 3]

Each round: `serve --litellm V --replicas a,b --redis embedded --db embedded` in a fresh runtime
dir, then SIGINT to its process group (odd rounds: `ctl stop`, timed from its answer). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_cleanup import processes_with  # noqa: E402


def one_round(version: str, how: str) -> tuple[float, float, int]:
    runtime = tempfile.mkdtemp(prefix="lh-bench-serve-", dir="/tmp")
    os.chmod(runtime, 0o755)
    marker = "lh-bench-serve-" + uuid.uuid4().hex
    env = dict(os.environ, HARNESS_RUNTIME_DIR=runtime, HARNESS_TEST_MARKER=marker)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--litellm", version, "--replicas", "a,b",
                             "--redis", "embedded", "--db", "embedded"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith("ready:"):
                break
        else:
            raise SystemExit("serve never got ready")
        ready = time.monotonic() - started
        count = len(processes_with(marker))
        if how == "sigint":
            t = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)
        else:  # timed from its answer (the ctl process's own start-up is not serve's)
            subprocess.run([sys.executable, "-m", "harness", "ctl", "stop"], cwd=REPO, env=env, check=True,
                           capture_output=True)
            t = time.monotonic()
        while processes_with(marker) and time.monotonic() - t < 30:
            time.sleep(0.02)
        return ready, time.monotonic() - t, count
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        shutil.rmtree(runtime, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="1.85.0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gone = {"sigint": [], "ctl stop": []}
    for i in range(args.rounds):
        how = "sigint" if i % 2 == 0 else "ctl stop"
        ready, seconds, count = one_round(args.version, how)
        gone[how].append(seconds)
        print(f"round {i + 1}: ready in {ready:.1f}s ({count} processes); {how} -> all gone in {seconds:.2f}s", flush=True)
    for how, values in gone.items():
        if values:
            print(f"{how}: median {statistics.median(values):.2f}s, max {max(values):.2f}s over {len(values)}")


if __name__ == "__main__":
    main()
