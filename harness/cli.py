"""`python -m harness` / `litellm-harness`: run and validate scenario files.

Exit codes:
  0  every verdict is `passed`, `reproduced` (failed inside `affects`) or `unsupported`
  1  at least one `regression`, `unexpected pass` or `error`
  2  bad input: an invalid scenario file, an unknown release, a bad option
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
    validate = sub.add_parser("validate", help="check scenario files without starting anything")
    validate.add_argument("files", nargs="+", metavar="FILE")
    schema = sub.add_parser("schema", help="print the scenario JSON Schema (for editors)")
    schema.add_argument("--output", "-o", metavar="FILE")
    return parser


def _load_all(paths: list[str], console: Console):
    from .errors import ScenarioError
    from .scenario import load

    scenarios, errors = [], []
    for path in paths:
        try:
            scenarios.append(load(path))
        except ScenarioError as exc:
            errors.append(str(exc))
    for line in errors:
        console.print(f"[bold red]invalid[/] {line}", highlight=False)
    return scenarios, errors


def _validate(args, console: Console) -> int:
    scenarios, errors = _load_all(args.files, console)
    for scenario in scenarios:
        console.print(f"[green]valid[/] {scenario.path}: {scenario.name}, {len(scenario.steps)} steps", highlight=False)
    return EXIT_BAD_INPUT if errors else EXIT_OK


def _schema(args, console: Console) -> int:
    from .scenario import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _check_versions(versions: list[str]) -> None:
    from packaging.version import InvalidVersion, Version

    from .releases import index

    available = set(index.published_versions(include_prereleases=True))
    for text in versions:
        try:
            version = Version(text)
        except InvalidVersion:
            raise HarnessError(f"{text!r} is not a version number (write e.g. 1.82.3)") from None
        if version not in available:
            near = ", ".join(str(v) for v in index.nearby(version))
            raise HarnessError(f"litellm {text} is not on the package index; nearby: {near}")


def _run(args, console: Console) -> int:
    from .db import start_server
    from .report import print_result, result_dict, summary_table
    from .runner import run_matrix

    scenarios, errors = _load_all(args.scenarios, console)
    if errors:
        return EXIT_BAD_INPUT
    versions = list(dict.fromkeys(args.litellm_versions or []))
    if not versions:
        raise HarnessError("say which release to run: --litellm VERSION (repeatable)")
    _check_versions(versions)

    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {message}", highlight=False)

    db_kind = options.db_choice(args.db)
    with start_server(db_kind, args.db_url) as server:
        progress(f"PostgreSQL: {server.kind} {server.version} ({server.reason})")
        results = run_matrix(scenarios, versions, server, progress=progress, on_result=lambda r: print_result(console, r))
    if args.report_dir:
        out = Path(args.report_dir)
        out.mkdir(parents=True, exist_ok=True)
        for r in results:
            name = f"{r.scenario.name}-{r.version}.json"
            (out / name).write_text(json.dumps(result_dict(r), indent=2, default=str) + "\n")
        progress(f"reports written to {out}/")
    console.print(summary_table(results))
    return EXIT_FAILED if any(r.failing for r in results) else EXIT_OK


def _terminate(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "validate":
            return _validate(args, console)
        if args.command == "schema":
            return _schema(args, console)
        return _run(args, console)
    except HarnessError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: every proxy and server this run started has been stopped")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
