"""`python -m harness` / `litellm-harness`: scenario runs, matrices, bisects, checks; the release cache.

Exit codes:
  0  run/matrix: every verdict is `passed`, `reproduced` (failed inside `affects`), `unsupported`
     or `uninstallable`, and at least one cell earned a verdict;
     bisect: a boundary pair was found; cache: listed or pruned; merge: as the single matrix run
  1  run/matrix: at least one `regression`, `unexpected pass` or `error`, or no cell earned a
     verdict (every cell `unsupported` or `uninstallable`; not for one --shard: merge judges
     that for the whole matrix); merge: as the single matrix run;
     bisect: no boundary (an endpoint gave no outcome, or both endpoints behave the same)
  0/1 check: 1 when a known bug is present on the release (or an entry is `error`, on either
     release with --from); 0 when none is (or with --no-fail)
  0/1 serve: 0 when stopped by `ctl stop` (Ctrl-C: 130); ctl: 0 done, 1 when the step failed (an
     expectation not met, skipped, unsupported, or a harness error inside it)
  2  bad input: an invalid scenario file, an unknown release, a bad option or range; ctl: an
     invalid step, no serve running;
     merge: reports that are not every shard of one matrix exactly once
  130 interrupted (Ctrl-C / SIGTERM); everything the run started has been stopped
"""

from __future__ import annotations

import argparse
import signal
import sys

from rich.console import Console
from rich.markup import escape

from .commands import COMMANDS, command
from .commands.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from .errors import HarnessError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m harness",
        description="Run LiteLLM budget scenarios against real proxies and real PostgreSQL.",
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = root.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = command(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", None)))
    return root


def _terminate(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # progress reaches a CI log or `| tee` as it happens, not in blocks
        sys.stdout.reconfigure(line_buffering=True)
    console = Console(highlight=False, soft_wrap=True, emoji=False)  # LiteLLM key names like spend:key:<hash> are not emoji codes
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return command(args.command).run(args, console)
    except HarnessError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: every proxy and server this run started has been stopped")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
