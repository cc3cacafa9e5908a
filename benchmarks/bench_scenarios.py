"""Scenario speed and memory with warm caches: command to verdict, each further scenario, peak memory.

    python benchmarks/bench_scenarios.py [--version 1.82.3] [--rounds 3]

Targets (2 cores): one release's verdict within 12 s of the command, each further scenario on a
proxy that is already up within 1 s, the proxy process's peak memory within 500 MB. Run it once
before measuring so the release environment exists. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SEED = REPO / "scenarios" / "reset_job" / "org_budget_reset.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="1.82.3")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    # 1. command -> verdict, as a user runs it (a new process each time: server, proxy, everything)
    to_verdict = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(SEED), "--litellm", args.version],
                              capture_output=True, text=True, cwd=REPO)
        to_verdict.append(time.perf_counter() - t)
        if proc.returncode not in (0, 1):
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1

    # 2. further scenarios on a live proxy, and 3. the proxy's peak memory
    from harness.db import start_server
    from harness.execution.session import ReleaseSession
    from harness.scenario import load

    scenarios = [load(p) for p in sorted((REPO / "scenarios").rglob("*.yaml"))]
    with start_server("auto") as server, ReleaseSession(args.version, server) as session:
        first = session.run(scenarios[0])
        further = [session.run(s) for s in scenarios[1:] * args.rounds]
        target = next(iter(session.fleets.values()))[0].first
        info = target.control.info()

    print(f"litellm {args.version}, PostgreSQL {server.kind} {server.version}")
    print(f"  command to verdict (seed scenario)   median {statistics.median(to_verdict):6.2f} s   runs {', '.join(f'{x:.2f}' for x in to_verdict)}")
    print(f"  proxy start inside that               {target.started_in_s:6.2f} s (last session)")
    print(f"  first scenario incl. proxy start      {first.seconds:6.2f} s")
    print(f"  each further scenario                 median {statistics.median(r.seconds for r in further):6.2f} s   max {max(r.seconds for r in further):.2f} s   ({len(further)} runs)")
    print(f"  proxy process peak memory             {info['peak_rss_mb']:6.1f} MB")
    for name, mb in info.get("children_peak_rss_mb", {}).items():
        print(f"  child {name:30s}  {mb:6.1f} MB peak")
    print("  verdicts: " + ", ".join(f"{r.scenario.name}={r.verdict}" for r in [first, *further[: len(scenarios) - 1]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
