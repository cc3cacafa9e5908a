"""`run SCENARIO... --litellm V [...]`: each scenario on each release, a verdict per pair."""

from __future__ import annotations

import json
from pathlib import Path

from .. import options
from ..errors import HarnessError
from ..execution.engine import Engine
from ..execution.hooks import Hooks
from ..execution.plan import Plan
from ..reports.bundle import BundleWriter
from ..reports.html import HtmlReport
from ..reports.matrix import matrix_table
from ..reports.terminal import ProgressPrinter, VerdictPrinter
from ..reports.text import result_dict
from .common import EXIT_BAD_INPUT, check_versions, command_line, load_all, run_config

HELP = "run scenarios on one or more releases and print a verdict per pair"


def add_arguments(parser) -> None:
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    options.add_to(parser.add_argument)
    parser.add_argument("--bundle", metavar="DIR", help="write a bug-report bundle (redacted) into DIR")
    parser.add_argument("--html", metavar="FILE", help="write one self-contained HTML page (each cell's timeline on "
                        "the scenario's clock; a grid of cells when there are several) to FILE")


class CellReports(Hooks):
    """`--report-dir`: one JSON report per (scenario, release), written as each cell ends."""

    def __init__(self, directory: str):
        self.directory = Path(directory)

    def after_scenario(self, result) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{result.scenario.name}-{result.version}.json"
        (self.directory / name).write_text(json.dumps(result_dict(result), indent=2, default=str) + "\n")


def run(args, console) -> int:
    scenarios, errors = load_all(args.scenarios, console)
    if errors:
        return EXIT_BAD_INPUT
    versions = list(dict.fromkeys(args.litellm_versions or []))
    if not versions:
        raise HarnessError("say which release to run: --litellm VERSION (repeatable)")
    config = run_config(args)
    check_versions(versions)
    progress = ProgressPrinter(console)
    progress.say(f"clock: {config.describe_clock()}")
    hooks = [progress, VerdictPrinter(console)]
    if args.report_dir:
        hooks.append(CellReports(args.report_dir))
    if args.bundle:
        hooks.append(BundleWriter(args.bundle, command_line(), progress.say))
    if args.html:
        hooks.append(HtmlReport(args.html, progress.say, title="LiteLLM budget run report"))
    with Engine(hooks, config, db_kind=options.db_choice(args.db), db_url=args.db_url) as engine:
        outcome = engine.run(Plan.of(scenarios, versions, note=f"--litellm {' '.join(versions)}"))
    if args.report_dir:
        progress.say(f"reports written to {args.report_dir}/")
    console.print(matrix_table(outcome.results))  # the details were printed with each verdict
    return outcome.exit_code()
