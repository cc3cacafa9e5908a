"""Figures for bulk seeding: `count` end users COPYed into a release's real LiteLLM_EndUserTable, then counted.

    python benchmarks/bench_seed.py [--litellm 1.98.0 | --site-packages DIR] [--count 33000] [--repeat 5]

The table comes from the release's own migrations (a template built once, a clone per round), so
the rows go through the same constraints and indexes as in a scenario. Prints plain numbers;
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.db import clone, ensure_template, start_server  # noqa: E402
from harness.proxy.seeding import count_seeded, seed  # noqa: E402

ENVS = Path.home() / ".cache" / "litellm-harness" / "envs"


def site_packages(release: str) -> Path:
    found = sorted(ENVS.glob(f"litellm-{release}-*/lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"no cached environment of litellm {release} under {ENVS} (run a scenario on it once)")
    return found[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--litellm", default="1.98.0", help="a release with a cached environment")
    ap.add_argument("--site-packages", type=Path, default=None, help="instead of --litellm: its site-packages")
    ap.add_argument("--count", type=int, default=33_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    packages = args.site_packages or site_packages(args.litellm)

    server = start_server("embedded")
    try:
        template = ensure_template(server, packages / "litellm_proxy_extras" / "migrations",
                                   packages / "litellm" / "proxy" / "schema.prisma")
        seeds, counts = [], []
        for i in range(args.repeat):
            db = clone(server, template, f"benchseed{i}")
            try:
                with db.connect() as conn:
                    conn.execute("""INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ('tier', 'x', 'x')""")
                    t0 = time.perf_counter()
                    seeded = seed(conn, "end_user", "crowd-", args.count, 0.5, "tier")
                    seeds.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    found = count_seeded(conn, "end_user", "crowd-", 0.5, 1e-6)
                    counts.append(time.perf_counter() - t0)
                    assert seeded.count == found.rows == args.count and found.off == 0, (seeded, found)
            finally:
                db.drop()

        def line(label: str, xs: list[float]) -> None:
            print(f"{label:<8} {statistics.median(xs):7.3f} s   median of {len(xs)}, min {min(xs):.3f}, max {max(xs):.3f} s")

        print(f"{args.count:,} end users on one budget tier, {server.kind} PostgreSQL {server.version}, "
              f"schema of {packages.parent.parent.parent.name}")
        line("seed", seeds)
        print(f"         {args.count / statistics.median(seeds):,.0f} rows/s (COPY, one transaction)")
        line("count", counts)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
