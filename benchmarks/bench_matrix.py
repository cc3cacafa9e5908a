"""Matrix and bisect figures, through the real command line, with warm release caches.

    python benchmarks/bench_matrix.py [--litellm V ...] [--scenario FILE ...] [--skip-bisect]

1. warms the release environments of the matrix (not timed; says which it had to build);
2. times `python -m harness matrix SCENARIOS --litellm V1..V4` with `-j 1` and with `-j 2`
   (each: its own PostgreSQL server(s), a proxy per release, every scenario on it);
3. times `python -m harness bisect scenarios/reset_job/org_budget_reset.yaml --good 1.82.3 --bad 1.85.0`
   and reports its runs and boundary; environments the bisect had to build are counted (a
   bisect on a cold cache is dominated by them), and when there were any, it is run again warm.

Defaults: 1.82.3, 1.84.10, 1.85.0 and 1.101.6 (the newest release that installs here AND runs
org_budget_reset as written: from 1.102.0 the /organization/* endpoints need an enterprise
licence), every scenario under scenarios/. The machine's load matters: note what else runs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_RELEASES = ["1.82.3", "1.84.10", "1.85.0", "1.101.6"]


def envs() -> set[str]:
    from harness.settings import cache_dir

    return {p.name for p in (cache_dir() / "envs").glob("litellm-*") if p.is_dir()}


def harness(*args: str) -> tuple[float, int, str]:
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True)
    return time.monotonic() - t, proc.returncode, proc.stdout + proc.stderr


def matrix(scenarios: list[str], releases: list[str], jobs: int, out: Path) -> dict:
    args = [*scenarios]
    for v in releases:
        args += ["--litellm", v]
    seconds, code, output = harness("matrix", *args, "-j", str(jobs), "--out", str(out))
    if not (out / "matrix.json").exists():
        sys.exit(f"matrix -j {jobs} wrote no report (exit {code}):\n{output[-3000:]}")
    doc = json.loads((out / "matrix.json").read_text())
    return {"seconds": seconds, "exit": code, "doc": doc}


def table(doc: dict) -> str:
    releases = doc["releases"]
    cells = {(c["scenario"], c["litellm"]): c["verdict"] for c in doc["cells"]}
    names = list(dict.fromkeys(c["scenario"] for c in doc["cells"]))
    width = max(len(n) for n in names)
    lines = [" " * width + "  " + "  ".join(f"{v:<13}" for v in releases)]
    for n in names:
        lines.append(f"{n:<{width}}  " + "  ".join(f"{cells.get((n, v), '-'):<13}" for v in releases))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--litellm", action="append", dest="releases", metavar="V")
    ap.add_argument("--scenario", action="append", dest="scenarios", metavar="FILE")
    ap.add_argument("--skip-bisect", action="store_true")
    args = ap.parse_args()
    releases = args.releases or DEFAULT_RELEASES
    scenarios = args.scenarios or sorted(glob.glob(str(ROOT / "scenarios" / "**" / "*.yaml"), recursive=True))
    scenarios = [os.path.relpath(s, ROOT) for s in scenarios]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
    print(f"matrix: {len(scenarios)} scenarios x {len(releases)} releases ({', '.join(releases)})")

    from harness.releases import ensure_release

    before = envs()
    t = time.monotonic()
    for v in releases:
        ensure_release(v)
    built = sorted(envs() - before)
    print(f"warm-up: {time.monotonic() - t:.1f}s" + (f", built {', '.join(built)}" if built else ", all cached"))

    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-matrix-") as tmp:
        for jobs in (1, 2):
            res = matrix(scenarios, releases, jobs, Path(tmp) / f"j{jobs}")
            figures[jobs] = res
            print(f"matrix -j {jobs}: {res['seconds']:.1f}s wall (exit {res['exit']}); per release: "
                  + ", ".join(f"{v} {s:.1f}s" for v, s in res["doc"]["release_seconds"].items()))
        print()
        print(table(figures[1]["doc"]))
        same = {(c["scenario"], c["litellm"], c["verdict"]) for c in figures[1]["doc"]["cells"]} == {
            (c["scenario"], c["litellm"], c["verdict"]) for c in figures[2]["doc"]["cells"]}
        print(f"-j 1 and -j 2 gave the same verdicts: {same}")
        print(f"speed-up with -j 2: {figures[1]['seconds'] / figures[2]['seconds']:.2f}x")

        if not args.skip_bisect:
            print()
            for attempt in ("first", "warm"):
                before = envs()
                out = Path(tmp) / f"bisect-{attempt}"
                seconds, code, output = harness("bisect", "scenarios/reset_job/org_budget_reset.yaml", "--good", "1.82.3",
                                                "--bad", "1.85.0", "--out", str(out))
                if not (out / "bisect.json").exists():
                    sys.exit(f"bisect wrote no report (exit {code}):\n{output[-3000:]}")
                doc = json.loads((out / "bisect.json").read_text())
                new = sorted(envs() - before)
                print(f"bisect ({attempt}): {seconds:.1f}s wall, exit {code}, {doc['runs']} runs "
                      f"(binary search needs <= {doc['probe_budget']} probes + 2 endpoints), "
                      f"boundary {doc['last_old']} / {doc['first_new']}, environments built: {len(new)}")
                print("   runs: " + ", ".join(f"{p['version']} {p['verdict']} {p['seconds']}s" for p in doc["probes"]))
                if not new:
                    break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
