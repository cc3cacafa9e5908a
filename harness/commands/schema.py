"""`schema`: the scenario JSON Schema for editors, or the README's step table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import HarnessError
from ..scenario import json_schema
from ..steps import builtin, readme_table, registry
from .common import EXIT_OK

HELP = "print the scenario JSON Schema (for editors)"


def add_arguments(parser) -> None:
    parser.add_argument("--output", "-o", metavar="FILE")
    parser.add_argument("--builtin", action="store_true", help="only the built-in steps (the published schema), not plugins'")
    parser.add_argument("--steps-table", action="store_true", help="print the README's step table instead")
    parser.add_argument("--update-readme", metavar="README", help="rewrite the step table between the README's "
                        "<!-- steps-table:begin/end --> markers (built-in steps)")


def run(args, console) -> int:  # noqa: ARG001 - writes to stdout or a file, not the console
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
