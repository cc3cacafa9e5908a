"""`bisect SCENARIO --good V1 --bad V2`: the adjacent releases between which the outcome changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.markup import escape

from .. import options
from ..errors import HarnessError
from ..execution.engine import Engine
from ..releases import index
from ..reports import bisect as bs
from ..reports.bundle import BundleWriter
from ..reports.terminal import ProgressPrinter
from ..reports.text import redact
from ..verdicts import Verdict
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, add_shared, check_versions, command_line, load_all, run_config

HELP = "find the adjacent releases between which a scenario's outcome changes"
DESCRIPTION = ("Binary search over the published final releases between --good and --bad, in version order. "
               "--good is the reference: a release behaves like it when its outcome (every expectation holds, or one "
               "fails) is the same as --good's. Works in either direction (a regression or a fix; --good older or newer "
               "than --bad). Both endpoints are run to confirm them; releases that cannot be installed or run the "
               "scenario are skipped for a neighbour. Ends with the boundary pair.")


def add_arguments(parser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO")
    parser.add_argument("--good", required=True, metavar="V1", help="the reference release")
    parser.add_argument("--bad", required=True, metavar="V2", help="a release that behaves differently")
    add_shared(parser, ("db", "db_url", "redis", "redis_url", "at", "proxy_config"))
    parser.add_argument("--out", metavar="DIR", help="write bisect.json and bisect.md into DIR")
    parser.add_argument("--bundle", metavar="DIR", help="write a bug-report bundle (redacted) of every run into DIR")


def run(args, console) -> int:
    scenarios, errors = load_all([args.scenario], console)
    if errors:
        return EXIT_BAD_INPUT
    scenario = scenarios[0]
    config = run_config(args)
    check_versions([args.good, args.bad])
    try:
        candidates = bs.candidates_between(index.published_versions(), args.good, args.bad)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    progress = ProgressPrinter(console)
    progress.say(f"bisecting {scenario.name} over {len(candidates)} releases from {candidates[0]} to {candidates[-1]} "
                 f"(version order; {len(candidates) - 2} between; --good {args.good} is the reference)")
    results: dict[str, object] = {}
    walls: dict[str, float] = {}
    started = time.monotonic()
    bundle = BundleWriter(args.bundle, command_line(), progress.say,
                          title=f"LiteLLM bisect report: {scenario.name}") if args.bundle else None

    with Engine([progress, bundle], config, db_kind=options.db_choice(args.db), db_url=args.db_url) as engine:

        def verdict_of(version: str) -> str:
            progress.say(f"running {scenario.name}", version)
            t = time.monotonic()
            results[version], = engine.run_release(version, [scenario])
            walls[version] = time.monotonic() - t  # including an environment build
            return results[version].verdict

        def show(probe: bs.Probe) -> None:
            result = results[probe.version]
            where = {"old": f"like {args.good}", "new": f"like {args.bad}"}.get(probe.side, "")
            if probe.outcome is None:
                where = "no outcome: skipped, trying a neighbour" if probe.role != "endpoint" else "no outcome"
            console.print(
                f"[bold]bisect run {len(results)}[/] ({probe.role}) litellm {probe.version}: "
                f"[{Verdict(probe.verdict).style}]{probe.verdict}[/] - {probe.outcome or '-'}{', ' + where if where else ''}"
                f" ({walls[probe.version]:.1f}s): {escape(redact(result.reason, result.secrets)[:200])}",
                highlight=False, markup=True)

        outcome = bs.bisect_releases(candidates, verdict_of, on_probe=show)
    seconds = time.monotonic() - started
    lines = bs.describe(outcome)
    for line in lines:
        console.print(("[bold]" if outcome.found else "[bold red]") + escape(line) + "[/]", highlight=False, markup=True)
    console.print(f"bisect took {seconds:.1f}s", highlight=False)
    doc = bs.bisect_json(outcome, scenario.path, args.good, args.bad, walls, seconds)
    probed = [results[p.version] for p in outcome.probes]
    secrets = sorted({s for r in probed for s in r.secrets if s})
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bisect.json").write_text(redact(json.dumps(doc, indent=2), secrets) + "\n")
        (out / "bisect.md").write_text(redact(bs.markdown(outcome, doc), secrets) + "\n")
        progress.say(f"bisect report written to {out}/ (bisect.json, bisect.md)")
    if bundle is not None:
        bundle.write(probed, extra={"bisect": doc}, extra_md=bs.markdown(outcome, doc))
    return EXIT_OK if outcome.found else EXIT_FAILED
