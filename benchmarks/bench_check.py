"""`check` figures, through the real command line (figures printed, nothing asserted on time).

    python benchmarks/bench_check.py [--litellm 1.85.0] [--from 1.84.10] [--skip-cold]

1. warm: `check --litellm V` on the whole catalogue, V's environment already cached (built
   first if it is not, untimed), with `-j 1` and with the default `-j` (the release's
   deployments split between workers) side by side. Target: the whole catalogue in at most 90 s.
   Then on the catalogue's first 25 scenarios (`--catalogue` with those files). Target: 25
   scenarios in at most 60 s.
2. cold: the same with HARNESS_CACHE_DIR pointing at a fresh, empty directory, so the release
   environment, the Prisma client and the engine bridge are all built first (uv's and npm's own
   download caches stay warm: what a second machine with a package mirror sees). The shared
   cache is never touched (other runs may be using it).
3. `check --from V0 --litellm V`: both releases, warm.

Each line: wall time, scenarios run, the time per release (check.json's release_seconds),
the proxy start-ups the log shows, and the bugs' statuses. The machine's load matters.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check(args: list[str], out: Path, env: dict[str, str] | None = None) -> dict:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", "check", *args, "--no-fail", "--db", "embedded",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    if not (out / "check.json").exists():
        sys.exit(f"check {' '.join(args)} wrote no report (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    doc = json.loads((out / "check.json").read_text())
    log = proc.stdout
    proxies = [float(s) for s in re.findall(r"proxy up \(.*?\) in ([0-9.]+)s", log)]
    builds = re.findall(r"litellm (\S+) ready in ([0-9.]+)s", log)
    workers = re.findall(r"\] (\S+ worker \d+/\d+): (\d+) scenarios \((\d+) deployments?\) in ([0-9.]+)s", log)
    return {"seconds": seconds, "doc": doc, "proxies": proxies, "builds": builds, "workers": workers,
            "exit": proc.returncode}


def profile(r: dict) -> str:
    """Each worker's seconds (a split release) and the five slowest cells."""
    workers = "; ".join(f"{w}: {n} scenarios, {d} deployments, {float(t):.1f}s" for w, n, d, t in r["workers"])
    slowest = ", ".join(f"{c['scenario']} {c['seconds']:.1f}s"
                        for c in sorted(r["doc"]["cells"], key=lambda c: -c["seconds"])[:5])
    return f"  workers: {workers or 'one per release'}\n  slowest cells: {slowest}"


def line(name: str, r: dict) -> str:
    doc = r["doc"]
    scenarios = len(doc["cells"])
    counts = ", ".join(f"{n} {s}" for s, n in doc["counts"].items() if n)
    per_release = ", ".join(f"{v} {t:.1f}s" for v, t in doc["release_seconds"].items())
    proxies = f"{len(r['proxies'])} proxy start-ups ({sum(r['proxies']):.1f}s)"
    builds = "; built " + ", ".join(f"{v} in {t}s" for v, t in r["builds"]) if r["builds"] else ""
    return (f"{name:<34} {r['seconds']:6.1f}s wall  {scenarios} scenario runs ({r['seconds'] / scenarios:.1f}s each)  "
            f"[{per_release}]  {proxies}{builds}  -> {counts}")


def catalogue_subset(n: int) -> list[str]:
    """The first `n` catalogue scenario files, in check's own order."""
    from harness.reports import check as ck
    from harness.scenario.loader import load

    scenarios = ck.catalogue(load(f) for f in ck.catalogue_files([str(ROOT / "scenarios")]))
    return [str(s.path) for s in scenarios[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--litellm", default="1.85.0")
    parser.add_argument("--from", dest="before", default="1.84.10")
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from harness.releases import ensure_release

    for version in (args.litellm, args.before):  # warm first, untimed
        ensure_release(version)
    print(f"check benchmarks, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        tmp_path = Path(tmp)
        serial = check(["--litellm", args.litellm, "-j", "1"], tmp_path / "warm-j1")
        print(line(f"warm: check --litellm {args.litellm} -j 1", serial), flush=True)
        warm = check(["--litellm", args.litellm], tmp_path / "warm")
        print(line(f"warm: check --litellm {args.litellm} (default -j)", warm), flush=True)
        print(profile(warm))
        print(f"  target whole catalogue <= 90 s: {len(warm['doc']['cells'])} scenarios took {warm['seconds']:.1f}s "
              f"({warm['seconds'] / serial['seconds']:.2f}x the -j 1 run)")
        slow = sorted({c["scenario"] for c in warm["doc"]["cells"] if c["seconds"] > 5})
        print(f"  scenarios taking more than 5 s each: {', '.join(slow) or 'none'}")
        subset = catalogue_subset(25)
        part = check(["--litellm", args.litellm, "--catalogue", *subset], tmp_path / "warm25")
        print(line(f"warm: the first {len(subset)} of the catalogue", part), flush=True)
        print(f"  target 25 scenarios <= 60 s: {len(part['doc']['cells'])} scenarios took {part['seconds']:.1f}s")
        if not args.skip_cold:
            env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "cold-cache")}
            cold = check(["--litellm", args.litellm], tmp_path / "cold", env)
            print(line(f"cold (fresh HARNESS_CACHE_DIR): {args.litellm}", cold), flush=True)
        both = check(["--litellm", args.litellm, "--from", args.before], tmp_path / "from")
        print(line(f"warm: check --from {args.before}", both), flush=True)
        doc = both["doc"]
        label = {b["issue"]: b["label"] for b in doc["bugs"]}
        print(f"  fixed by {args.before} -> {args.litellm}: {', '.join(label[i] for i in doc['fixed']) or 'none'}; "
              f"brought in: {', '.join(label[i] for i in doc['introduced']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
