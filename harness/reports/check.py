"""`check`: is it safe to upgrade to release V? The known budget bugs, each present or absent on V.

The catalogue is every scenario file with an `issue:` link (scenarios without one are controls).
A bug is one `issue:` link; several scenarios may show it (two paths to the same stale counter).

* A scenario's verdict maps to a status by what was measured, never by `affects`:
  an expectation failed (`reproduced`, `regression`) -> ``present``; every step passed
  (`passed`, `unexpected pass`) -> ``absent``; `unsupported` (or `uninstallable`) ->
  ``unsupported``; `error` -> ``error``.
* The scenarios of one bug combine by precedence: ``present`` if any scenario shows the bug;
  else ``error`` if any errored (the bug may hide behind it); else ``absent`` if any ran every
  step (the others could not run on this release); else ``unsupported``. The deciding
  scenario (the first in catalogue order with that status) gives the entry's scenario and reason.
* `affects` only annotates: when it predicts the other answer than the measured present/absent,
  the entry says so (a surprise worth reporting).
* ``--from V0``: the same for V0; ``fixed`` are present on V0 and absent on V, ``introduced``
  absent on V0 and present on V.

Everything here is pure (results in, documents out); `harness.commands.check` runs the releases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import HarnessError
from ..scenario.model import Scenario
from ..verdicts import CHECK_PRECEDENCE, CheckStatus, Verdict

PRESENT, ABSENT, UNSUPPORTED, ERROR = CheckStatus.PRESENT, CheckStatus.ABSENT, CheckStatus.UNSUPPORTED, CheckStatus.ERROR
FIXED, INTRODUCED = "fixed", "introduced"

DEFAULT_CATALOGUE = "scenarios"


def status_of(verdict: str) -> str:
    """The bug's status from one scenario's verdict (the measurement, not `affects`)."""
    try:
        return Verdict(verdict).check_status
    except ValueError:
        raise ValueError(f"unknown verdict {verdict!r}") from None


def combine(statuses: Iterable[str]) -> str:
    """One bug's status from its scenarios' statuses (see the module docstring)."""
    seen = set(statuses)
    for status in CHECK_PRECEDENCE:
        if status in seen:
            return status
    raise ValueError("a bug needs at least one scenario status")


def issue_label(url: str) -> str:
    """`#25495` for an issue, `PR #38686` for a pull request, else the link itself."""
    m = re.search(r"/(issues|pull)/(\d+)", url)
    if not m:
        return url
    return ("PR #" if m.group(1) == "pull" else "#") + m.group(2)


# --------------------------------------------------------------------------------------------
# the catalogue


def catalogue_files(paths: Iterable[str]) -> list[Path]:
    """Scenario files under `paths` (files, or directories searched recursively), sorted, once each."""
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise HarnessError(f"--catalogue {text}: no such file or directory")
    unique = list(dict.fromkeys(files))
    if not unique:
        raise HarnessError(f"--catalogue {' '.join(paths)}: no scenario files (*.yaml) there")
    return unique


def catalogue(scenarios: Iterable[Scenario]) -> list[Scenario]:
    """The scenarios that have an `issue:` link, in the order given (the controls are left out)."""
    return [s for s in scenarios if s.meta.issue]


# --------------------------------------------------------------------------------------------
# from results to bugs


@dataclass
class Observation:
    """One scenario on one release, as `check` needs it (built from a runner result or a report cell)."""

    scenario: str
    file: str
    issue: str
    title: str
    affects: str | None
    litellm: str
    verdict: str
    reason: str
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return status_of(self.verdict)

    @property
    def predicted(self) -> str:
        """What `affects` predicts on this release: present inside the range, absent outside."""
        from ..scenario.model import affects_contains

        return PRESENT if affects_contains(self.affects, self.litellm) else ABSENT

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "file": self.file, "issue": self.issue, "litellm": self.litellm,
                "affects": self.affects, "verdict": self.verdict, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 3)}


def observation(result, secrets: Iterable[str] = ()) -> Observation:
    """An `Observation` of a `runner.ScenarioResult` (its reason redacted, on one line)."""
    from .text import redact

    meta = result.scenario.meta
    reason = " ".join(redact(result.reason, [*result.secrets, *secrets]).split())
    return Observation(scenario=meta.name, file=result.scenario.path, issue=meta.issue or "", title=meta.title,
                       affects=meta.affects, litellm=result.version, verdict=result.verdict, reason=reason,
                       seconds=result.seconds)


@dataclass
class Bug:
    issue: str
    title: str
    status: str
    scenario: str  # the deciding scenario
    reason: str
    observations: list[Observation] = field(default_factory=list)
    #: what `affects` predicts when it disagrees with the measured present/absent, else None
    affects_says: str | None = None

    @property
    def label(self) -> str:
        return issue_label(self.issue)

    @property
    def note(self) -> str:
        if self.affects_says is None:
            return ""
        deciding = next(o for o in self.observations if o.scenario == self.scenario)
        return (f"affects {deciding.affects or '(none)'} says {self.affects_says} on {deciding.litellm}, "
                f"measured {self.status}")

    def as_dict(self) -> dict[str, Any]:
        return {"issue": self.issue, "label": self.label, "title": self.title, "status": self.status,
                "scenario": self.scenario, "reason": self.reason, "affects_disagrees": self.note or None,
                "scenarios": [o.as_dict() for o in self.observations]}


def bugs_of(observations: list[Observation]) -> list[Bug]:
    """One `Bug` per issue, in the order the issues first appear (observations of ONE release)."""
    versions = {o.litellm for o in observations}
    if len(versions) > 1:
        raise ValueError(f"bugs_of takes one release's observations, got {sorted(versions)}")
    by_issue: dict[str, list[Observation]] = {}
    for o in observations:
        by_issue.setdefault(o.issue, []).append(o)
    bugs = []
    for issue, group in by_issue.items():
        status = combine(o.status for o in group)
        deciding = next(o for o in group if o.status == status)
        reason = deciding.reason
        others = [o for o in group if o is not deciding]
        if others:
            reason += " (also " + "; ".join(f"{o.scenario}: {o.status}" for o in others) + ")"
        says = None
        if status in (PRESENT, ABSENT):
            predicted = PRESENT if any(o.predicted == PRESENT for o in group) else ABSENT
            says = predicted if predicted != status else None
        title = next((o.title for o in group if o.title), "")
        bugs.append(Bug(issue=issue, title=title, status=status, scenario=deciding.scenario, reason=reason,
                        observations=group, affects_says=says))
    return bugs


def change(before: str | None, after: str) -> str:
    """How an upgrade changes one bug: fixed, introduced, still present, still absent, or unknown."""
    if before is None:
        return "new in the catalogue"
    if before == PRESENT and after == ABSENT:
        return FIXED
    if before == ABSENT and after == PRESENT:
        return INTRODUCED
    if before == after and after in (PRESENT, ABSENT):
        return f"still {after}"
    return "unknown"


@dataclass
class CheckResult:
    litellm: str
    bugs: list[Bug]
    from_litellm: str | None = None
    from_bugs: list[Bug] = field(default_factory=list)

    def from_status(self, issue: str) -> str | None:
        return next((b.status for b in self.from_bugs if b.issue == issue), None)

    def change_of(self, bug: Bug) -> str | None:
        return change(self.from_status(bug.issue), bug.status) if self.from_litellm else None

    @property
    def fixed(self) -> list[Bug]:
        return [b for b in self.bugs if self.change_of(b) == FIXED]

    @property
    def introduced(self) -> list[Bug]:
        return [b for b in self.bugs if self.change_of(b) == INTRODUCED]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in CHECK_PRECEDENCE}
        for b in self.bugs:
            out[b.status] += 1
        return out

    def exit_code(self, no_fail: bool = False) -> int:
        """1 when a known bug is present on the target, or any entry (of either release) is error."""
        if no_fail:
            return 0
        failing = any(b.status in (PRESENT, ERROR) for b in self.bugs) or any(b.status == ERROR for b in self.from_bugs)
        return 1 if failing else 0


def check_result(observations: list[Observation], litellm: str, from_litellm: str | None = None) -> CheckResult:
    target = [o for o in observations if o.litellm == litellm]
    before = [o for o in observations if from_litellm and o.litellm == from_litellm]
    return CheckResult(litellm=litellm, bugs=bugs_of(target), from_litellm=from_litellm,
                       from_bugs=bugs_of(before) if before else [])


# --------------------------------------------------------------------------------------------
# documents


def check_json(result: CheckResult, **meta: Any) -> dict[str, Any]:
    """check.json: the release, its bugs (issue, title, status, scenario, reason, ...), and `meta`
    (environment, timings, command, exit code). With --from also the diff."""
    doc: dict[str, Any] = {"format": 1, "litellm": result.litellm}
    if result.from_litellm:
        doc["from"] = result.from_litellm
    doc["counts"] = result.counts()
    bugs = []
    for b in result.bugs:
        entry = b.as_dict()
        if result.from_litellm:
            entry["from_status"] = result.from_status(b.issue)
            entry["change"] = result.change_of(b)
        bugs.append(entry)
    doc["bugs"] = bugs
    if result.from_litellm:
        doc["fixed"] = [b.issue for b in result.fixed]
        doc["introduced"] = [b.issue for b in result.introduced]
        doc["from_bugs"] = [b.as_dict() for b in result.from_bugs]
    doc.update(meta)
    # every scenario run, in the matrix report's cell shape (scripts/catalogue.py reads either)
    doc["cells"] = [o.as_dict() for b in [*result.from_bugs, *result.bugs] for o in b.observations]
    return doc




def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def headline(result: CheckResult) -> str:
    counts = result.counts()
    present = [b.label for b in result.bugs if b.status == PRESENT]
    errors = [b.label for b in result.bugs if b.status == ERROR]
    parts = [f"{counts[s]} {s}" for s in CHECK_PRECEDENCE if counts[s] and s != PRESENT]
    text = (f"litellm {result.litellm}: {len(present)} of {len(result.bugs)} known budget bugs present"
            + (f" ({', '.join(present)})" if present else "") + (f"; {', '.join(parts)}" if parts else ""))
    if errors:
        text += f"; could not check {', '.join(errors)}"
    if result.from_litellm:
        text += (f". Upgrading from {result.from_litellm} fixes {len(result.fixed)}"
                 + (f" ({', '.join(b.label for b in result.fixed)})" if result.fixed else "")
                 + f" and brings in {len(result.introduced)}"
                 + (f" ({', '.join(b.label for b in result.introduced)})" if result.introduced else ""))
    return text


def check_markdown(result: CheckResult, seconds: float | None = None, environment: str = "") -> str:
    """check.md: a table to paste into a bug report or pull request."""
    title = (f"## Is it safe to upgrade to litellm {result.litellm}?" if not result.from_litellm
             else f"## Upgrading litellm {result.from_litellm} -> {result.litellm}: known budget bugs")
    lines = [title, "", f"**{_md(headline(result))}**" + (f" ({seconds:.0f}s)" if seconds is not None else ""), ""]
    if environment:
        lines += [_md(environment), ""]
    if result.from_litellm:
        for name, bugs in (("Fixed by the upgrade", result.fixed), ("Brought in by the upgrade", result.introduced)):
            lines.append(f"{name}: " + (", ".join(f"[{b.label}]({b.issue}) {_md(b.title)}".strip() for b in bugs) or "none"))
            lines.append("")
        head = ["report", "title", f"`{result.from_litellm}`", f"`{result.litellm}`", "change", "scenario", "reason"]
    else:
        head = ["report", "title", f"`{result.litellm}`", "scenario", "reason"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for b in result.bugs:
        reason = b.reason[:300] + ("..." if len(b.reason) > 300 else "")
        if b.note:
            reason += f" **Surprise: {b.note}.**"
        row = [f"[{b.label}]({b.issue})", _md(b.title)]
        if result.from_litellm:
            before = result.from_status(b.issue)
            row += [CheckStatus(before).markdown if before else "-", CheckStatus(b.status).markdown, result.change_of(b) or ""]
        else:
            row.append(CheckStatus(b.status).markdown)
        row += [f"`{b.scenario}`", _md(reason)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "<details><summary>How statuses are decided</summary>", "",
              "- **present**: an expectation of the bug's scenario failed on this release (the bug shows);",
              "- **absent**: every step passed;",
              "- **unsupported**: the release cannot run a step (an endpoint missing, licence-gated): not checked;",
              "- **error**: the harness could not run the scenario: not checked.",
              "- A bug shown by several scenarios is present if any shows it, else error if any errored, else "
              "absent if any ran every step, else unsupported. The scenario's `affects` range is not used, "
              "only noted when it predicts otherwise.", "", "</details>", ""]
    return "\n".join(lines)




def check_table(result: CheckResult):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"known budget bugs on litellm {result.litellm}"
                  + (f" (upgrading from {result.from_litellm})" if result.from_litellm else ""))
    table.add_column("report", no_wrap=True)
    table.add_column("title")
    if result.from_litellm:
        table.add_column(result.from_litellm, no_wrap=True)
    table.add_column(result.litellm, no_wrap=True)
    if result.from_litellm:
        table.add_column("change", no_wrap=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("reason")
    for b in result.bugs:
        row = [b.label, escape(b.title)]
        if result.from_litellm:
            before = result.from_status(b.issue)
            row.append(f"[{CheckStatus(before).style}]{before}[/]" if before else "-")
        row.append(f"[{CheckStatus(b.status).style}]{b.status}[/]")
        if result.from_litellm:
            ch = result.change_of(b) or ""
            row.append(f"[bold]{ch}[/]" if ch in (FIXED, INTRODUCED) else ch)
        reason = escape(b.reason[:160] + ("..." if len(b.reason) > 160 else ""))
        if b.note:
            reason += f" [bold magenta]surprise: {escape(b.note)}[/]"
        row += [b.scenario, reason]
        table.add_row(*row)
    return table


def measured_on(env: dict[str, Any], config) -> str:
    """The sentence under check.md's table: where it was measured."""
    return (f"Measured on PostgreSQL {env.get('postgres', '?')}, prisma {env.get('prisma', '?')}, "
            f"{env.get('prisma_engine', '?')}; {config.describe_clock()}"
            + (f"; proxy config {env['proxy_config']}" if env.get("proxy_config") else "") + ".")
