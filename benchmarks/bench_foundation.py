"""Foundation figures: environment cold/warm, Prisma generate, template, clone, engine, connect, query.

    python benchmarks/bench_foundation.py [--version 1.82.3] [--cold]

Targets on a 2-core machine: a warm environment reused in under 1 s, a clone under 100 ms,
engine start plus connect under 1.5 s, the template built once per schema version (one
connection). `--cold` also builds the environment from nothing in a temporary cache (uv's
download cache stays warm). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Runs with the release's python: engine start (bridge -> /status), connect, one query.
ENGINE_PROBE = r"""
import asyncio, json, os, socket, subprocess, sys, time, urllib.request
out = {}
exe = os.environ["PRISMA_QUERY_ENGINE_BINARY"]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
t = time.perf_counter()
proc = subprocess.Popen([exe, "-p", str(port), "--enable-raw-queries"], env=os.environ,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.perf_counter() + 60
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=0.5).read(); break
    except Exception:
        if proc.poll() is not None or time.perf_counter() > deadline:
            sys.exit(f"the engine did not answer /status (exit code {proc.poll()})")
        time.sleep(0.01)
out["engine_start_s"] = time.perf_counter() - t
proc.terminate(); proc.wait()
t = time.perf_counter()
from prisma import Prisma
out["import_client_s"] = time.perf_counter() - t
async def main():
    db = Prisma(datasource={"url": os.environ["DATABASE_URL"]})
    t = time.perf_counter(); await db.connect(); out["engine_start_plus_connect_s"] = time.perf_counter() - t
    t = time.perf_counter(); await db.litellm_budgettable.find_first(); out["first_query_s"] = time.perf_counter() - t
    times = []
    for _ in range(20):
        t = time.perf_counter(); await db.litellm_budgettable.find_first(); times.append(time.perf_counter() - t)
    out["query_median_s"] = sorted(times)[len(times) // 2]
    await db.disconnect()
asyncio.run(main())
print(json.dumps(out))
"""


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="1.82.3")
    ap.add_argument("--cold", action="store_true", help="also build the environment in a temporary cache")
    args = ap.parse_args()
    figures: dict[str, float] = {}

    if args.cold:
        with tempfile.TemporaryDirectory(prefix="bench-foundation-") as tmp:
            env = dict(os.environ, HARNESS_CACHE_DIR=tmp)
            code = f"import time; from harness.releases import ensure_release; t=time.perf_counter(); ensure_release({args.version!r}); print(time.perf_counter()-t)"
            proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            figures["environment_cold_s"] = float(proc.stdout.strip().splitlines()[-1])

    from harness.db import clone, ensure_template, start_server
    from harness.releases import ensure_release, generate
    from harness.releases.extras import matching_template

    release, first = timed(ensure_release, args.version)
    warm = [timed(ensure_release, args.version)[1] for _ in range(20)]
    figures["environment_first_call_s"] = first
    figures["environment_warm_median_s"] = statistics.median(warm)
    _, figures["prisma_generate_s"] = timed(generate, release)

    server, figures["embedded_server_start_s"] = timed(start_server, "embedded")
    with server:
        (release, template), figures["template_build_cold_s"] = timed(
            matching_template, release, lambda m: ensure_template(server, m, release.schema_prisma)
        )
        _, figures["template_reuse_s"] = timed(ensure_template, server, release.migrations_dir, release.schema_prisma)
        clone_times = []
        for _ in range(5):
            db, seconds = timed(clone, server, template, "bench")
            clone_times.append(seconds)
            db.drop()
        figures["clone_median_s"] = statistics.median(clone_times)
        db = clone(server, template, "bench")
        try:
            proc = subprocess.run(
                [str(release.python), "-c", ENGINE_PROBE],
                env={**release.env(), "DATABASE_URL": db.url, "PRISMA_DML_PATH": str(release.schema_prisma)},
                capture_output=True, text=True, timeout=300,
            )
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            figures.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        finally:
            db.drop()

    print(f"litellm {args.version}, prisma {release.prisma_version}, extras {release.extras_version}, engine: {release.engine.description}")
    for name, value in figures.items():
        print(f"  {name:32s} {value * 1000:10.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
