"""Benchmark of harness.releases: cold environment creation, warm reuse, prisma generate alone.

    python benchmarks/bench_releases.py [--version 1.82.3] [--generate-runs 3] [--keep]

Cold runs into a temporary HARNESS_CACHE_DIR (so the engine bridge, the index cache and the env
are all built from nothing); uv's own download cache (~/.cache/uv) and prisma's CLI cache
(~/.cache/prisma-python) are NOT reset: wheels and the Prisma CLI are not re-downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="1.82.3")
    ap.add_argument("--generate-runs", type=int, default=3)
    ap.add_argument("--warm-runs", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the temporary cache directory")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-releases-"))
    os.environ["HARNESS_CACHE_DIR"] = str(tmp)
    from harness.engine import ensure_engine
    from harness.releases import ensure_release, generate

    try:
        print(f"harness cache: {tmp} (cold)")
        t = time.monotonic()
        ensure_engine()
        engine_s = time.monotonic() - t
        print(f"engine bridge build (npm ci, cold cache)     {engine_s:7.2f} s")

        t = time.monotonic()
        env = ensure_release(args.version, progress=lambda line: print(f"    | {line}"))
        cold_s = time.monotonic() - t
        marker = json.loads((env.root / "harness-release.json").read_text())
        steps = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in marker["timings"].items())
        print(f"ensure_release({args.version}) cold            {cold_s:7.2f} s   ({steps})")

        samples = []
        for _ in range(args.warm_runs):
            t = time.perf_counter()
            ensure_release(args.version)
            samples.append(time.perf_counter() - t)
        print(f"ensure_release warm, in-process (n={args.warm_runs})  "
              f"median {statistics.median(samples) * 1000:.2f} ms, max {max(samples) * 1000:.2f} ms")

        code = ("import time; t0 = time.perf_counter(); from harness.releases import ensure_release; "
                "t1 = time.perf_counter(); ensure_release(%r); t2 = time.perf_counter(); "
                "print(f'{(t1 - t0) * 1000:.1f} {(t2 - t1) * 1000:.1f}')" % args.version)
        out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                             capture_output=True, text=True, check=True).stdout.split()
        print(f"ensure_release warm, fresh process           import {out[0]} ms + call {out[1]} ms")

        print(f"prisma generate alone, first (in the build)  {marker['timings']['generate_s']:7.2f} s"
              f"   (+ bytecode of the client {marker['timings'].get('compile_client_s', 0):.2f} s)")
        gen = [generate(env, compile_bytecode=False) for _ in range(args.generate_runs)]
        print(f"prisma generate alone, again (n={args.generate_runs})       "
              f"median {statistics.median(gen):.2f} s, min {min(gen):.2f} s, max {max(gen):.2f} s"
              "   (each prisma CLI call imports the existing generated client)")
        from harness.releases.envs import compile_client

        compile_client(env)
        size = subprocess.run(["du", "-sm", str(env.root)], capture_output=True, text=True).stdout.split()[0]
        print(f"environment size                             {size} MB")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
