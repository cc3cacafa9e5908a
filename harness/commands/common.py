"""What every command does the same way: load scenario files, check release names, say what ran."""

from __future__ import annotations

import shlex
import sys

from rich.console import Console
from rich.markup import escape

from .. import options
from ..errors import HarnessError, ScenarioError
from ..execution.results import RunConfig
from ..scenario import load
from ..scenario.model import Scenario

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def load_all(paths: list[str], console: Console) -> tuple[list[Scenario], list[str]]:
    """Every file loaded before anything starts; one `invalid file:line: ...` line per bad one."""
    scenarios, errors = [], []
    for path in paths:
        try:
            scenarios.append(load(path))
        except ScenarioError as exc:
            errors.append(str(exc))
    for line in errors:
        console.print(f"[bold red]invalid[/] {escape(line)}", highlight=False)
    return scenarios, errors


def check_versions(versions: list[str]) -> None:
    """A typo or an unpublished release is bad input (exit 2), said before anything starts."""
    from packaging.version import InvalidVersion, Version

    from ..releases import index

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


def run_config(args) -> RunConfig:
    return options.run_config(args.at, getattr(args, "proxy_config", None), getattr(args, "redis", None),
                              getattr(args, "redis_url", None))


def command_line() -> str:
    return "python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def add_shared(parser, dests: tuple[str, ...], helps: dict[str, str] | None = None) -> None:
    """The shared options (harness.options) named in `dests`; `helps` rewords one for this command."""
    for option in options.OPTIONS:
        if option.dest in dests:
            help_text = (helps or {}).get(option.dest, option.help)
            parser.add_argument(*option.flags, dest=option.dest, help=help_text, **option.kwargs)


def add_jobs(parser, default: int, help: str) -> None:
    """`-j N`: worker processes, each with its own PostgreSQL server (see execution/engine.py)."""
    parser.add_argument("-j", "--jobs", type=int, default=default, metavar="N", help=help)


def jobs_of(args) -> int:
    if args.jobs < 1:
        raise HarnessError(f"-j must be at least 1 (got {args.jobs})")
    return args.jobs
