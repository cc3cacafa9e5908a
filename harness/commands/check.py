"""`check --litellm V [--from V0]`: the catalogue of known budget bugs on a release, each present,
absent, unsupported or error (harness.reports.check decides; this runs the releases)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.markup import escape

from .. import options
from ..errors import HarnessError
from ..execution.engine import Engine
from ..execution.hooks import Hooks
from ..execution.plan import Plan
from ..reports import check as ck
from ..reports.html import HtmlReport
from ..reports.matrix import print_wide
from ..reports.terminal import ProgressBar, ProgressPrinter
from ..reports.text import redact
from ..verdicts import Verdict
from .common import EXIT_BAD_INPUT, add_jobs, add_shared, check_versions, command_line, jobs_of, load_all, run_config

HELP = "run the catalogue of known budget bugs on a release: each present, absent, unsupported or error"
DESCRIPTION = ("Run every catalogue scenario (a scenario file with an `issue:` link) on --litellm V and "
               "list each known bug (one issue link) as present, absent, unsupported or error. With --from V0 also on "
               "V0, and list the bugs the upgrade fixes and the ones it brings in. A bug several scenarios show is "
               "present if any shows it, else error if any errored, else absent if any ran every step, else "
               "unsupported. Exit 1 when a bug is present on V or an entry is error (--no-fail: 0).")


#: one worker per CPU, at most two: each imports LiteLLM (a CPU's worth for ~12 s) and runs its proxies
DEFAULT_JOBS = max(1, min(2, os.cpu_count() or 1))


def add_arguments(parser) -> None:
    add_shared(parser, ("litellm_versions", "db", "db_url", "redis", "redis_url", "at", "proxy_config"),
               helps={"litellm_versions": "the LiteLLM release to check (once)"})
    parser.add_argument("--from", dest="from_version", metavar="V0", help="the release you run now: list what "
                        "upgrading from it fixes and brings in")
    parser.add_argument("--catalogue", nargs="+", default=[ck.DEFAULT_CATALOGUE], metavar="PATH",
                        help=f"scenario files and/or directories (searched recursively; default {ck.DEFAULT_CATALOGUE}/); "
                        "files without `issue:` are controls and are not run")
    parser.add_argument("--out", metavar="DIR", help="write check.json and check.md into DIR")
    parser.add_argument("--html", metavar="FILE", help="write one self-contained HTML page (a grid of scenario x "
                        "release linking to each cell's timeline on the scenario's clock) to FILE")
    add_jobs(parser, DEFAULT_JOBS, "worker processes, each with its own PostgreSQL server and proxies; the "
             f"release's deployments are split among them (default {DEFAULT_JOBS}: the CPUs, at most 2)")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a known bug is present")


class StatusPrinter(Hooks):
    """`present org_budget_reset (#25495) on litellm 1.84.10 (3.1s, reproduced): line 29: ...`"""

    def __init__(self, console):
        self.console = console

    def after_scenario(self, result) -> None:
        status = Verdict(result.verdict).check_status
        self.console.print(
            f"[{status.style}]{status}[/] {result.scenario.name} ({ck.issue_label(result.scenario.meta.issue)}) "
            f"on litellm {result.version} ({result.seconds:.1f}s, {result.verdict}): "
            f"{escape(redact(result.reason, result.secrets)[:200])}", highlight=False, markup=True)


def run(args, console) -> int:
    versions = list(dict.fromkeys(args.litellm_versions or []))
    if len(versions) != 1:
        raise HarnessError("say which release to check: one --litellm VERSION (and --from VERSION for the one you "
                           "run now)")
    target, before = versions[0], args.from_version
    if before is not None and before == target:
        raise HarnessError(f"--from {before} is the release being checked: give the one you upgrade from")
    loaded, errors = load_all([str(p) for p in ck.catalogue_files(args.catalogue)], console)
    if errors:
        return EXIT_BAD_INPUT
    scenarios = ck.catalogue(loaded)
    if not scenarios:
        raise HarnessError(f"--catalogue {' '.join(args.catalogue)}: no scenario has an `issue:` link (only controls)")
    config = run_config(args)
    jobs = jobs_of(args)
    releases = [before, target] if before else [target]
    check_versions(releases)
    progress = ProgressPrinter(console, steps=False, details=False)  # the builds and start-ups, not every step
    bugs = len({s.meta.issue for s in scenarios})
    progress.say(f"checking {bugs} known bugs ({len(scenarios)} scenarios, {len(loaded) - len(scenarios)} controls "
                 f"left out) on litellm {' then '.join(releases)}; {config.describe_clock()}")
    note = f"--litellm {target}" + (f" --from {before}" if before else "")
    bar = ProgressBar(console)
    hooks = [progress, StatusPrinter(console), bar]
    if args.html:
        hooks.append(HtmlReport(args.html, progress.say, title=f"LiteLLM known-bug check: {note}", grid=True))
    with bar, Engine(hooks, config, db_kind=options.db_choice(args.db), db_url=args.db_url, jobs=jobs) as engine:
        run_ = engine.run(Plan.of(scenarios, releases, note=note))
    for version in releases:
        cells = [r for r in run_.results if r.version == version]
        if cells and all(r.verdict == Verdict.UNINSTALLABLE for r in cells):
            raise HarnessError(f"litellm {version} cannot be checked: {cells[0].reason}")
    secrets = run_.secrets
    result = ck.check_result([ck.observation(r, secrets) for r in run_.results], target, before)
    code = result.exit_code(no_fail=args.no_fail)
    environment = {v: next((r.environment for r in run_.results if r.version == v and "prisma" in r.environment),
                           next(r.environment for r in run_.results if r.version == v)) for v in releases}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"command": command_line(), "catalogue": args.catalogue, "clock": config.describe_clock(),
                "environment": environment, "seconds": round(run_.seconds, 1),
                "release_seconds": {v: round(t, 1) for v, t in run_.release_seconds.items()}, "exit_code": code}
        (out / "check.json").write_text(redact(json.dumps(ck.check_json(result, **meta), indent=2, default=str), secrets)
                                        + "\n")
        (out / "check.md").write_text(redact(ck.check_markdown(result, run_.seconds, ck.measured_on(environment[target],
                                                                                               config)), secrets) + "\n")
        progress.say(f"check report written to {out}/ (check.json, check.md)")
    print_wide(console, ck.check_table(result), most=240)
    console.print(escape(ck.headline(result)) + f" ({run_.seconds:.1f}s)", highlight=False, markup=True)
    return code
