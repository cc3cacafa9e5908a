"""The commands of `python -m harness`, one module each, registered here.

A command module has `HELP` (its line in `--help`), optionally `DESCRIPTION`, and
`add_arguments(parser)` and `run(args, console) -> int` (the exit code). Adding a command is
one module plus one line in COMMANDS. Modules are imported when their command runs or when the
parser is built, never at `import harness`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: command name -> module (in `--help` order)
COMMANDS = {
    "run": "run",
    "matrix": "matrix",
    "merge": "merge",
    "bisect": "bisect",
    "check": "check",
    "explore": "explore",
    "cache": "cache",
    "validate": "validate",
    "schema": "schema",
    "serve": "serve",
    "ctl": "ctl",
    "daemon": "daemon",
}


def command(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")
