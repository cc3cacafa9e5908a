"""`explore --litellm V`: generated budget scenarios on the real proxy, checked against the
reference model (harness/model), each discrepancy shrunk and written as a replayable scenario.

Hypothesis draws a small world (a key, maybe a team, maybe an organization, with budgets) and
5-15 actions (requests, clock moves, reset-job runs); harness/scenario/generate.py turns them
into a scenario whose expectations are the model's predictions; the engine runs it on the one
deployment of the release (reset between examples, as scenarios share proxies). Derandomized
from --seed, no example database: the same seed on the same release draws the same examples.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from .. import options
from ..errors import HarnessError
from ..execution.engine import Engine
from ..model import ModelOptions
from ..reports.terminal import ProgressPrinter
from ..scenario import loader
from ..scenario.generate import Budget, Topology, build, render
from ..verdicts import StepStatus, Verdict
from .common import add_shared, check_versions, command_line, run_config

HELP = "generate budget scenarios against a reference model and report the discrepancies as replayable findings"
DESCRIPTION = ("Drive --litellm V with generated step sequences, compare each step with the reference model "
               "(docs/model.md), shrink each discrepancy and write it as a scenario file under DIR/findings/, "
               "one per (entity kind, step family, rule). Exit 1 with a finding, 0 without.")

KINDS = ("key", "team", "organization")
#: how long one finding may be shrunk (each attempt is a real run of a few seconds)
SHRINK_SECONDS = 60.0
#: fixed instants the frozen clock starts at (a month end and a plain Monday): no run depends on today
STARTS = (datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 1, 31, 23, 30, tzinfo=UTC))


def add_arguments(parser) -> None:
    add_shared(parser, ("litellm_versions", "db", "db_url", "redis", "redis_url", "at"), helps={"litellm_versions": "the LiteLLM release to explore (once)"})
    parser.add_argument("--examples", type=int, default=50, metavar="N", help="examples to draw (default 50)")
    parser.add_argument("--time-budget", type=float, default=600.0, metavar="SECONDS",
                        help="stop drawing new examples after this long (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="the seed every example derives from (default 0)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"entity kinds to draw, of {', '.join(KINDS)} (key always)")
    parser.add_argument("--out", default="explore-out", metavar="DIR", help="where findings.json and findings/ go")


def _strategies(kinds: set[str]):
    from hypothesis import strategies as st

    budget = st.builds(Budget, st.one_of(st.none(), st.sampled_from((0.05, 0.1, 0.15, 0.2))),
                       st.one_of(st.none(), st.sampled_from(("1d", "7d", "1mo", "2h"))))
    maybe = (lambda kind: st.one_of(st.none(), budget) if kind in kinds else st.none())
    topology = st.builds(Topology, maybe("organization"), maybe("team"), budget)
    action = st.one_of(st.just(("request",)), st.just(("request",)), st.just(("reset",)),
                       st.tuples(st.just("advance"), st.sampled_from(("3h", "1d2h", "8d", "32d"))))
    return st.tuples(topology, st.lists(action, min_size=5, max_size=15), st.sampled_from(STARTS))


class Explorer:
    def __init__(self, engine: Engine, version: str, seed: int, out: Path, deadline: float):
        self.engine, self.version, self.seed, self.out, self.deadline = engine, version, seed, out, deadline
        self.examples = 0
        #: signature -> (step count, scenario text, rule, summary)
        self.findings: dict[tuple[str, str, str], tuple[int, str, str, str]] = {}
        #: signatures already shrunk (a later round treats them as passes) and when this round's began
        self.findings_reported: set[tuple[str, str, str]] = set()
        self.shrinking_since: float | None = None
        self.work = out / "work"
        self.work.mkdir(parents=True, exist_ok=True)

    def example(self, topology: Topology, actions: list, start: datetime) -> tuple[str, str, str] | None:
        """Run one example; its first discrepancy's signature, or None."""
        rules: list = []
        name = f"explore_{self.version.replace('.', '_')}_seed{self.seed}"
        scenario, lines = build(topology, actions, start, name=name, options=ModelOptions(), rules=rules,
                                header=[f"explore --litellm {self.version} --seed {self.seed}: a reference-model finding"])
        path = self.work / "example.yaml"
        text = render(scenario, lines)
        path.write_text(text)
        result = self.engine.run_cell(loader.load(path), self.version)
        self.examples += 1
        if result.verdict in (Verdict.ERROR, Verdict.UNSUPPORTED):
            raise HarnessError(f"an example could not run on litellm {self.version}: {result.reason}")
        failed = next((s for s in result.steps if s.status == StepStatus.FAILED), None)
        if failed is None:
            return None
        kind, family, rule = rules[failed.index]
        signature = (kind, family, rule)
        observed = failed.message.split(" | ")[0]
        summary = f"{kind} / {family}: {rule}; step {failed.index + 1} `{failed.source.strip()}`: {observed}"
        known = self.findings.get(signature)
        if known is None or len(scenario["steps"]) < known[0]:
            note = [f"model rule broken: {rule}", f"first failing step: {failed.source.strip()}",
                    f"observed: {observed}", f"seed: {self.seed}"]
            self.findings[signature] = (len(scenario["steps"]), render(scenario, lines[:1] + note + lines[1:]), rule, summary)
        return signature


def run(args, console) -> int:
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis.errors import Flaky

    versions = list(dict.fromkeys(args.litellm_versions or []))
    if len(versions) != 1:
        raise HarnessError("say which release to explore: one --litellm VERSION")
    kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    if not kinds <= set(KINDS):
        raise HarnessError(f"--kinds {args.kinds}: unknown kinds {', '.join(sorted(kinds - set(KINDS)))}; kinds: {', '.join(KINDS)}")
    if args.examples < 1 or args.time_budget <= 0:
        raise HarnessError("--examples must be at least 1 and --time-budget positive")
    version = versions[0]
    check_versions([version])
    out = Path(args.out)
    progress = ProgressPrinter(console, steps=False, details=False)
    started = time.perf_counter()
    deadline = started + args.time_budget
    with Engine([progress], run_config(args), db_kind=options.db_choice(args.db), db_url=args.db_url) as engine:
        explorer = Explorer(engine, version, args.seed, out, deadline)
        strategy = _strategies(kinds)
        # one round per new signature: a round ends when Hypothesis has shrunk a failure whose
        # signature is not yet reported (failures already reported count as passes)
        while explorer.examples < args.examples and time.perf_counter() < deadline:
            budget = args.examples - explorer.examples
            explorer.shrinking_since = None

            @seed(args.seed + len(explorer.findings_reported))
            @settings(max_examples=budget, deadline=None, database=None, derandomize=False, print_blob=False,
                      suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
            @given(strategy)
            def probe(drawn):
                # past the time budget, or past this round's shrink allowance, an example counts
                # as passing without running: Hypothesis then stops with what it has shrunk so far
                now = time.perf_counter()
                if now >= deadline or (explorer.shrinking_since is not None and now - explorer.shrinking_since > SHRINK_SECONDS):
                    return
                signature = explorer.example(*drawn)
                if signature is not None and signature not in explorer.findings_reported:
                    if explorer.shrinking_since is None:
                        explorer.shrinking_since = time.perf_counter()
                    raise AssertionError(signature)

            try:
                probe()
                break  # every example drawn, nothing new
            except (AssertionError, Flaky):
                # Flaky: a shrink attempt ran out of allowance, or the release answered differently
                # on a rerun; either way the explorer kept the smallest failing file it saw
                explorer.findings_reported = set(explorer.findings)
    seconds = time.perf_counter() - started
    return _report(console, explorer, version, args.seed, out, seconds)


def _report(console, explorer: Explorer, version: str, seed: int, out: Path, seconds: float) -> int:
    findings_dir = out / "findings"
    findings_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, (signature, (_n, text, rule, summary)) in enumerate(sorted(explorer.findings.items()), 1):
        path = findings_dir / f"finding_{number:02d}_{signature[0]}_{signature[1]}.yaml"
        path.write_text(text.replace(f"name: explore_{version.replace('.', '_')}_seed{seed}",
                                     f"name: explore_{version.replace('.', '_')}_seed{seed}_{number:02d}", 1))
        entries.append({"id": f"F{number:02d}", "rule": rule, "known": None, "scenario": str(path), "summary": summary})
    doc = {"litellm": version, "seed": seed, "examples": explorer.examples, "seconds": round(seconds, 1),
           "command": command_line(), "findings": entries}
    (out / "findings.json").write_text(json.dumps(doc, indent=2) + "\n")
    rate = explorer.examples / seconds * 60 if seconds else 0.0
    for entry in entries:
        console.print(f"finding {entry['id']}: {entry['summary']} -> {entry['scenario']}", highlight=False, markup=False)
    console.print(f"{explorer.examples} examples in {seconds:.1f}s ({rate:.1f}/min) on litellm {version}, seed {seed}: "
                  f"{len(entries)} finding(s); {out}/findings.json", highlight=False, markup=False)
    return 1 if entries else 0
