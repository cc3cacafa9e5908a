"""`explore --litellm V`: generated budget scenarios on the real proxy, checked against the
reference model (harness/model), each discrepancy shrunk and written as a replayable scenario.

Hypothesis draws a small world (a key; maybe a team, an organization, an owning user and its team
membership, an end user and a tag every request names, a budget tier some of them use; each
with budgets) and 5-15 actions (requests, clock moves, reset-job runs, management updates of
max_budget / budget_duration / spend, reset_spend); harness/scenario/generate.py turns them
into a scenario whose expectations are the model's predictions; the engine runs it on the one
deployment of the release (reset between examples, as scenarios share proxies). No example
database and a fixed seed: the same seed on the same release draws the same examples.

Why `@given` over a drawn (topology, actions) pair and not a RuleBasedStateMachine: an example
here must become one scenario file that `run` replays, and the model's prediction for a step
depends on the steps before it, so the whole sequence is built (and the model run) before the
release sees any of it; the proxy then runs it as one ordinary scenario (one session, one
database reset, the engine's usual step loop and reports). A state machine would drive the
proxy rule by rule through a second execution path, and Hypothesis would shrink a trace that
still has to be rendered to a file afterwards; drawing the list shrinks the file directly
(dropping actions, dropping kinds: an update of a kind the topology lost is left out).
"""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from .. import options
from ..errors import HarnessError, ScenarioError
from ..execution.engine import Engine
from ..model import ModelOptions
from ..reports.html import HtmlReport
from ..reports.terminal import ProgressBar, ProgressPrinter
from ..reports import check as ck
from ..scenario import loader
from ..scenario.generate import TIER, Budget, Topology, build, render
from ..scenario.known import Label, Report, label
from ..verdicts import StepStatus, Verdict
from .common import add_shared, check_versions, command_line, run_config

HELP = "generate budget scenarios against a reference model and report the discrepancies as replayable findings"
DESCRIPTION = ("Drive --litellm V with generated step sequences, compare each step with the reference model "
               "(docs/model.md), shrink each discrepancy and write it as a scenario file under DIR/findings/, "
               "one per (entity kind, step family, rule). Exit 1 with a finding, 0 without.")

KINDS = ("key", "team", "organization", "user", "team_member", "end_user", "tag", "budget")
#: how many runs one finding may be shrunk with (each attempt is a real run of a few seconds): a
#: count, not a time, so the same seed on the same release shrinks to the same files and leaves
#: the same examples to explore, however loaded the machine is
SHRINK_RUNS = 12
#: fixed instants the frozen clock starts at, so no run depends on today: a Monday 10:00 (a 1d
#: period ends at midnight, not 24 h on) and Monday 1 June 00:00, where midnight, next Monday and
#: the 1st of next month are 1d, 7d and 30d away, so a release that counts spans from creation
#: agrees with the calendar and the examples explore past the alignment findings
STARTS = (datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 6, 1, 0, 0, tzinfo=UTC))
DURATIONS = ("1d", "7d", "30d", "1mo", "2h")
#: management updates drawn: the kinds /{kind}/update takes, and the values (a raise, a cut, a day)
UPDATES = (("max_budget", (10.0, 0.3, 0.05)), ("budget_duration", ("1d", "7d")), ("spend", (0.0,)))


def add_arguments(parser) -> None:
    add_shared(parser, ("litellm_versions", "db", "db_url", "redis", "redis_url", "at"), helps={"litellm_versions": "the LiteLLM release to explore (once)"})
    parser.add_argument("--examples", type=int, default=50, metavar="N", help="examples to draw (default 50)")
    parser.add_argument("--time-budget", type=float, default=600.0, metavar="SECONDS",
                        help="stop drawing new examples after this long (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="the seed every example derives from (default 0)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"entity kinds to draw, of {', '.join(KINDS)} (key always)")
    parser.add_argument("--out", default="explore-out", metavar="DIR", help="where findings.json and findings/ go")
    parser.add_argument("--deployment", metavar="FILE-or-YAML",
                        help="the generated scenarios' `deployment:` section (replicas, Redis), as a YAML file "
                        "(a scenario file's `deployment:` or the section alone) or inline, e.g. "
                        "'{replicas: [a, b], redis: cache}'")
    parser.add_argument("--html", metavar="FILE", help="write one self-contained HTML page: each finding's smallest "
                        "example with its timeline")
    parser.add_argument("--relabel", action="store_true",
                        help="start nothing: label the findings in --out DIR again against the catalogue as it is now")
    parser.add_argument("--catalogue", default=ck.DEFAULT_CATALOGUE, metavar="DIR",
                        help=f"the catalogue findings are labelled from (default {ck.DEFAULT_CATALOGUE}/)")


def present_kinds(topology: Topology) -> list[str]:
    """The kinds an example's world holds (what its updates may name)."""
    present = ["key"] + [kind for kind, value in (("organization", topology.organization), ("team", topology.team),
                                                  ("user", topology.user), ("end_user", topology.end_user),
                                                  ("tag", topology.tag), ("budget", topology.tier)) if value is not None]
    return present + (["team_member"] if topology.user is not None and topology.team is not None else [])


def strategies(kinds: set[str]):
    """(topology, actions, start) examples over the entity kinds in `kinds` (the key always).
    Updates and reset_spend name a kind the drawn world holds, and raise a budget more often
    than anything else: a blocked entity given more budget is where caches go stale."""
    from hypothesis import strategies as st

    amount = st.sampled_from((0.05, 0.1, 0.15, 0.2))
    budget = st.builds(Budget, st.one_of(st.none(), amount), st.one_of(st.none(), st.sampled_from(DURATIONS)))
    maybe = (lambda kind, values=budget: st.one_of(st.none(), values) if kind in kinds else st.none())
    on_tier = (lambda kind: maybe(kind, st.one_of(budget, st.just(TIER))) if "budget" in kinds else maybe(kind))
    topology = st.builds(Topology, maybe("organization"), maybe("team"), budget, user=maybe("user"),
                         member=maybe("team_member", amount), end_user=on_tier("end_user"), tag=on_tier("tag"),
                         tier=maybe("budget", st.builds(Budget, amount, st.sampled_from(DURATIONS))))

    def actions_for(top: Topology):
        return actions_over(tuple(present_kinds(top)))

    @functools.lru_cache(maxsize=None)
    def actions_over(kinds_present: tuple[str, ...]):
        # one strategy per set of kinds present (a few dozen), not one built afresh per draw
        present = st.sampled_from(kinds_present)
        update = st.one_of(*(st.tuples(st.just("update"), present, st.just(field), st.sampled_from(values))
                             for field, values in UPDATES))
        raise_budget = st.tuples(st.just("update"), present, st.just("max_budget"), st.just(10.0))
        resettable = [k for k in ("key", "team_member") if k in kinds_present]
        action = st.one_of(st.just(("request",)), st.just(("request",)), st.just(("request",)), st.just(("reset",)),
                           st.tuples(st.just("advance"), st.sampled_from(("3h", "1d2h", "8d", "32d"))), update,
                           raise_budget, st.tuples(st.just("reset_spend"), st.sampled_from(resettable)))
        return st.lists(action, min_size=5, max_size=15)

    return topology.flatmap(lambda top: st.tuples(st.just(top), actions_for(top), st.sampled_from(STARTS)))


def deployment_section(text: str | None, work: Path) -> dict | None:
    """The `deployment:` mapping --deployment names, checked as the loader checks a scenario's."""
    import yaml

    if not text:
        return None
    path = Path(text)
    where = f"--deployment {text}"
    try:
        doc = yaml.safe_load(path.read_text() if path.is_file() else text)
    except (OSError, yaml.YAMLError) as exc:
        raise HarnessError(f"{where}: not YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(doc, dict) and "deployment" in doc:
        doc = doc["deployment"]
    if not isinstance(doc, dict):
        raise HarnessError(f"{where}: expected a mapping like {{replicas: [a, b], redis: cache}}")
    probe = work / "deployment-check.yaml"
    probe.write_text(yaml.safe_dump({"name": "deployment_check", "deployment": doc, "steps": ["flush_spend"]}))
    try:
        loader.load(probe)
    except ScenarioError as exc:
        raise HarnessError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None
    return doc


def catalogue_reports(directory: str) -> dict[str, Report]:
    """name -> its issue link and measured range, for every catalogue scenario under `directory`."""
    reports = {}
    for path in ck.catalogue_files([directory]):
        try:
            meta = loader.load(path).meta
        except ScenarioError:
            continue  # `validate` reports a bad file; a label needs only the good ones
        if meta.issue:
            reports[meta.name] = Report(meta.name, meta.issue, meta.affects)
    return reports


class Explorer:
    def __init__(self, engine: Engine, version: str, seed: int, out: Path, deadline: float):
        self.engine, self.version, self.seed, self.out, self.deadline = engine, version, seed, out, deadline
        self.examples = 0
        #: signature -> (step count, scenario text, rule, summary)
        self.findings: dict[tuple[str, str, str], tuple[int, str, str, str]] = {}
        #: signature -> the run of its smallest example (for --html)
        self.results: dict = {}
        #: signatures already shrunk (a later round treats them as passes) and when this round's began
        self.findings_reported: set[tuple[str, str, str]] = set()
        #: the example count when this round's shrinking began (None: not shrinking)
        self.shrinking_since: int | None = None
        #: examples the release could not run: reason -> count
        self.not_run: dict[str, int] = {}
        #: new discrepancies that did not fail again on a fresh deployment
        self.unconfirmed = 0
        self.say = lambda line: None
        self.deployment: dict | None = None
        self.work = out / "work"
        self.work.mkdir(parents=True, exist_ok=True)

    def example(self, topology: Topology, actions: list, start: datetime) -> tuple[str, str, str] | None:
        """Run one example; its first discrepancy's signature, or None."""
        rules: list = []
        name = f"explore_{self.version.replace('.', '_')}_seed{self.seed}"
        scenario, lines = build(topology, actions, start, name=name, options=ModelOptions(), rules=rules,
                                skip=frozenset(self.findings_reported), deployment=self.deployment,
                                header=[f"explore --litellm {self.version} --seed {self.seed}: a reference-model finding"])
        path = self.work / "example.yaml"
        text = render(scenario, lines)
        path.write_text(text)
        loaded = loader.load(path)
        result = self.engine.run_cell(loaded, self.version)
        self.examples += 1
        signature = self.signature(result, scenario, rules)
        if signature is not None and signature not in self.findings and signature not in self.findings_reported:
            # a discrepancy not seen yet: confirmed on a fresh deployment before it counts, since
            # one left broken by an earlier example (a stuck spend writer, say) fails everything
            self.engine.session(self.version).discard_deployment(loaded)
            result = self.engine.run_cell(loaded, self.version)
            again = self.signature(result, scenario, rules)
            if again != signature:
                self.say(f"example {self.examples}: {signature[0]} / {signature[1]} did not fail again on a fresh "
                         f"deployment: the shared one was discarded")
                self.unconfirmed += 1
        return self.record(result, scenario, lines, rules)

    def signature(self, result, scenario: dict, rules: list) -> tuple[str, str, str] | None:
        failed = next((s for s in result.steps if s.status == StepStatus.FAILED), None)
        if failed is None or result.verdict in (Verdict.ERROR, Verdict.UNSUPPORTED):
            return None
        step = scenario["steps"][failed.index]
        return rules[failed.index] or (next(iter(step)) if isinstance(step, dict) else step, "action",
                                       "the management call succeeds")

    def record(self, result, scenario: dict, lines: list[str], rules: list) -> tuple[str, str, str] | None:
        """The run's first discrepancy's signature (kept as a finding when its file is the
        smallest yet), or None."""
        if result.verdict in (Verdict.ERROR, Verdict.UNSUPPORTED):
            # a step the release cannot drive (an update field it lacks, say): no verdict, no finding
            reason = (result.reason or "").splitlines()[0][:160] if result.reason else "no reason given"
            self.not_run[f"{result.verdict.value}: {reason}"] = self.not_run.get(f"{result.verdict.value}: {reason}", 0) + 1
            return None
        signature = self.signature(result, scenario, rules)
        if signature is None:
            return None
        failed = next(s for s in result.steps if s.status == StepStatus.FAILED)
        kind, family, rule = signature
        observed = failed.message.split(" | ")[0]
        summary = f"{kind} / {family}: {rule}; step {failed.index + 1} `{failed.source.strip()}`: {observed}"
        # nothing after the failing step can change it: the finding's file ends there
        scenario = {**scenario, "steps": scenario["steps"][: failed.index + 1]}
        known = self.findings.get(signature)
        if known is None:
            self.say(f"example {self.examples}: new discrepancy {summary}")
        if known is None or len(scenario["steps"]) < known[0]:
            note = [f"model rule broken: {rule}", f"first failing step: {failed.source.strip()}",
                    f"observed: {observed}", f"seed: {self.seed}"]
            self.findings[signature] = (len(scenario["steps"]), render(scenario, lines[:1] + note + lines[1:]), rule, summary)
            self.results[signature] = result
        return signature


def run(args, console) -> int:
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis.errors import Flaky

    if args.relabel:
        return relabel(console, Path(args.out), catalogue_reports(args.catalogue))
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
    out.mkdir(parents=True, exist_ok=True)
    deployment = deployment_section(args.deployment, out)
    progress = ProgressPrinter(console, steps=False, details=False)
    started = time.perf_counter()
    deadline = started + args.time_budget
    bar = ProgressBar(console)  # live on a terminal only: one tick per example run (shrink attempts too)
    page = HtmlReport(args.html, progress.say, title=f"explore --litellm {version} --seed {args.seed}: findings",
                      grid=False) if args.html else None
    with bar, Engine([progress, bar, *([page] if page else [])], run_config(args), db_kind=options.db_choice(args.db), db_url=args.db_url) as engine:
        bar.before_run(SimpleNamespace(cell_count=args.examples))
        explorer = Explorer(engine, version, args.seed, out, deadline)
        explorer.deployment = deployment
        explorer.say = lambda line: console.print(f"{time.perf_counter() - started:7.1f}s {line}", highlight=False, markup=False)
        strategy = strategies(kinds)
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
                if now >= deadline or (explorer.shrinking_since is not None
                                       and explorer.examples - explorer.shrinking_since >= SHRINK_RUNS):
                    return
                signature = explorer.example(*drawn)
                if signature is not None and signature not in explorer.findings_reported:
                    if explorer.shrinking_since is None:
                        explorer.shrinking_since = explorer.examples
                    raise AssertionError(signature)

            try:
                probe()
                break  # every example drawn, nothing new
            except (AssertionError, Flaky):
                # Flaky: a shrink attempt ran out of allowance, or the release answered differently
                # on a rerun; either way the explorer kept the smallest failing file it saw
                explorer.findings_reported = set(explorer.findings)
    seconds = time.perf_counter() - started
    if page is not None:
        page.write([explorer.results[s] for s in sorted(explorer.results)])
    return _report(console, explorer, version, args.seed, out, seconds, catalogue_reports(args.catalogue))


def _label_line(known: Label, version: str) -> str:
    """The first line of a finding's file: which report it is, or that it is new."""
    if not known.issue:
        return "# new: no catalogue scenario fails this way\n"
    return f"# known: {known.issue} (catalogue scenario {known.scenario}, whose measured range " + (
        "has this release)\n" if known.in_measured_range else f"does NOT have {version}: look again)\n")


def _label_fields(known: Label) -> dict:
    return {"known": known.issue, "catalogue_scenario": known.scenario, "in_measured_range": known.in_measured_range}


def relabel(console, out: Path, catalogue: dict[str, Report]) -> int:
    """`--relabel`: the findings of an earlier run labelled against the catalogue as it is now."""
    try:
        doc = json.loads((out / "findings.json").read_text())
        findings = doc["findings"]
    except (OSError, ValueError, KeyError) as exc:
        raise HarnessError(f"--relabel {out}: no findings.json from explore there ({exc})") from None
    for entry in findings:
        known = label(tuple(entry["signature"]), doc["litellm"], catalogue)
        entry.update(_label_fields(known))
        path = Path(entry["scenario"])
        if path.is_file():
            lines = path.read_text().split("\n", 1)
            path.write_text(_label_line(known, doc["litellm"]) + (lines[1] if lines[0].startswith(("# new:", "# known:")) else "\n".join(lines)))
        console.print(f"finding {entry['id']} [{entry['known'] or 'new'}]: {entry['summary']}", highlight=False, markup=False)
    (out / "findings.json").write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"{len(findings)} finding(s) relabelled, {sum(1 for e in findings if e['known'])} known; "
                  f"{out}/findings.json", highlight=False, markup=False)
    return 1 if findings else 0


def _report(console, explorer: Explorer, version: str, seed: int, out: Path, seconds: float,
            catalogue: dict[str, Report]) -> int:
    findings_dir = out / "findings"
    findings_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, (signature, (_n, text, rule, summary)) in enumerate(sorted(explorer.findings.items()), 1):
        path = findings_dir / f"finding_{number:02d}_{signature[0]}_{signature[1]}.yaml"
        known = label(signature, version, catalogue)
        path.write_text(_label_line(known, version) + text.replace(f"name: explore_{version.replace('.', '_')}_seed{seed}",
                                            f"name: explore_{version.replace('.', '_')}_seed{seed}_{number:02d}", 1))
        entries.append({"id": f"F{number:02d}", "signature": list(signature), "rule": rule, **_label_fields(known),
                        "scenario": str(path), "summary": summary})
    doc = {"litellm": version, "seed": seed, "examples": explorer.examples, "seconds": round(seconds, 1),
           "command": command_line(), "not_run": explorer.not_run, "unconfirmed": explorer.unconfirmed, "findings": entries}
    (out / "findings.json").write_text(json.dumps(doc, indent=2) + "\n")
    rate = explorer.examples / seconds * 60 if seconds else 0.0
    for entry in entries:
        console.print(f"finding {entry['id']} [{entry['known'] or 'new'}]: {entry['summary']} -> {entry['scenario']}",
                      highlight=False, markup=False)
    for reason, count in sorted(explorer.not_run.items()):
        console.print(f"{count} example(s) not run: {reason}", highlight=False, markup=False)
    console.print(f"{explorer.examples} examples in {seconds:.1f}s ({rate:.1f}/min) on litellm {version}, seed {seed}: "
                  f"{len(entries)} finding(s), {sum(1 for e in entries if e['known'])} known; {out}/findings.json",
                  highlight=False, markup=False)
    return 1 if entries else 0
