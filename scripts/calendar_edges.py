"""Prove the suite's date-sensitive parts on calendar edges, with the whole process tree's clock
moved there by libfaketime (Debian's `faketime`): the harness, the proxy, the Prisma engine
bridge and the embedded PostgreSQL all see the edge.

At each edge it runs (1) the reset-job tests (LiteLLM 1.82.3's ResetBudgetJob through its own
Prisma client, with `litellm_settings.timezone` UTC and America/New_York) and (2) the shipped
scenarios whose verdict hangs on the calendar (scenarios/reset_job/ and scenarios/timezone/, or
the `--scenarios` given; not those tagged `long` unless --long-scenarios) on one release
through the CLI, then checks that the edge really reached them: the job's
start time and each scenario's frozen clock fall on the edge's date.

    python scripts/calendar_edges.py [--litellm 1.85.0] [--edge "2027-01-31 23:50:00" ...]

The release environments should already be built (the main test run builds them): under a
faked date, downloads could meet certificates that are not yet valid. Prints one line per edge
and exits non-zero on the first edge that fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.scenario.loader import load  # noqa: E402

#: (instant in UTC, why it is an edge). The late-evening edges start 10 minutes before midnight:
#: every scenario of the run must start on that day (a run takes ~2 min; under load 23:59 was missed)
EDGES = [
    ("2026-12-01 12:00:00", "1 December: a 30d budget resets 31 days later"),
    ("2027-02-01 00:00:30", "the 1st after a 31-day month"),
    ("2027-01-31 23:50:00", "31 January 23:50"),
    ("2027-02-28 23:50:00", "28 February 23:50, non-leap year"),
    ("2027-03-01 14:52:00", "Tokyo's 23:52: its daily reset falls in a spend counter's 10-minute life"),
    ("2027-03-07 23:50:00", "Sunday 23:50, for weekly budgets"),
    ("2027-03-14 06:30:00", "New York springs forward (01:30 EST)"),
    ("2027-11-07 05:30:00", "New York falls back (01:30 EDT)"),
]


#: the layers whose verdicts depend on the date (budget windows, reset times); the others
#: (counters, deployments, endpoints) run once in the main test run
DATE_SENSITIVE = ("scenarios/reset_job", "scenarios/timezone")


def run(cmd: list[str], edge: str, log: Path) -> tuple[int, str]:
    env = {**os.environ, "HARNESS_DB": "embedded"}  # a container's clock is the engine's, not faked
    with open(log, "w") as fh:
        proc = subprocess.run(["faketime", "-f", f"@{edge}", *cmd], cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=1800)
    return proc.returncode, log.read_text(errors="replace")


def check_edge(edge: str, release: str, scenarios: list[str], work: Path) -> list[str]:
    """Problems found at this edge (empty: it held)."""
    day = edge.split()[0]
    problems = []
    code, out = run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                     "tests/test_prisma_client.py", "-k", "reset_budget or oracle"], edge, work / "tests.log")
    if code != 0:
        problems.append(f"reset-job tests failed (exit {code}); log: {work / 'tests.log'}")
    ran = [line for line in out.splitlines() if "ResetBudgetJob.reset_budget() ran at" in line]
    if len(ran) != 2 or not all(f"ran at {day}" in line for line in ran):
        problems.append(f"the reset job did not run on {day}: {ran}")
    reports = work / "reports"
    code, _ = run([sys.executable, "-m", "harness", "run", *scenarios, "--litellm", release,
                   "--report-dir", str(reports)], edge, work / "scenarios.log")
    if code != 0:
        problems.append(f"shipped scenarios on {release} failed (exit {code}); log: {work / 'scenarios.log'}")
    on_edge = 0
    for path in sorted(reports.glob("*.json")) if reports.exists() else []:
        report = json.loads(path.read_text())
        frozen = [s["message"] for s in report["steps"] if s["source"].startswith("- freeze_clock")]
        if frozen and not frozen[0].endswith("(now)"):
            continue  # frozen at an instant the file names: the edge cannot move it (it still had to pass)
        on_edge += 1
        if not frozen or not frozen[0].startswith(f"clock frozen at {day}"):
            problems.append(f"{path.name}: the proxy's clock was not on {day}: {frozen[:1]}")
    if not on_edge:
        problems.append("no scenario froze its clock at `now`: the edge reached none of them")
    if reports.exists() and len(list(reports.glob("*.json"))) != len(scenarios):
        problems.append(f"{len(list(reports.glob('*.json')))} reports for {len(scenarios)} scenarios")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--litellm", default="1.85.0", help="release for the shipped scenarios (default 1.85.0)")
    parser.add_argument("--edge", action="append", help="an instant in UTC, 'YYYY-MM-DD HH:MM:SS' (repeatable)")
    parser.add_argument("--scenarios", nargs="+", default=list(DATE_SENSITIVE), metavar="PATH",
                        help="scenario files or folders (default: %(default)s)")
    parser.add_argument("--long-scenarios", action="store_true", help="also the scenarios tagged `long`")
    args = parser.parse_args()
    if not shutil.which("faketime"):
        print("calendar edges: `faketime` is missing (apt-get install faketime)", file=sys.stderr)
        return 2
    edges = [(e, "given") for e in args.edge] if args.edge else EDGES
    scenarios = sorted(str(p.relative_to(ROOT)) for given in args.scenarios
                       for p in ([ROOT / given] if (ROOT / given).is_file() else (ROOT / given).rglob("*.yaml")))
    if not args.long_scenarios:
        # a `long` scenario (PR #40639's 33,000 seeded end users) tests paging, not the calendar
        left_out = [path for path in scenarios if load(ROOT / path).meta.long]
        scenarios = [path for path in scenarios if path not in left_out]
        if left_out:
            print(f"calendar edges: left out, tagged `long` (--long-scenarios runs them): {', '.join(left_out)}", flush=True)
    failed = 0
    for edge, why in edges:
        work = Path(tempfile.mkdtemp(prefix="lh-edge-"))
        started = time.monotonic()
        problems = check_edge(edge, args.litellm, scenarios, work)
        seconds = time.monotonic() - started
        if problems:
            failed += 1
            print(f"FAILED {edge} UTC ({why}), {seconds:.0f}s:", flush=True)
            for line in problems:
                print(f"  {line}", flush=True)
        else:
            print(f"held   {edge} UTC ({why}): reset-job tests (UTC, America/New_York) on 1.82.3 and "
                  f"{len(scenarios)} date-sensitive scenarios on {args.litellm}, {seconds:.0f}s", flush=True)
            shutil.rmtree(work, ignore_errors=True)
    print(f"calendar-edges: {len(edges) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
