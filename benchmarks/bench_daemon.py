"""The repeat run with and without the warm daemon, beside the release's bare import time (one run).

    python benchmarks/bench_daemon.py [--litellm 1.85.0] [--rounds 3]

In one private runtime dir (its own daemon and embedded PostgreSQL), after one untimed warm-up
run, each round measures in turn: `import litellm.proxy.proxy_server` in the release's python
with the zygote's environment, `harness run` of the seed scenario with HARNESS_DAEMON=off, and
the same run with a warm daemon (after its spare zygote is ready: a repeat run some seconds after
the last one), which runs the command line in its warm harness runner, on its warm PostgreSQL.
Prints the medians, the ratios to the import time, and where the warm run's time goes (from its
progress lines).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEED = ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml"

from harness.proxy import daemon  # noqa: E402
from harness.proxy.proxy import base_env  # noqa: E402
from harness.releases import ensure_release  # noqa: E402

STAMP = re.compile(r"^\s*(\d+\.\d)s (.*)$")


def import_time(release) -> float:
    code = "import time; t = time.perf_counter(); import litellm.proxy.proxy_server; print(time.perf_counter() - t)"
    out = subprocess.run([str(release.python), "-c", code], env=base_env(release), capture_output=True, text=True,
                         cwd=tempfile.gettempdir(), timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def timed_run(version: str, env: dict[str, str]) -> tuple[float, list[tuple[float, float, str]]]:
    """Wall time of one `harness run`, and its lines: (seconds since start, harness's stamp, text)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(SEED), "--litellm", version, "--db", "embedded"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        match = STAMP.match(line)
        lines.append((time.monotonic() - started, float(match.group(1)) if match else -1.0,
                      (match.group(2) if match else line).rstrip()))
    if proc.wait() != 0:
        raise SystemExit("the run failed:\n" + "\n".join(text for _, _, text in lines[-30:]))
    return time.monotonic() - started, lines


def split(wall: float, lines: list[tuple[float, float, str]]) -> list[tuple[str, float]]:
    """Where a run's time went, between its progress lines."""
    def at(text: str) -> float:
        hits = [t for t, _, line in lines if text in line]
        return hits[-1] if hits else float("nan")

    marks = [("python start, hand-over to the runner, scenario load", lines[0][0]),
             ("PostgreSQL server start (or the daemon's)", at("PostgreSQL:")),
             ("database template (built, or found)", at("template")),
             ("zygote (taken from the daemon)", at("starting the litellm")),
             ("proxy fork and readiness", at("proxy up (")),
             ("scenario steps", at("PASSED")),
             ("teardown, table, exit", wall)]
    return [(name, end - start) for (name, end), start in zip(marks, [0.0] + [t for _, t in marks])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--litellm", default="1.85.0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    release = ensure_release(args.litellm)
    runtime = Path(tempfile.mkdtemp(prefix="lh-bench-daemon-", dir="/tmp"))
    runtime.chmod(0o755)  # as root, embedded PostgreSQL runs as a system user
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_DAEMON"}
    env["HARNESS_RUNTIME_DIR"] = str(runtime)
    os.environ["HARNESS_RUNTIME_DIR"] = str(runtime)
    cold_env, warm_env = {**env, "HARNESS_DAEMON": "off"}, {**env, "HARNESS_DAEMON": "use"}
    imports, colds, warms, warm_lines = [], [], [], []
    try:
        daemon.start(idle_s=600)
        refused = daemon.warm(release, base_env(release))  # the runs' environment: this one's
        if refused:
            raise SystemExit(f"the daemon will not warm {args.litellm}: {refused}")
        timed_run(args.litellm, cold_env)  # warm-up: page cache, the run folder's first use
        timed_run(args.litellm, warm_env)  # untimed: the daemon starts its runner for this environment
        for round_ in range(args.rounds):
            imports.append(import_time(release))
            colds.append(timed_run(args.litellm, cold_env)[0])
            runs = wait_ready()
            wall, lines = timed_run(args.litellm, warm_env)
            if not any("warm zygote from the daemon" in line for _, _, line in lines):
                raise SystemExit("the warm run did not take the daemon's zygote:\n" + "\n".join(t for _, _, t in lines))
            if daemon.status()["runs"] != runs + 1:
                raise SystemExit("the warm run was not run by the daemon's runner")
            warms.append(wall)
            warm_lines.append((wall, lines))
            print(f"round {round_ + 1}: import {imports[-1]:.2f}s, run without daemon {colds[-1]:.2f}s, "
                  f"with warm daemon {warms[-1]:.2f}s", flush=True)
    finally:
        daemon.stop()
        from harness.db import start_server  # the next start's clean-up, so nothing stays

        with start_server("embedded"):
            pass
        shutil.rmtree(runtime, ignore_errors=True)
    imp, cold, warm = (statistics.median(xs) for xs in (imports, colds, warms))
    print(f"\nlitellm {args.litellm}, medians of {args.rounds} (one benchmark run, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}):")
    print(f"  import litellm.proxy.proxy_server   {imp:6.2f} s")
    print(f"  repeat run, no daemon               {cold:6.2f} s   {cold / imp:.2f}x the import")
    print(f"  repeat run, warm daemon             {warm:6.2f} s   {warm / imp:.2f}x the import (goal: 0.30x)")
    wall, lines = sorted(warm_lines)[len(warm_lines) // 2]
    print(f"\nwhere the median warm run's {wall:.2f} s went:")
    for name, seconds in split(wall, lines):
        print(f"  {name:<45} {seconds:5.2f} s")


def wait_ready(timeout: float = 300) -> int:
    """Wait for a ready spare zygote and a ready runner; the runs the runners made so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = daemon.status()
        if (info and any(s["state"] == "ready" for s in info["spares"])
                and any(r["state"] == "ready" for r in info["runners"])):
            return info["runs"]
        time.sleep(0.2)
    raise SystemExit(f"the daemon's spare was not ready within {timeout:.0f}s: {daemon.status()}")


if __name__ == "__main__":
    main()
