"""Find the pair of adjacent releases where a scenario's outcome changes.

Terms (printed by `python -m harness bisect` too):

* **outcome** of a run: ``holds`` (every expectation held: verdict `passed` or `unexpected
  pass`) or ``fails`` (an expectation failed: `reproduced` or `regression`). The scenario's
  `affects` range only names the verdict; the outcome is what the release did.
* Runs that give no outcome are **untestable**: `uninstallable` (no environment could be built),
  `unsupported` (the release cannot run a step for a reason outside the scenario) and `error`
  (the harness could not do a step). Bisect steps over them to a neighbour and says so.
* ``--good V1 --bad V2``: V1 is the **reference**. A release is *old behaviour* when its
  outcome is V1's, *new behaviour* when it is V2's. The search runs over the published final
  releases between V1 and V2 in VERSION order (never upload order: 1.85.0 was uploaded before
  1.84.10), in either direction: V1 may be older (the usual case) or newer than V2, and the
  change may be a regression (holds -> fails) or a fix (fails -> holds).
* The answer is the **boundary pair**: the last release with V1's outcome and the first with
  V2's, walking from V1 towards V2. Releases between them that could not be tested are listed;
  then the boundary is only known to lie somewhere in that span.

Cost: both endpoints are run first to confirm them (a bisect on a wrong premise finds nothing
meaningful), then one run per probe: at most ``ceil(log2(n + 1))`` probes for ``n`` releases
strictly between the endpoints, plus one run per untestable neighbour tried.

`bisect_releases` is a pure function over a ``verdict_of(version) -> verdict`` callable, so its
logic is unit-tested with fake verdicts; the CLI passes a callable that runs the scenario on a
real proxy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from packaging.version import Version

from ..verdicts import FAILS, HOLDS, Verdict

OUTCOME_TEXT = {HOLDS: "every expectation holds", FAILS: "an expectation fails"}


def outcome_of(verdict: str) -> str | None:
    """``holds``, ``fails``, or None when the run earned no outcome."""
    return Verdict(verdict).bisect_outcome


@dataclass(frozen=True)
class Probe:
    """One run of the search, in the order it happened."""

    version: str
    verdict: str
    outcome: str | None
    role: str  # "endpoint" | "probe" | "neighbour"
    note: str = ""
    #: "old" (V1's outcome), "new" (V2's outcome) or "" (untestable / endpoint)
    side: str = ""


@dataclass
class BisectResult:
    reference: str  # V1
    other: str  # V2
    candidates: list[str]  # V1 .. V2 inclusive, in search order (from V1 towards V2)
    probes: list[Probe] = field(default_factory=list)
    last_old: str | None = None  # last release with V1's outcome
    first_new: str | None = None  # first release with V2's outcome
    untested_between: list[str] = field(default_factory=list)
    problem: str | None = None  # why there is no boundary pair (endpoint untestable, same outcome)

    @property
    def found(self) -> bool:
        return self.problem is None and self.last_old is not None and self.first_new is not None

    @property
    def exact(self) -> bool:
        """The boundary is a pair of adjacent releases with nothing untested between them."""
        return self.found and not self.untested_between

    @property
    def runs(self) -> int:
        """Scenario runs made, including attempts on untestable releases."""
        return len(self.probes)

    @property
    def interior(self) -> int:
        """Releases strictly between the endpoints."""
        return max(0, len(self.candidates) - 2)

    @property
    def probe_budget(self) -> int:
        """Probes a plain binary search needs at most over the interior (ignoring untestable ones)."""
        return math.ceil(math.log2(self.interior + 1)) if self.interior else 0

    @property
    def kind(self) -> str:
        """In version order: ``fix`` when the newer side holds and the older fails, ``regression``
        the other way round (whichever end is the reference)."""
        older, newer = sorted((self.reference, self.other), key=Version)
        if (self.outcome(older), self.outcome(newer)) == (FAILS, HOLDS):
            return "fix"
        if (self.outcome(older), self.outcome(newer)) == (HOLDS, FAILS):
            return "regression"
        return "change"

    def outcome(self, version: str) -> str | None:
        for p in self.probes:
            if p.version == version:
                return p.outcome
        return None

    @property
    def ordered_pair(self) -> tuple[str, str] | None:
        """The boundary pair in version order (older first), whatever the search direction."""
        if not self.found:
            return None
        a, b = self.last_old, self.first_new
        return (a, b) if Version(a) < Version(b) else (b, a)


def candidates_between(published: Iterable[Version | str], v1: str, v2: str) -> list[str]:
    """V1, the published final releases strictly between V1 and V2, then V2; ordered from V1 to V2.

    Ordering is by version (PEP 440), never by upload date. V1 and V2 themselves are always
    included (even when they are pre-releases or absent from ``published``); pre-releases
    between them are left out.
    """
    a, b = Version(v1), Version(v2)
    if a == b:
        raise ValueError(f"--good and --bad are the same release ({v1})")
    lo, hi = min(a, b), max(a, b)
    inside = sorted({Version(str(v)) for v in published if lo < Version(str(v)) < hi and not Version(str(v)).is_prerelease})
    ordered = [lo, *inside, hi]
    if a > b:
        ordered.reverse()
    return [str(v) for v in ordered]


def bisect_releases(
    candidates: Sequence[str],
    verdict_of: Callable[[str], str],
    on_probe: Callable[[Probe], None] | None = None,
) -> BisectResult:
    """Binary search for the boundary pair over ``candidates`` (V1 first, V2 last).

    ``verdict_of(version)`` runs the scenario and returns its verdict (a runner verdict or
    ``"uninstallable"``). Each release is run at most once. ``on_probe`` sees every run as it
    finishes (the CLI prints them).
    """
    cands = list(candidates)
    if len(cands) < 2:
        raise ValueError("bisect needs two different releases")
    result = BisectResult(reference=cands[0], other=cands[-1], candidates=cands)
    seen: dict[int, Probe] = {}

    def run(i: int, role: str, note: str = "") -> Probe:
        verdict = verdict_of(cands[i])
        outcome = outcome_of(verdict)
        side = ""
        if outcome is not None and role != "endpoint":
            side = "old" if outcome == ref else "new"
        probe = Probe(cands[i], verdict, outcome, role, note, side)
        seen[i] = probe
        result.probes.append(probe)
        if on_probe:
            on_probe(probe)
        return probe

    ref: str | None = None
    first = run(0, "endpoint", "reference (--good)")
    ref = first.outcome
    last = run(len(cands) - 1, "endpoint", "other end (--bad)")
    if first.outcome is None or last.outcome is None:
        bad = [p for p in (first, last) if p.outcome is None]
        result.problem = "; ".join(
            f"endpoint {p.version} gave no outcome ({p.verdict})" for p in bad
        ) + "; both ends must run the scenario: choose a neighbouring release"
        return result
    if first.outcome == last.outcome:
        result.problem = (
            f"{first.version} and {last.version} behave the same ({OUTCOME_TEXT[first.outcome]}: "
            f"{first.verdict} / {last.verdict}); nothing to bisect between them "
            "(or the behaviour changed an even number of times)"
        )
        return result

    lo, hi = 0, len(cands) - 1  # lo has V1's outcome, hi has V2's
    while hi - lo > 1:
        mid = (lo + hi) // 2
        # a midpoint already tried as someone's neighbour was untestable (testable ones move lo/hi)
        probe = seen[mid] if mid in seen else run(mid, "probe")
        if probe.outcome is None:
            probe = None
            # nearest testable neighbour inside (lo, hi): mid+1, mid-1, mid+2, ...
            for d in range(1, hi - lo):
                for j in (mid + d, mid - d):
                    if lo < j < hi and j not in seen:
                        p = run(j, "neighbour", f"{cands[mid]} gave no outcome; trying its neighbour")
                        if p.outcome is None:
                            continue
                        probe, mid = p, j
                        break
                if probe is not None:
                    break
            if probe is None:  # nothing between lo and hi can be tested
                break
        if probe.outcome == ref:
            lo = mid
        else:
            hi = mid
    result.last_old, result.first_new = cands[lo], cands[hi]
    result.untested_between = [cands[i] for i in range(lo + 1, hi)]
    return result


def describe(result: BisectResult) -> list[str]:
    """The closing lines a person reads."""
    if result.problem:
        return [f"no boundary: {result.problem}"]
    ref_outcome = result.outcome(result.reference)
    new_outcome = result.outcome(result.other)
    lines = [
        f"last release behaving like {result.reference} ({OUTCOME_TEXT[ref_outcome]}): {result.last_old}",
        f"first release behaving like {result.other} ({OUTCOME_TEXT[new_outcome]}): {result.first_new}",
    ]
    if result.untested_between:
        lines.append(
            "the change lies somewhere in between: these releases could not be tested: "
            + ", ".join(result.untested_between)
        )
    else:
        before, after = result.ordered_pair
        lines.append(
            f"in version order, the {result.kind} landed in {after} ({before} is the release before it: "
            "adjacent published final releases)"
        )
    skipped = [p.version for p in result.probes if p.outcome is None]
    lines.append(
        f"{result.runs} runs: 2 endpoints + {result.runs - 2} probes"
        + (f" ({len(skipped)} untestable: {', '.join(skipped)})" if skipped else "")
        + f"; binary search over {result.interior} releases between needs at most {result.probe_budget} probes"
    )
    return lines


def markdown(result: BisectResult, doc: dict | None = None) -> str:
    """The search as Markdown: one row per run, then the answer."""
    seconds = {p["version"]: p.get("seconds") for p in (doc or {}).get("probes", [])}
    lines = [f"## Bisect: {result.reference} -> {result.other}", ""]
    lines += ["| run | release | role | verdict | outcome | behaves like | seconds |", "|---:|---|---|---|---|---|---:|"]
    for i, p in enumerate(result.probes, 1):
        like = {"old": result.reference, "new": result.other}.get(p.side, "-" if p.outcome else "skipped (no outcome)")
        if p.role == "endpoint":
            like = "(endpoint)"
        secs = seconds.get(p.version)
        lines.append(f"| {i} | `{p.version}` | {p.role} | {p.verdict} | {p.outcome or '-'} | {like} | "
                     f"{'' if secs is None else secs} |")
    lines.append("")
    lines += [f"- {line}" for line in describe(result)]
    return "\n".join(lines)


def bisect_json(result: BisectResult, scenario: str, good: str, bad: str, walls: dict[str, float],
                seconds: float) -> dict:
    """`bisect.json`: the search, every probe with its wall time (an environment build included)."""
    return {
        "scenario": scenario,
        "good": good,
        "bad": bad,
        "candidates": result.candidates,
        "probes": [{"version": p.version, "verdict": p.verdict, "outcome": p.outcome, "role": p.role,
                    "side": p.side, "seconds": round(walls[p.version], 1)} for p in result.probes],
        "last_old": result.last_old,
        "first_new": result.first_new,
        "untested_between": result.untested_between,
        "problem": result.problem,
        "kind": result.kind if result.found else None,
        "runs": result.runs,
        "probe_budget": result.probe_budget,
        "seconds": round(seconds, 1),
        "summary": describe(result),
    }
