"""`matrix SCENARIO... (--litellm V ... | --range SPEC)`: scenarios x releases, in parallel workers;
the terminal table, matrix.json, matrix.md and junit.xml."""

from __future__ import annotations

from .. import options
from ..errors import HarnessError
from ..execution import shards as sh
from ..execution.engine import Engine
from ..execution.hooks import Hooks
from ..execution.plan import DEFAULT_CAP, Plan, select_releases, version_key
from ..releases.index import SAMPLES
from ..reports.bundle import BundleWriter
from ..reports.html import HtmlReport
from ..reports.matrix import print_matrix, write_matrix_reports
from ..reports.terminal import ProgressBar, ProgressPrinter, VerdictPrinter
from .common import EXIT_BAD_INPUT, add_jobs, add_shared, check_versions, command_line, jobs_of, load_all, run_config

HELP = "run scenarios x releases (a list or a range), optionally in parallel; terminal table, JSON, Markdown, JUnit"
DESCRIPTION = ("Run every scenario on every release. Releases: --litellm (repeatable) and/or --range "
               "(a PEP 440 range resolved against the package index, at most --cap releases, oldest and newest kept). "
               "Releases that cannot be installed are cells marked `uninstallable`, with the installer's reason.")


def add_arguments(parser) -> None:
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    add_shared(parser, ("litellm_versions", "db", "db_url", "redis", "redis_url", "at", "proxy_config"))
    parser.add_argument("--range", dest="range_spec", metavar="SPEC",
                        help="published final releases in a PEP 440 range, e.g. '>=1.82,<1.86'")
    parser.add_argument("--sample", choices=SAMPLES, default="all",
                        help="which releases of --range: all (default), or minor-ends (the first and last patch "
                        "of each minor line)")
    parser.add_argument("--cap", type=int, default=None, metavar="N",
                        help=f"at most N releases from --range, thinned evenly (default {DEFAULT_CAP} with "
                        "--sample all, no cap with a sample)")
    add_jobs(parser, 1, "worker processes, each with its own PostgreSQL server: releases run side by side, and "
             "with more jobs than releases each release's deployments are split among them (default 1)")
    parser.add_argument("--out", metavar="DIR", help="write matrix.json, matrix.md and junit.xml into DIR")
    parser.add_argument("--bundle", metavar="DIR", help="write a bug-report bundle (redacted) into DIR")
    parser.add_argument("--html", metavar="FILE", help="write one self-contained HTML page (a grid of scenario x "
                        "release linking to each cell's timeline on the scenario's clock) to FILE")
    parser.add_argument("--shard", metavar="I/N", help="run only shard I of N of the cells (for N machines; the same "
                        "split on each, releases kept together where possible); `merge` joins their --out reports")


class MatrixReports(Hooks):
    """`--out DIR`: matrix.json, matrix.md and junit.xml of the whole run (or of one shard)."""

    def __init__(self, directory: str, meta: dict, whole: bool, say):
        self.directory, self.meta, self.whole, self.say = directory, meta, whole, say

    def after_run(self, run) -> None:
        meta = {**self.meta, "jobs": run.jobs, "seconds": round(run.seconds, 1),
                "release_seconds": {v: round(t, 1) for v, t in run.release_seconds.items()},
                "exit_code": run.exit_code(whole=self.whole)}
        meta["shard"] = {**meta["shard"], "cells": len(run.results)}
        names = write_matrix_reports(self.directory, run.results, meta)
        self.say(f"reports written to {self.directory}/ ({', '.join(names)})")


def run(args, console) -> int:
    shard = sh.parse_shard(args.shard) if args.shard is not None else sh.WHOLE
    scenarios, errors = load_all(args.scenarios, console)
    if errors:
        return EXIT_BAD_INPUT
    scenarios = list({s.path: s for s in scenarios}.values())  # a file named twice is one row of cells
    explicit = list(dict.fromkeys(args.litellm_versions or []))
    if not explicit and not args.range_spec:
        raise HarnessError("say which releases to run: --litellm VERSION (repeatable) and/or --range SPEC")
    jobs = jobs_of(args)
    config = run_config(args)
    check_versions(explicit)
    selection = select_releases(explicit, args.range_spec, args.cap, sample=args.sample)
    progress = ProgressPrinter(console)
    progress.say(f"releases: {', '.join(selection.versions)} ({selection.note})")
    progress.say(f"clock: {config.describe_clock()}")
    identity = sh.identity(scenarios, selection.versions, config.describe_clock(), config.proxy_config)
    only = sh.shard_cells(scenarios, selection.versions, shard) if shard != sh.WHOLE else None
    if only is not None:
        progress.say(f"shard {shard}: {len(only)} of the matrix's {identity['cells']} cells "
                     f"(releases {', '.join(sorted({v for _, v in only}, key=version_key)) or 'none'})")
    bar = ProgressBar(console)
    hooks = [progress, VerdictPrinter(console, details="failing"), bar]
    if args.out:
        note = selection.note if config.at is None else f"{selection.note}; {config.describe_clock()}"
        meta = {"command": command_line(), "selection": selection.note, "clock": config.describe_clock(), "note": note,
                "shard": {"index": shard.index, "count": shard.count}, "matrix": identity}
        hooks.append(MatrixReports(args.out, meta, whole=only is None, say=progress.say))
    if args.bundle:
        hooks.append(BundleWriter(args.bundle, command_line(), progress.say, title="LiteLLM budget matrix report"))
    if args.html:
        hooks.append(HtmlReport(args.html, progress.say, title="LiteLLM budget matrix report", grid=True))
    with bar, Engine(hooks, config, db_kind=options.db_choice(args.db), db_url=args.db_url, jobs=jobs) as engine:
        outcome = engine.run(Plan(scenarios, selection, only))
    code = outcome.exit_code(whole=only is None)
    print_matrix(console, outcome.results)
    of = f" (shard {shard} of the matrix's {identity['cells']})" if only is not None else ""
    console.print(f"{len(outcome.results)} cells{of} in {outcome.seconds:.1f}s with -j {outcome.jobs}", highlight=False)
    if code and not any(r.failing for r in outcome.results):
        console.print("[bold red]no cell earned a verdict[/]: every release was uninstallable or unsupported",
                      highlight=False)
    return code
