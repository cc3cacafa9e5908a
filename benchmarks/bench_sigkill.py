"""What is left of a run, and when, after `kill -9` of the harness (prints a timeline).

    python benchmarks/bench_sigkill.py [--litellm 1.82.3] [--after "proxy up ("]

Starts `harness run` on the seed scenario with an embedded PostgreSQL, SIGKILLs the harness
when the `--after` line appears, then lists the run's processes (found by an environment
marker) every 0.1 s for 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SEED = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"

from test_cleanup import processes_with  # one way to find a run's processes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--litellm", default="1.82.3")
    parser.add_argument("--after", default="proxy up (")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait after the line")
    args = parser.parse_args()
    runtime = Path(tempfile.mkdtemp(prefix="lh-sigkill-", dir="/tmp"))
    runtime.chmod(0o755)
    marker = f"lh-sigkill-{uuid.uuid4().hex}"
    env = dict(os.environ, HARNESS_RUNTIME_DIR=str(runtime), HARNESS_TEST_MARKER=marker)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(SEED), "--litellm", args.litellm,
                             "--db", "embedded"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if args.after in line:
                break
        time.sleep(args.delay)
        print(f"before kill: {len(processes_with(marker))} processes")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        last = None
        while (elapsed := time.monotonic() - killed) < 5:
            left = processes_with(marker)
            if left != last:
                print(f"{elapsed:5.2f}s: {len(left)} left", *left, sep="\n    ")
                last = left
            time.sleep(0.1)
    finally:
        from harness.db import start_server  # the next start's clean-up, so nothing stays

        os.environ["HARNESS_RUNTIME_DIR"] = str(runtime)
        with start_server("embedded"):
            pass
        shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    main()
