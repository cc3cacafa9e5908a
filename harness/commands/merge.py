"""`merge REPORT...`: the shards' matrix.json (matrix --shard I/N --out DIR) -> one matrix's reports
and exit code."""

from __future__ import annotations

from ..reports.matrix import print_matrix, write_matrix_reports
from ..reports.merge import merge
from .common import command_line

HELP = "join the matrix reports of the shards (matrix --shard I/N --out DIR) into one matrix's reports"
DESCRIPTION = ("Check that the reports are the shards of one matrix (same scenarios, releases, clock and proxy "
               "config; every shard once; every cell once), then print and write what a single matrix run would, "
               "and exit with its exit code.")


def add_arguments(parser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT", help="a shard's matrix.json, or the directory holding it")
    parser.add_argument("--out", metavar="DIR", help="write matrix.json, matrix.md and junit.xml into DIR")


def run(args, console) -> int:
    results, meta = merge(args.reports, command_line())
    if args.out:
        names = write_matrix_reports(args.out, results, meta)
        console.print(f"reports written to {args.out}/ ({', '.join(names)})", highlight=False, markup=False)
    print_matrix(console, results)
    console.print(f"{len(results)} cells from {len(meta['shard']['merged'])} shards", highlight=False)
    if meta["exit_code"] and not any(r.failing for r in results):
        console.print("[bold red]no cell earned a verdict[/]: every release was uninstallable or unsupported",
                      highlight=False)
    return meta["exit_code"]
