"""`python -m harness` / `litellm-harness`: scenario runs, matrices, bisects; the release cache.

Exit codes:
  0  run/matrix: every verdict is `passed`, `reproduced` (failed inside `affects`) or
     `unsupported` (matrix: or `uninstallable`, and at least one cell earned a verdict);
     bisect: a boundary pair was found; cache: listed or pruned; merge: as the single matrix run
  1  run/matrix: at least one `regression`, `unexpected pass` or `error`; matrix also when no
     cell earned a verdict (every cell `unsupported` or `uninstallable`; not for one --shard:
     merge judges that for the whole matrix); merge: as the single matrix run;
     bisect: no boundary (an endpoint gave no outcome, or both endpoints behave the same)
  0/1 check: 1 when a known bug is present on the release (or an entry is `error`, on either
     release with --from); 0 when none is (or with --no-fail)
  2  bad input: an invalid scenario file, an unknown release, a bad option or range;
     merge: reports that are not every shard of one matrix exactly once
  130 interrupted (Ctrl-C / SIGTERM); everything the run started has been stopped
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from . import options
from .errors import HarnessError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Run LiteLLM budget scenarios against real proxies and real PostgreSQL.",
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenarios on one or more releases and print a verdict per pair")
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    options.add_to(run.add_argument)
    run.add_argument("--bundle", metavar="DIR", help="write a bug-report bundle (redacted) into DIR")
    _add_matrix_parser(sub)
    _add_merge_parser(sub)
    _add_bisect_parser(sub)
    _add_check_parser(sub)
    _add_cache_parser(sub)
    validate = sub.add_parser("validate", help="check scenario files without starting anything")
    validate.add_argument("files", nargs="+", metavar="FILE")
    schema = sub.add_parser("schema", help="print the scenario JSON Schema (for editors)")
    schema.add_argument("--output", "-o", metavar="FILE")
    schema.add_argument("--builtin", action="store_true", help="only the built-in steps (the published schema), not plugins'")
    schema.add_argument("--steps-table", action="store_true", help="print the README's step table instead")
    schema.add_argument("--update-readme", metavar="README", help="rewrite the step table between the README's "
                        "<!-- steps-table:begin/end --> markers (built-in steps)")
    return parser


def _add_shared(parser: argparse.ArgumentParser, dests: tuple[str, ...], helps: dict[str, str] | None = None) -> None:
    """The shared options named in `dests`; `helps` rewords one for this command."""
    for option in options.OPTIONS:
        if option.dest in dests:
            help_text = (helps or {}).get(option.dest, option.help)
            parser.add_argument(*option.flags, dest=option.dest, help=help_text, **option.kwargs)


def _add_matrix_parser(sub) -> None:
    from .matrix import DEFAULT_CAP
    from .releases.index import SAMPLES

    matrix = sub.add_parser(
        "matrix",
        help="run scenarios x releases (a list or a range), optionally in parallel; terminal table, JSON, Markdown, JUnit",
        description="Run every scenario on every release. Releases: --litellm (repeatable) and/or --range "
        "(a PEP 440 range resolved against the package index, at most --cap releases, oldest and newest kept). "
        "Releases that cannot be installed are cells marked `uninstallable`, with the installer's reason.",
    )
    matrix.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    _add_shared(matrix, ("litellm_versions", "db", "db_url", "redis", "redis_url", "at", "proxy_config"))
    matrix.add_argument("--range", dest="range_spec", metavar="SPEC",
                        help="published final releases in a PEP 440 range, e.g. '>=1.82,<1.86'")
    matrix.add_argument("--sample", choices=SAMPLES, default="all",
                        help="which releases of --range: all (default), or minor-ends (the first and last patch "
                        "of each minor line)")
    matrix.add_argument("--cap", type=int, default=None, metavar="N",
                        help=f"at most N releases from --range, thinned evenly (default {DEFAULT_CAP} with "
                        "--sample all, no cap with a sample)")
    matrix.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help="releases run in parallel, each in its own process with its own PostgreSQL server "
                        "(default 1; one proxy per release at a time)")
    matrix.add_argument("--out", metavar="DIR", help="write matrix.json, matrix.md and junit.xml into DIR")
    matrix.add_argument("--bundle", metavar="DIR", help="write a bug-report bundle (redacted) into DIR")
    matrix.add_argument("--shard", metavar="I/N", help="run only shard I of N of the cells (for N machines; the same "
                        "split on each, releases kept together where possible); `merge` joins their --out reports")


def _add_bisect_parser(sub) -> None:
    bisect = sub.add_parser(
        "bisect",
        help="find the adjacent releases between which a scenario's outcome changes",
        description="Binary search over the published final releases between --good and --bad, in version order. "
        "--good is the reference: a release behaves like it when its outcome (every expectation holds, or one "
        "fails) is the same as --good's. Works in either direction (a regression or a fix; --good older or newer "
        "than --bad). Both endpoints are run to confirm them; releases that cannot be installed or run the "
        "scenario are skipped for a neighbour. Ends with the boundary pair.",
    )
    bisect.add_argument("scenario", metavar="SCENARIO")
    bisect.add_argument("--good", required=True, metavar="V1", help="the reference release")
    bisect.add_argument("--bad", required=True, metavar="V2", help="a release that behaves differently")
    _add_shared(bisect, ("db", "db_url", "redis", "redis_url", "at", "proxy_config"))
    bisect.add_argument("--out", metavar="DIR", help="write bisect.json and bisect.md into DIR")
    bisect.add_argument("--bundle", metavar="DIR", help="write a bug-report bundle (redacted) of every run into DIR")


def _add_cache_parser(sub) -> None:
    from .releases.cache import DEFAULT_MAX_SIZE

    cache = sub.add_parser("cache", help="list or prune the cached release environments",
                           description="Release environments live under HARNESS_CACHE_DIR/envs. An environment a "
                           "running harness holds (or one being built) is never pruned.")
    actions = cache.add_subparsers(dest="cache_command", required=True)
    actions.add_parser("list", help="each environment's size and last use, oldest use first")
    prune = actions.add_parser("prune", help="remove environments by age and/or to a size cap, oldest use first",
                               description="Without options: prune to the default cap (HARNESS_CACHE_MAX_SIZE, "
                               f"default {DEFAULT_MAX_SIZE}), which also applies after every build.")
    prune.add_argument("--older-than", metavar="SPAN", help="remove environments unused for longer (7d, 36h, 2w)")
    prune.add_argument("--max-size", metavar="SIZE", help="then remove the oldest until the cache fits (20G, 500M)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")


def _cache(args, console: Console) -> int:
    from datetime import datetime, timezone

    from .releases import cache
    from .scenario.durations import parse_span
    from .settings import cache_dir

    envs_root = cache_dir() / "envs"
    now = time.time()

    def line(env) -> str:
        used = datetime.fromtimestamp(env.last_used, timezone.utc).isoformat(timespec="minutes")
        held = "  in use" if env.held else ""
        return f"{env.version:<10} {cache.format_size(env.size):>7}  last used {used} ({_age(now - env.last_used)} ago){held}  {env.root.name}"

    if args.cache_command == "list":
        envs = cache.list_envs(envs_root)
        for env in envs:
            console.print(line(env), highlight=False, markup=False)
        total = sum(e.size for e in envs)
        console.print(f"{len(envs)} environments, {cache.format_size(total)} in {envs_root} "
                      f"({cache.format_size(cache.disk_use(envs_root))} on disk: files hard-linked into several count once)",
                      highlight=False, markup=False)
        return EXIT_OK
    older_than = max_size = None
    if args.older_than is not None:
        try:
            text = args.older_than.strip()
            older_than = parse_span(float(text) if text.replace(".", "", 1).isdigit() else text).total_seconds()
        except ValueError as exc:
            raise HarnessError(f"--older-than: {exc}") from None
    if args.max_size is not None:
        max_size = cache.parse_size(args.max_size)
    if older_than is None and max_size is None:
        max_size = cache.default_max_size()
    before = sum(e.size for e in cache.list_envs(envs_root))
    removed = cache.prune(envs_root, older_than=older_than, max_size=max_size, dry_run=args.dry_run, now=now)
    verb = "would remove" if args.dry_run else "removed"
    for env in removed:
        console.print(f"{verb} {line(env)}", highlight=False, markup=False)
    after = before - sum(e.size for e in removed)
    console.print(f"{verb} {len(removed)} environments: {cache.format_size(before)} -> {cache.format_size(after)}",
                  highlight=False, markup=False)
    return EXIT_OK


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _load_all(paths: list[str], console: Console):
    from rich.markup import escape

    from .errors import ScenarioError
    from .scenario import load

    scenarios, errors = [], []
    for path in paths:
        try:
            scenarios.append(load(path))
        except ScenarioError as exc:
            errors.append(str(exc))
    for line in errors:
        console.print(f"[bold red]invalid[/] {escape(line)}", highlight=False)
    return scenarios, errors


def _validate(args, console: Console) -> int:
    from rich.markup import escape

    scenarios, errors = _load_all(args.files, console)
    for scenario in scenarios:
        console.print(f"[green]valid[/] {escape(scenario.path)}: {scenario.name}, {len(scenario.steps)} steps", highlight=False)
    return EXIT_BAD_INPUT if errors else EXIT_OK


def _schema(args, console: Console) -> int:
    from .scenario import json_schema
    from .steps import builtin, readme_table, registry

    if args.update_readme:
        readme = Path(args.update_readme)
        begin, end = "<!-- steps-table:begin -->\n", "\n<!-- steps-table:end -->"
        text = readme.read_text()
        if begin not in text or end not in text:
            raise HarnessError(f"{readme}: no <!-- steps-table:begin/end --> markers")
        head, rest = text.split(begin, 1)
        readme.write_text(head + begin + readme_table(builtin()) + end + rest.split(end, 1)[1])
        return EXIT_OK
    if args.steps_table:
        text = readme_table(builtin() if args.builtin else registry()) + "\n"
    else:
        text = json.dumps(json_schema(plugins=not args.builtin), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _check_versions(versions: list[str]) -> None:
    from packaging.version import InvalidVersion, Version

    from .releases import index

    wanted = []
    for text in versions:  # a typo is reported before the package index is asked
        try:
            wanted.append((text, Version(text)))
        except InvalidVersion:
            raise HarnessError(f"{text!r} is not a version number (write e.g. 1.82.3)") from None
    available = set(index.published_versions(include_prereleases=True))
    for text, version in wanted:
        if version not in available:
            near = ", ".join(str(v) for v in index.nearby(version))
            raise HarnessError(f"litellm {text} is not on the package index; nearby: {near}")


def _run(args, console: Console) -> int:
    from .db import start_server
    from .report import matrix_table, print_result, result_dict
    from .execution.session import run_matrix

    scenarios, errors = _load_all(args.scenarios, console)
    if errors:
        return EXIT_BAD_INPUT
    versions = list(dict.fromkeys(args.litellm_versions or []))
    if not versions:
        raise HarnessError("say which release to run: --litellm VERSION (repeatable)")
    config = options.run_config(args.at, getattr(args, "proxy_config", None), getattr(args, "redis", None),
                                 getattr(args, "redis_url", None))
    _check_versions(versions)

    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {_escape(message)}", highlight=False)

    db_kind = options.db_choice(args.db)
    rows: dict = {}
    with start_server(db_kind, args.db_url) as server:
        progress(f"PostgreSQL: {server.kind} {server.version} ({server.reason})")
        progress(f"clock: {config.describe_clock()}")
        if args.bundle:  # same runs, plus the database rows after each scenario for the bundle
            from .matrix import session_cells

            results, rows = session_cells(scenarios, versions, server, progress, lambda r: print_result(console, r),
                                          config)
        else:
            results = run_matrix(scenarios, versions, server, progress=progress,
                                 on_result=lambda r, _session: print_result(console, r), config=config)
    if args.report_dir:
        out = Path(args.report_dir)
        out.mkdir(parents=True, exist_ok=True)
        for r in results:
            name = f"{r.scenario.name}-{r.version}.json"
            (out / name).write_text(json.dumps(result_dict(r), indent=2, default=str) + "\n")
        progress(f"reports written to {out}/")
    if args.bundle:
        from .bundle import write_bundle

        bundle = write_bundle(args.bundle, results, rows=rows, command=_command_line())
        progress(f"bug-report bundle written to {bundle.path}/ ({len(bundle.files)} files)")
    console.print(matrix_table(results))  # the details were printed with each verdict
    return EXIT_FAILED if any(r.failing for r in results) else EXIT_OK


def _command_line() -> str:
    import shlex

    return "python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _escape(message: str) -> str:
    """Progress lines quote scenario source (`tags: [t1]`): not rich markup."""
    from rich.markup import escape

    return escape(message)


def _progress_printer(console: Console):
    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {_escape(message)}", highlight=False, markup=True)

    return progress


def _matrix(args, console: Console) -> int:
    from rich.markup import escape

    from . import matrix as mx
    from . import shard as sh
    from .report import CI_OUTCOME, VERDICT_STYLE, at_note, failure_details, print_matrix, redact, write_matrix_reports

    shard = sh.parse_shard(args.shard) if args.shard is not None else sh.WHOLE
    scenarios, errors = _load_all(args.scenarios, console)
    if errors:
        return EXIT_BAD_INPUT
    scenarios = list({s.path: s for s in scenarios}.values())  # a file named twice is one row of cells
    explicit = list(dict.fromkeys(args.litellm_versions or []))
    if not explicit and not args.range_spec:
        raise HarnessError("say which releases to run: --litellm VERSION (repeatable) and/or --range SPEC")
    if args.jobs < 1:
        raise HarnessError(f"-j must be at least 1 (got {args.jobs})")
    config = options.run_config(args.at, getattr(args, "proxy_config", None), getattr(args, "redis", None),
                                 getattr(args, "redis_url", None))
    _check_versions(explicit)
    selection = mx.select_releases(explicit, args.range_spec, args.cap, sample=args.sample)
    progress = _progress_printer(console)
    progress(f"releases: {', '.join(selection.versions)} ({selection.note})")
    progress(f"clock: {config.describe_clock()}")
    identity = sh.identity(scenarios, selection.versions, config.describe_clock(), config.proxy_config)
    only = sh.shard_cells(scenarios, selection.versions, shard) if shard != sh.WHOLE else None
    if only is not None:
        progress(f"shard {shard}: {len(only)} of the matrix's {identity['cells']} cells "
                 f"(releases {', '.join(sorted({v for _, v in only}, key=mx.version_key)) or 'none'})")

    def show(result, _rows) -> None:
        style = VERDICT_STYLE.get(result.verdict, "bold")
        console.print(f"[{style}]{result.verdict.upper()}[/] {result.scenario.name} on litellm {result.version}{at_note(result)} "
                      f"({result.seconds:.1f}s): {escape(redact(result.reason, result.secrets))}", highlight=False,
                      markup=True)
        if CI_OUTCOME.get(result.verdict) == "fail":
            details = failure_details(result)
            if details:
                console.print(details, highlight=False, markup=False)

    run = mx.run_matrix(scenarios, selection, jobs=args.jobs, db_kind=options.db_choice(args.db), db_url=args.db_url,
                        progress=progress, on_result=show, snapshot=bool(args.bundle), config=config, only=only)
    code = mx.exit_code(run.results, whole=only is None)
    if args.out:
        meta = {"command": _command_line(), "selection": run.note, "clock": config.describe_clock(),
                "note": run.note if config.at is None else f"{run.note}; {config.describe_clock()}",
                "jobs": run.jobs, "seconds": round(run.seconds, 1),
                "release_seconds": {v: round(t, 1) for v, t in run.release_seconds.items()}, "exit_code": code,
                "shard": {"index": shard.index, "count": shard.count, "cells": len(run.results)}, "matrix": identity}
        names = write_matrix_reports(args.out, run.results, meta)
        progress(f"reports written to {args.out}/ ({', '.join(names)})")
    if args.bundle:
        from .bundle import write_bundle

        bundle = write_bundle(args.bundle, run.results, rows=run.rows, command=_command_line(),
                              title="LiteLLM budget matrix report", note=run.note)
        progress(f"bug-report bundle written to {bundle.path}/ ({len(bundle.files)} files)")
    print_matrix(console, run.results)
    of = f" (shard {shard} of the matrix's {identity['cells']})" if only is not None else ""
    console.print(f"{len(run.results)} cells{of} in {run.seconds:.1f}s with -j {run.jobs}", highlight=False)
    if code and not any(r.failing for r in run.results):
        console.print("[bold red]no cell earned a verdict[/]: every release was uninstallable or unsupported",
                      highlight=False)
    return code


def _add_merge_parser(sub) -> None:
    merge = sub.add_parser(
        "merge", help="join the matrix reports of the shards (matrix --shard I/N --out DIR) into one matrix's reports",
        description="Check that the reports are the shards of one matrix (same scenarios, releases, clock and proxy "
        "config; every shard once; every cell once), then print and write what a single matrix run would, "
        "and exit with its exit code.")
    merge.add_argument("reports", nargs="+", metavar="REPORT", help="a shard's matrix.json, or the directory holding it")
    merge.add_argument("--out", metavar="DIR", help="write matrix.json, matrix.md and junit.xml into DIR")


def _merge(args, console: Console) -> int:
    from .merge import merge
    from .report import print_matrix, write_matrix_reports

    results, meta = merge(args.reports, _command_line())
    if args.out:
        names = write_matrix_reports(args.out, results, meta)
        console.print(f"reports written to {args.out}/ ({', '.join(names)})", highlight=False, markup=False)
    print_matrix(console, results)
    console.print(f"{len(results)} cells from {len(meta['shard']['merged'])} shards", highlight=False)
    if meta["exit_code"] and not any(r.failing for r in results):
        console.print("[bold red]no cell earned a verdict[/]: every release was uninstallable or unsupported",
                      highlight=False)
    return meta["exit_code"]


def _bisect(args, console: Console) -> int:
    from rich.markup import escape

    from . import bisect as bs
    from .db import start_server
    from .matrix import run_release
    from .releases import index
    from .report import VERDICT_STYLE, redact

    scenarios, errors = _load_all([args.scenario], console)
    if errors:
        return EXIT_BAD_INPUT
    scenario = scenarios[0]
    config = options.run_config(args.at, getattr(args, "proxy_config", None), getattr(args, "redis", None),
                                 getattr(args, "redis_url", None))
    _check_versions([args.good, args.bad])
    try:
        candidates = bs.candidates_between(index.published_versions(), args.good, args.bad)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    progress = _progress_printer(console)
    progress(f"bisecting {scenario.name} over {len(candidates)} releases from {candidates[0]} to {candidates[-1]} "
             f"(version order; {len(candidates) - 2} between; --good {args.good} is the reference)")
    cells: dict[str, tuple] = {}
    walls: dict[str, float] = {}
    started = time.monotonic()

    with start_server(options.db_choice(args.db), args.db_url) as server:
        progress(f"PostgreSQL: {server.kind} {server.version} ({server.reason})")

        def verdict_of(version: str) -> str:
            progress(f"[{version}] running {scenario.name}")
            t = time.monotonic()
            (result, rows), = run_release(version, [scenario], server, lambda m: progress(f"[{version}] {m}"),
                                          snapshot=bool(args.bundle), config=config)
            cells[version] = (result, rows)
            walls[version] = time.monotonic() - t  # including an environment build
            return result.verdict

        def show(probe: bs.Probe) -> None:
            result = cells[probe.version][0]
            style = VERDICT_STYLE.get(probe.verdict, "bold")
            where = {"old": f"like {args.good}", "new": f"like {args.bad}"}.get(probe.side, "")
            if probe.outcome is None:
                where = "no outcome: skipped, trying a neighbour" if probe.role != "endpoint" else "no outcome"
            n = len([c for c in cells])
            console.print(
                f"[bold]bisect run {n}[/] ({probe.role}) litellm {probe.version}: [{style}]{probe.verdict}[/]"
                f" - {probe.outcome or '-'}{', ' + where if where else ''}"
                f" ({walls[probe.version]:.1f}s): {escape(redact(result.reason, result.secrets)[:200])}",
                highlight=False, markup=True)

        outcome = bs.bisect_releases(candidates, verdict_of, on_probe=show)
    seconds = time.monotonic() - started
    lines = bs.describe(outcome)
    for line in lines:
        console.print(("[bold]" if outcome.found else "[bold red]") + escape(line) + "[/]", highlight=False, markup=True)
    console.print(f"bisect took {seconds:.1f}s", highlight=False)
    doc = {
        "scenario": scenario.path,
        "good": args.good,
        "bad": args.bad,
        "candidates": outcome.candidates,
        "probes": [{"version": p.version, "verdict": p.verdict, "outcome": p.outcome, "role": p.role,
                    "side": p.side, "seconds": round(walls[p.version], 1)} for p in outcome.probes],
        "last_old": outcome.last_old,
        "first_new": outcome.first_new,
        "untested_between": outcome.untested_between,
        "problem": outcome.problem,
        "kind": outcome.kind if outcome.found else None,
        "runs": outcome.runs,
        "probe_budget": outcome.probe_budget,
        "seconds": round(seconds, 1),
        "summary": lines,
    }
    results = [cells[p.version][0] for p in outcome.probes]
    secrets = sorted({s for r in results for s in r.secrets if s})
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bisect.json").write_text(redact(json.dumps(doc, indent=2), secrets) + "\n")
        (out / "bisect.md").write_text(redact(bs.markdown(outcome, doc), secrets) + "\n")
        progress(f"bisect report written to {out}/ (bisect.json, bisect.md)")
    if args.bundle:
        from .bundle import write_bundle

        rows = {(scenario.path, v): r for v, (_, r) in cells.items() if r is not None}
        bundle = write_bundle(args.bundle, results, rows=rows, command=_command_line(),
                              title=f"LiteLLM bisect report: {scenario.name}", extra={"bisect": doc},
                              extra_md=bs.markdown(outcome, doc))
        progress(f"bug-report bundle written to {bundle.path}/ ({len(bundle.files)} files)")
    return EXIT_OK if outcome.found else EXIT_FAILED


# --------------------------------------------------------------------------------------------
# check: is it safe to upgrade to a release? (harness/check.py decides; this runs the releases)


def _add_check_parser(sub) -> None:
    from .check import DEFAULT_CATALOGUE

    check = sub.add_parser(
        "check",
        help="run the catalogue of known budget bugs on a release: each present, absent, unsupported or error",
        description="Run every catalogue scenario (a scenario file with an `issue:` link) on --litellm V and "
        "list each known bug (one issue link) as present, absent, unsupported or error. With --from V0 also on "
        "V0, and list the bugs the upgrade fixes and the ones it brings in. A bug several scenarios show is "
        "present if any shows it, else error if any errored, else absent if any ran every step, else "
        "unsupported. Exit 1 when a bug is present on V or an entry is error (--no-fail: 0).",
    )
    _add_shared(check, ("litellm_versions", "db", "db_url", "redis", "redis_url", "at", "proxy_config"),
                helps={"litellm_versions": "the LiteLLM release to check (once)"})
    check.add_argument("--from", dest="from_version", metavar="V0", help="the release you run now: list what "
                       "upgrading from it fixes and brings in")
    check.add_argument("--catalogue", nargs="+", default=[DEFAULT_CATALOGUE], metavar="PATH",
                       help=f"scenario files and/or directories (searched recursively; default {DEFAULT_CATALOGUE}/); "
                       "files without `issue:` are controls and are not run")
    check.add_argument("--out", metavar="DIR", help="write check.json and check.md into DIR")
    check.add_argument("--no-fail", action="store_true", help="exit 0 even when a known bug is present")


def _check(args, console: Console) -> int:
    import re

    from rich.markup import escape

    from . import check as ck
    from . import matrix as mx
    from .report import print_wide, redact

    versions = list(dict.fromkeys(args.litellm_versions or []))
    if len(versions) != 1:
        raise HarnessError("say which release to check: one --litellm VERSION (and --from VERSION for the one you "
                           "run now)")
    target, before = versions[0], args.from_version
    if before is not None and before == target:
        raise HarnessError(f"--from {before} is the release being checked: give the one you upgrade from")
    loaded, errors = _load_all([str(p) for p in ck.catalogue_files(args.catalogue)], console)
    if errors:
        return EXIT_BAD_INPUT
    scenarios = ck.catalogue(loaded)
    if not scenarios:
        raise HarnessError(f"--catalogue {' '.join(args.catalogue)}: no scenario has an `issue:` link (only controls)")
    config = options.run_config(args.at, getattr(args, "proxy_config", None), getattr(args, "redis", None),
                                 getattr(args, "redis_url", None))
    releases = [before, target] if before else [target]
    _check_versions(releases)
    progress = _progress_printer(console)
    bugs = len({s.meta.issue for s in scenarios})
    progress(f"checking {bugs} known bugs ({len(scenarios)} scenarios, {len(loaded) - len(scenarios)} controls "
             f"left out) on litellm {' then '.join(releases)}; {config.describe_clock()}")
    starts = {f"{s.name} ({s.path})" for s in scenarios}
    step_line = re.compile(r"^  (ok  |FAIL|ERR |N/A |skip) ")

    def quiet(message: str) -> None:  # the release build and proxy start-up, not every step
        rest = message.split("] ", 1)[1] if message.startswith("[") else message
        if rest in starts or step_line.match(rest) or rest.startswith("reset database and proxy caches"):
            return
        progress(message)
        sys.stdout.flush()  # CI logs and pipes see the long steps as they happen

    def show(result, _rows) -> None:
        status = ck.status_of(result.verdict)
        console.print(f"[{ck.STATUS_STYLE[status]}]{status}[/] {result.scenario.name} ({ck.issue_label(result.scenario.meta.issue)}) "
                      f"on litellm {result.version} ({result.seconds:.1f}s, {result.verdict}): "
                      f"{escape(redact(result.reason, result.secrets)[:200])}", highlight=False, markup=True)
        sys.stdout.flush()

    selection = mx.Selection(versions=releases, note=f"--litellm {target}" + (f" --from {before}" if before else ""))
    run = mx.run_matrix(scenarios, selection, jobs=1, db_kind=options.db_choice(args.db), db_url=args.db_url,
                        progress=quiet, on_result=show, config=config)
    for version in releases:
        cells = [r for r in run.results if r.version == version]
        if cells and all(r.verdict == mx.UNINSTALLABLE for r in cells):
            raise HarnessError(f"litellm {version} cannot be checked: {cells[0].reason}")
    secrets = run.secrets
    result = ck.check_result([ck.observation(r, secrets) for r in run.results], target, before)
    code = result.exit_code(no_fail=args.no_fail)
    environment = {v: next((r.environment for r in run.results if r.version == v and "prisma" in r.environment),
                           next(r.environment for r in run.results if r.version == v)) for v in releases}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"command": _command_line(), "catalogue": args.catalogue, "clock": config.describe_clock(),
                "environment": environment, "seconds": round(run.seconds, 1),
                "release_seconds": {v: round(t, 1) for v, t in run.release_seconds.items()}, "exit_code": code}
        doc = ck.check_json(result, **meta)
        (out / "check.json").write_text(redact(json.dumps(doc, indent=2, default=str), secrets) + "\n")
        env = environment[target]
        where = (f"Measured on PostgreSQL {env.get('postgres', '?')}, prisma {env.get('prisma', '?')}, "
                 f"{env.get('prisma_engine', '?')}; {config.describe_clock()}"
                 + (f"; proxy config {env['proxy_config']}" if env.get("proxy_config") else "") + ".")
        (out / "check.md").write_text(redact(ck.check_markdown(result, run.seconds, where), secrets) + "\n")
        progress(f"check report written to {out}/ (check.json, check.md)")
    print_wide(console, ck.check_table(result), most=240)
    console.print(escape(ck.headline(result)) + f" ({run.seconds:.1f}s)", highlight=False, markup=True)
    return code


def _terminate(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # progress reaches a CI log or `| tee` as it happens, not in blocks
        sys.stdout.reconfigure(line_buffering=True)
    console = Console(highlight=False, soft_wrap=True, emoji=False)  # LiteLLM key names like spend:key:<hash> are not emoji codes
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "validate":
            return _validate(args, console)
        if args.command == "schema":
            return _schema(args, console)
        if args.command == "matrix":
            return _matrix(args, console)
        if args.command == "merge":
            return _merge(args, console)
        if args.command == "cache":
            return _cache(args, console)
        if args.command == "bisect":
            return _bisect(args, console)
        if args.command == "check":
            return _check(args, console)
        return _run(args, console)
    except HarnessError as exc:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: every proxy and server this run started has been stopped")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
