"""Figures for harness.db: server start, template build (cold) and reuse (warm), clone, drop, reset.

    python benchmarks/bench_db.py [--migrations DIR] [--schema FILE] [--kind embedded] [--repeat 10]

Defaults to LiteLLM's migrations and schema.prisma from the scratch 1.82.3 venv when present.
Prints plain numbers; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.db import clone, ensure_template, list_migrations, reset, start_server  # noqa: E402

SCRATCH = Path("/tmp/scratch/v1823/lib/python3.11/site-packages")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--migrations", type=Path, default=SCRATCH / "litellm_proxy_extras" / "migrations")
    ap.add_argument("--schema", type=Path, default=SCRATCH / "litellm" / "proxy" / "schema.prisma")
    ap.add_argument("--kind", default="embedded")
    ap.add_argument("--url", default=None)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()

    t0 = time.monotonic()
    server = start_server(args.kind, url=args.url)
    start_s = time.monotonic() - t0
    try:
        print(f"server        {ms(start_s)}   {server.kind} PostgreSQL {server.version}")
        print(f"              reason: {server.reason}")
        n = len(list_migrations(args.migrations))

        t0 = time.monotonic()
        tpl = ensure_template(server, args.migrations, args.schema)
        cold = time.monotonic() - t0
        print(f"template cold {ms(cold)}   {n} migrations -> {tpl}"
              + ("" if server.kind != "url" else "  (may have been built before on this server)"))

        warm = []
        for _ in range(args.repeat):
            t0 = time.monotonic()
            ensure_template(server, args.migrations, args.schema)
            warm.append(time.monotonic() - t0)

        clones, drops, resets = [], [], []
        with server.connect(tpl) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        for i in range(args.repeat):
            t0 = time.monotonic()
            db = clone(server, tpl, f"bench{i}")
            clones.append(time.monotonic() - t0)
            with db.connect() as conn:
                conn.execute("""INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ('b', 'x', 'x')""")
            t0 = time.monotonic()
            reset(db)
            resets.append(time.monotonic() - t0)
            t0 = time.monotonic()
            db.drop()
            drops.append(time.monotonic() - t0)

        def line(label: str, xs: list[float], note: str = "") -> None:
            print(f"{label:<13} {ms(statistics.median(xs))}   median of {len(xs)}, min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f} ms {note}")

        line("template warm", warm)
        line("clone", clones, "(CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY)")
        line("reset", resets, f"(one TRUNCATE of {tables - 1} tables, incl. connect)")
        line("drop", drops, "(DROP DATABASE ... WITH (FORCE))")
    finally:
        t0 = time.monotonic()
        server.stop()
        print(f"server stop   {ms(time.monotonic() - t0)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
