"""`validate FILE...`: check scenario files, start nothing."""

from __future__ import annotations

from rich.markup import escape

from .common import EXIT_BAD_INPUT, EXIT_OK, load_all

HELP = "check scenario files without starting anything"


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")


def run(args, console) -> int:
    scenarios, errors = load_all(args.files, console)
    for scenario in scenarios:
        console.print(f"[green]valid[/] {escape(scenario.path)}: {scenario.name}, {len(scenario.steps)} steps", highlight=False)
    return EXIT_BAD_INPUT if errors else EXIT_OK
